package io.connguard.mysql;

/**
 * Command bytes of the command phase, and the shape of response each one gets.
 *
 * @see <a href="https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_command_phase.html">Command phase</a>
 * @see <a href="https://mariadb.com/kb/en/clientserver-protocol/">MariaDB client/server protocol</a>
 */
final class MySqlCommand {

    static final int COM_QUIT = 0x01;
    static final int COM_QUERY = 0x03;
    static final int COM_PROCESS_KILL = 0x0C;
    static final int COM_CHANGE_USER = 0x11;
    static final int COM_STMT_PREPARE = 0x16;
    static final int COM_STMT_EXECUTE = 0x17;

    /** Response shapes. */
    static final int NO_RESPONSE = 0;
    static final int QUIT = 1;
    /** One OK, EOF or ERR packet. */
    static final int SIMPLE = 2;
    /** One string packet (COM_STATISTICS). */
    static final int STATISTICS = 3;
    /** OK, ERR, LOCAL INFILE request or result set, possibly several (SERVER_MORE_RESULTS_EXISTS). */
    static final int QUERY = 4;
    /** Like {@link #QUERY}, but a cursor was asked for: a result set may end after its metadata. */
    static final int EXECUTE_CURSOR = 5;
    /** Rows and their terminator, without a column count (COM_STMT_FETCH, COM_FIELD_LIST). */
    static final int ROWS = 6;
    static final int PREPARE = 7;
    /** An authentication exchange ending in OK or ERR. */
    static final int CHANGE_USER = 8;
    static final int REPLICATION = 9;
    static final int UNKNOWN = 10;

    private MySqlCommand() {
    }

    /** The response shape of {@code command}; {@code executeFlags} is COM_STMT_EXECUTE's cursor type byte. */
    static int responseOf(int command, int executeFlags) {
        return switch (command) {
            case 0x01 -> QUIT;
            case 0x03, 0x0A, 0xFA -> QUERY; // COM_QUERY, COM_PROCESS_INFO, COM_STMT_BULK_EXECUTE
            case 0x17 -> (executeFlags & 0x07) != 0 ? EXECUTE_CURSOR : QUERY;
            case 0x04, 0x1C -> ROWS; // COM_FIELD_LIST, COM_STMT_FETCH
            case 0x09 -> STATISTICS;
            case 0x11 -> CHANGE_USER;
            case 0x16 -> PREPARE;
            case 0x18, 0x19 -> NO_RESPONSE; // COM_STMT_SEND_LONG_DATA, COM_STMT_CLOSE
            case 0x12, 0x13, 0x15, 0x1E -> REPLICATION; // binlog dump (GTID), table dump, register slave
            // sleep, init db, create/drop db, refresh, shutdown, connect, process kill, debug, ping, time,
            // delayed insert, connect out, stmt reset, set option, daemon, reset connection
            case 0x00, 0x02, 0x05, 0x06, 0x07, 0x08, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F, 0x10, 0x14, 0x1A, 0x1B, 0x1D,
                    0x1F -> SIMPLE;
            default -> UNKNOWN;
        };
    }
}
