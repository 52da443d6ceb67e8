package io.connguard.mysql;

import io.connguard.core.api.ProxyError;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;

import java.nio.charset.StandardCharsets;

/**
 * Writes the ERR packets connguard sends in its own name, with the code README.md's "Wire behaviour"
 * table gives each event.
 *
 * @see <a href="https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_basic_err_packet.html">ERR_Packet</a>
 */
final class MySqlErrorWriter {

    /** The code, SQLSTATE and default text for one event. */
    record Code(int code, String sqlState) {
    }

    /** ER_CONNECT_TO_MASTER, "Error connecting to master": SQLSTATE 08S01 in the server and in Connector/J. */
    static final int UPSTREAM_UNAVAILABLE_CODE = 1218;
    private static final int MAX_MESSAGE_BYTES = 512;

    private MySqlErrorWriter() {
    }

    static Code codeFor(ProxyError error) {
        return switch (error.kind()) {
            case TOO_MANY_CONNECTIONS -> error.perUser() ? new Code(1226, "42000") : new Code(1040, "08004");
            case IDLE_IN_TRANSACTION_TIMEOUT, IDLE_TIMEOUT, SESSION_LIFETIME -> new Code(4031, "HY000");
            case ADMIN_KILL, SHUTDOWN -> new Code(1927, "70100");
            case DRAINING -> new Code(1053, "08S01");
            case PROTOCOL_VIOLATION -> new Code(1047, "08S01");
            // A server-range code (2003 is the client library's own: libmariadb then reports 2027 "malformed
            // packet"), and one Connector/J maps to 08S01 even before the greeting, where no SQLSTATE is sent.
            case UPSTREAM_UNAVAILABLE -> new Code(UPSTREAM_UNAVAILABLE_CODE, "08S01");
            case TLS_REQUIRED -> new Code(3159, "HY000"); // ER_SECURE_TRANSPORT_REQUIRED
            case AUTHENTICATION_FAILED -> new Code(1045, "28000");
        };
    }

    /**
     * The ERR packet for a core event. {@code sequenceId} < 0 means the client has not been greeted: the
     * server's pre-handshake form (sequence id 0, no SQLSTATE), which clients read in place of a greeting.
     */
    static ByteBuf write(ByteBufAllocator alloc, ProxyError error, int sequenceId, boolean protocol41) {
        Code code = codeFor(error);
        String message = error.detail() == null || error.detail().isEmpty()
                ? error.message() : error.message() + " (" + error.detail() + ")";
        if (sequenceId < 0) {
            return write(alloc, 0, code.code(), null, message);
        }
        return write(alloc, sequenceId, code.code(), protocol41 ? code.sqlState() : null, message);
    }

    /** An ERR packet; {@code sqlState} null leaves the {@code #SQLSTATE} marker out (pre-4.1 form). */
    static ByteBuf write(ByteBufAllocator alloc, int sequenceId, int code, String sqlState, String message) {
        byte[] text = message.getBytes(StandardCharsets.UTF_8);
        int length = Math.min(text.length, MAX_MESSAGE_BYTES);
        ByteBuf out = alloc.buffer(MySqlWire.HEADER_SIZE + 9 + length);
        int start = MySqlWire.startPacket(out, sequenceId & 0xFF);
        out.writeByte(MySqlWire.ERR).writeShortLE(code);
        if (sqlState != null) {
            out.writeByte('#').writeCharSequence(sqlState, StandardCharsets.US_ASCII);
        }
        out.writeBytes(text, 0, length);
        MySqlWire.finishPacket(out, start);
        return out;
    }
}
