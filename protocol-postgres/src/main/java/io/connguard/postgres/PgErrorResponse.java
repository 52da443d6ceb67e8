package io.connguard.postgres;

import io.netty.buffer.ByteBuf;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * An ErrorResponse the server sent during a login, decoded to the fields connguard acts on, with the
 * message's own bytes kept so it can reach the client unchanged (a wrong password reads 28P01 with the
 * server's text, a missing database 3D000).
 *
 * @param severity the non-localized severity ({@code V}, or {@code S} from servers before 9.6)
 * @param code     the SQLSTATE ({@code C})
 * @param message  the primary message ({@code M})
 * @param raw      the whole message, type byte and length included
 * @see <a href="https://www.postgresql.org/docs/current/protocol-error-fields.html">Error and notice fields</a>
 */
record PgErrorResponse(String severity, String code, String message, byte[] raw) {

    PgErrorResponse {
        raw = raw.clone();
    }

    /** Decodes the ErrorResponse body ({@code length} bytes after the length word) at the reader index. */
    static PgErrorResponse decode(ByteBuf body, int length) {
        int start = body.readerIndex();
        int end = start + length;
        String severity = "";
        String localized = "";
        String code = "";
        String message = "";
        int offset = start;
        while (offset < end && body.getByte(offset) != 0) {
            byte field = body.getByte(offset);
            int valueEnd = body.indexOf(offset + 1, end, (byte) 0);
            if (valueEnd < 0) {
                break;
            }
            String value = body.toString(offset + 1, valueEnd - offset - 1, StandardCharsets.UTF_8);
            switch (field) {
                case 'V' -> severity = value;
                case 'S' -> localized = value;
                case 'C' -> code = value;
                case 'M' -> message = value;
                default -> {
                }
            }
            offset = valueEnd + 1;
        }
        byte[] raw = new byte[5 + length];
        raw[0] = 'E';
        raw[1] = (byte) ((length + 4) >>> 24);
        raw[2] = (byte) ((length + 4) >>> 16);
        raw[3] = (byte) ((length + 4) >>> 8);
        raw[4] = (byte) (length + 4);
        body.getBytes(start, raw, 5, length);
        return new PgErrorResponse(severity.isEmpty() ? localized : severity, code, message, raw);
    }

    /** A copy of the message's bytes, to send on. */
    byte[] bytes() {
        return raw.clone();
    }

    @Override
    public boolean equals(Object other) {
        return other instanceof PgErrorResponse e && Arrays.equals(e.raw, raw);
    }

    @Override
    public int hashCode() {
        return Arrays.hashCode(raw);
    }

    @Override
    public String toString() {
        return severity + " " + code + " " + message;
    }
}
