package io.connguard.mysql;

/**
 * Reads the server status flags out of the first bytes of an OK or EOF packet, and tells MariaDB's
 * progress reports (ERR packets that are not errors) apart.
 *
 * @see <a href="https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_basic_ok_packet.html">OK_Packet</a>
 * @see <a href="https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_basic_eof_packet.html">EOF_Packet</a>
 * @see <a href="https://mariadb.com/kb/en/progress-reporting/">MariaDB progress reporting</a>
 */
final class MySqlStatus {

    /** The prefix was too short to hold the flags (never the case for a well-formed packet). */
    static final int NONE = -1;

    private MySqlStatus() {
    }

    /** OK packet: header, affected rows, last insert id, then the status flags. */
    static int ok(byte[] prefix, int prefixLength) {
        int i = 1;
        for (int field = 0; field < 2; field++) {
            if (i >= prefixLength || MySqlWire.lenencSize(prefix[i] & 0xFF) < 0) {
                return NONE;
            }
            i += MySqlWire.lenencSize(prefix[i] & 0xFF);
        }
        return i + 2 <= prefixLength ? MySqlWire.readInt2(prefix, i) : NONE;
    }

    /** EOF packet: header, warnings, then the status flags. */
    static int eof(byte[] prefix, int prefixLength) {
        return prefixLength >= 5 ? MySqlWire.readInt2(prefix, 3) : NONE;
    }

    /** The packet that ends a result set: an OK with the 0xFE header under CLIENT_DEPRECATE_EOF, else an EOF. */
    static int terminator(byte[] prefix, int prefixLength, boolean deprecateEof) {
        return deprecateEof ? ok(prefix, prefixLength) : eof(prefix, prefixLength);
    }

    static boolean isProgress(byte[] prefix, int prefixLength) {
        return prefixLength >= 3 && MySqlWire.readInt2(prefix, 1) == MySqlWire.PROGRESS_CODE;
    }
}
