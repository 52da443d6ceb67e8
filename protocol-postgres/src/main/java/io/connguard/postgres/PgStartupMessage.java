package io.connguard.postgres;

import io.connguard.core.api.ClientIdentity;
import io.netty.buffer.ByteBuf;

import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

/**
 * StartupMessage: Int32 length, Int32 protocol version (major in the high 16 bits), then name/value
 * C-string pairs ended by an empty name. Decoded with the server's own rules (every name has a value, the
 * terminator is the last byte), so what the proxy accepts is what the server would accept.
 *
 * @param major      protocol major version (always 3)
 * @param minor      protocol minor version (0 and 2 exist; a newer one is the server's to negotiate down)
 * @param parameters the parameters in packet order; a repeated name keeps its last value, as the server does
 * @see <a href="https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-STARTUPMESSAGE">
 *     StartupMessage</a>
 */
record PgStartupMessage(int major, int minor, Map<String, String> parameters) implements PgInitialPacket {

    PgStartupMessage {
        parameters = Map.copyOf(parameters);
    }

    /** Decodes the packet of {@code length} bytes at {@code index} (length word included). */
    static PgInitialPacket decode(ByteBuf buf, int index, int length) {
        int version = buf.getInt(index + 4);
        int major = version >>> 16;
        int minor = version & 0xFFFF;
        if (major != 3) {
            return new PgInvalidPacket(String.format("unsupported frontend protocol %d.%d", major, minor));
        }
        Map<String, String> parameters = new LinkedHashMap<>();
        int end = index + length;
        int offset = index + 8;
        while (offset < end && buf.getByte(offset) != 0) {
            int nameEnd = buf.indexOf(offset, end, (byte) 0);
            int valueEnd = nameEnd < 0 || nameEnd + 1 >= end ? -1 : buf.indexOf(nameEnd + 1, end, (byte) 0);
            if (valueEnd < 0) {
                break;
            }
            parameters.put(string(buf, offset, nameEnd), string(buf, nameEnd + 1, valueEnd));
            offset = valueEnd + 1;
        }
        if (offset != end - 1) {
            return new PgInvalidPacket("invalid startup packet layout: expected terminator as last byte");
        }
        return new PgStartupMessage(major, minor, parameters);
    }

    private static String string(ByteBuf buf, int from, int to) {
        return buf.toString(from, to - from, StandardCharsets.UTF_8);
    }

    String user() {
        return parameters.getOrDefault("user", "");
    }

    /** The database, defaulting to the user name as the server does when it is missing or empty. */
    String database() {
        String database = parameters.getOrDefault("database", "");
        return database.isEmpty() ? user() : database;
    }

    String applicationName() {
        return parameters.getOrDefault("application_name", "");
    }

    /**
     * A walsender connection: {@code replication} is {@code database} (logical) or a true boolean
     * (physical). The server rejects other values itself.
     */
    boolean replication() {
        String value = parameters.getOrDefault("replication", "").toLowerCase(Locale.ROOT);
        if (value.equals("database")) {
            return true;
        }
        // The server's parse_bool: any prefix of "true" or "yes", "on", "1".
        return !value.isEmpty() && ("true".startsWith(value) || "yes".startsWith(value)
                || value.equals("on") || value.equals("1"));
    }

    ClientIdentity identity() {
        return new ClientIdentity(user(), database(), applicationName(), replication());
    }
}
