package io.connguard.postgres;

import io.connguard.core.api.ProxyError;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;

import java.nio.charset.StandardCharsets;

/**
 * Writes the ErrorResponse that tells a client why the proxy ends its session: severity FATAL (fields
 * {@code S} and {@code V}), the SQLSTATE README.md's "Wire behaviour" table gives the event
 * ({@code C}), the message ({@code M}) and, when there is one, a detail naming the limit ({@code D}).
 * No ReadyForQuery follows a FATAL error: the session ends.
 *
 * @see <a href="https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-ERRORRESPONSE">
 *     ErrorResponse</a>, <a href="https://www.postgresql.org/docs/current/protocol-error-fields.html">Error fields</a>,
 *     <a href="https://www.postgresql.org/docs/current/errcodes-appendix.html">Error codes</a>
 */
final class PgErrorWriter {

    private PgErrorWriter() {
    }

    /** The SQLSTATE for each reason core ends a session. */
    static String sqlState(ProxyError.Kind kind) {
        return switch (kind) {
            case TOO_MANY_CONNECTIONS -> "53300";          // too_many_connections
            case IDLE_IN_TRANSACTION_TIMEOUT -> "25P03";   // idle_in_transaction_session_timeout
            case IDLE_TIMEOUT, SESSION_LIFETIME -> "57P05"; // idle_session_timeout
            case ADMIN_KILL, SHUTDOWN -> "57P01";          // admin_shutdown
            case DRAINING -> "57P03";                      // cannot_connect_now
            case PROTOCOL_VIOLATION -> "08P01";            // protocol_violation
            case UPSTREAM_UNAVAILABLE -> "08006";          // connection_failure
            case TLS_REQUIRED -> "28000";                  // invalid_authorization_specification, as hostssl-only
            case AUTHENTICATION_FAILED -> "28P01";         // invalid_password
        };
    }

    static ByteBuf fatal(ByteBufAllocator alloc, ProxyError error) {
        return fatal(alloc, sqlState(error.kind()), error.message(), error.detail());
    }

    static ByteBuf fatal(ByteBufAllocator alloc, String sqlState, String message, String detail) {
        return fatal(alloc, sqlState, message, detail, null);
    }

    static ByteBuf fatal(ByteBufAllocator alloc, String sqlState, String message, String detail, String hint) {
        ByteBuf out = alloc.buffer(64 + message.length() * 3 + (detail == null ? 0 : detail.length() * 3)
                + (hint == null ? 0 : hint.length() * 3));
        out.writeByte('E');
        int lengthIndex = out.writerIndex();
        out.writeInt(0);
        field(out, 'S', "FATAL");
        field(out, 'V', "FATAL");
        field(out, 'C', sqlState);
        field(out, 'M', message);
        if (detail != null && !detail.isEmpty()) {
            field(out, 'D', detail);
        }
        if (hint != null && !hint.isEmpty()) {
            field(out, 'H', hint);
        }
        out.writeByte(0);
        out.setInt(lengthIndex, out.writerIndex() - lengthIndex);
        return out;
    }

    /**
     * The error in protocol 2's form: 'E', then "FATAL:  message\n" as one C string, no length word. The
     * server still answers this way when a StartupMessage asks for a version below 3.0 (and not 0.0).
     */
    static ByteBuf fatalVersion2(ByteBufAllocator alloc, String message) {
        ByteBuf out = alloc.buffer(16 + message.length() * 3);
        out.writeByte('E');
        out.writeCharSequence("FATAL:  " + message.replace('\0', ' ') + "\n", StandardCharsets.UTF_8);
        out.writeByte(0);
        return out;
    }

    private static void field(ByteBuf out, char code, String value) {
        out.writeByte(code);
        // A NUL inside the text would end the C string early and shift every later field.
        out.writeCharSequence(value.replace('\0', ' '), StandardCharsets.UTF_8);
        out.writeByte(0);
    }
}
