package io.connguard.postgres;

import io.connguard.core.api.ClientIdentity;
import io.netty.buffer.ByteBuf;
import io.netty.util.concurrent.FastThreadLocal;

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

    /** The last identity made on this thread (see {@link #identity()}). */
    private static final FastThreadLocal<ClientIdentity> LAST_IDENTITY = new FastThreadLocal<>();

    PgStartupMessage {
        parameters = Map.copyOf(parameters);
    }

    /**
     * Decodes the packet of {@code length} bytes at {@code index} (length word included), refusing it as the
     * server does, in the server's order: a major version other than 3 (0A000), a {@code replication} value
     * that is not a boolean or {@code database} (22023, while the parameters are read), a layout whose
     * terminator is not the last byte (08P01), and a missing user name (28000). The last is left to the
     * server when the client also asked for a newer minor version or a {@code _pq_.} option, because the
     * server then first answers with a NegotiateProtocolVersion only it can write.
     */
    static PgInitialPacket decode(ByteBuf buf, int index, int length) {
        int version = buf.getInt(index + 4);
        int major = version >>> 16;
        int minor = version & 0xFFFF;
        if (major != 3) {
            return unsupportedVersion(version);
        }
        Map<String, String> parameters = new LinkedHashMap<>();
        boolean protocolOptions = false;
        // The server reads the body as if one NUL followed it, so a last string without its NUL still counts.
        int end = index + length;
        int offset = index + 8;
        while (offset < end && buf.getByte(offset) != 0) {
            int nameEnd = cStringEnd(buf, offset, end);
            if (nameEnd + 1 >= end) {
                break; // a name without a value: the layout check below complains
            }
            int valueEnd = cStringEnd(buf, nameEnd + 1, end);
            String name = string(buf, offset, nameEnd);
            String value = string(buf, nameEnd + 1, valueEnd);
            if (name.equals("replication") && !value.equals("database") && parseBool(value) == null) {
                return PgInvalidPacket.fatal(new PgStartupReply("22023",
                        "invalid value for parameter \"replication\": \"" + value + "\"", null,
                        "Valid values are: \"false\", 0, \"true\", 1, \"database\".", false));
            }
            protocolOptions |= name.startsWith("_pq_.");
            parameters.put(name, value);
            offset = valueEnd + 1;
        }
        if (offset != end - 1) {
            return PgInvalidPacket.fatal(PgStartupReply.fatal("08P01",
                    "invalid startup packet layout: expected terminator as last byte"));
        }
        if (parameters.getOrDefault("user", "").isEmpty() && minor == 0 && !protocolOptions) {
            return PgInvalidPacket.fatal(PgStartupReply.fatal("28000",
                    "no PostgreSQL user name specified in startup packet"));
        }
        return new PgStartupMessage(major, minor, parameters);
    }

    /**
     * The server's answer to a StartupMessage whose major version is not 3 (also to a request code it no
     * longer accepts at that point, read as a version: 80877103 is "1234.5679"). It writes this one error in
     * the form of the version asked for, where 0.0 means "not set yet".
     */
    static PgInvalidPacket unsupportedVersion(int version) {
        int major = version >>> 16;
        int minor = version & 0xFFFF;
        return PgInvalidPacket.fatal(new PgStartupReply("0A000", String.format(
                "unsupported frontend protocol %d.%d: server supports 3.0 to 3.%d", major, minor, LATEST_MINOR),
                null, null, major < 3 && version != 0));
    }

    /** The newest protocol minor version connguard relays (3.2, PostgreSQL 18). */
    static final int LATEST_MINOR = 2;

    /** Where the C string at {@code from} ends: its NUL, or {@code end} when the packet ends first. */
    private static int cStringEnd(ByteBuf buf, int from, int end) {
        int nul = buf.indexOf(from, end, (byte) 0);
        return nul < 0 ? end : nul;
    }

    /**
     * The server's {@code parse_bool}: a nonempty prefix of true, false, yes or no, "on", "of(f)", "1" or "0",
     * ignoring case; null for anything else.
     */
    static Boolean parseBool(String value) {
        String v = value.toLowerCase(Locale.ROOT);
        if (v.isEmpty()) {
            return null;
        }
        return switch (v.charAt(0)) {
            case 't' -> "true".startsWith(v) ? Boolean.TRUE : null;
            case 'f' -> "false".startsWith(v) ? Boolean.FALSE : null;
            case 'y' -> "yes".startsWith(v) ? Boolean.TRUE : null;
            case 'n' -> "no".startsWith(v) ? Boolean.FALSE : null;
            case 'o' -> v.equals("on") ? Boolean.TRUE : v.length() >= 2 && "off".startsWith(v) ? Boolean.FALSE : null;
            case '1' -> v.length() == 1 ? Boolean.TRUE : null;
            case '0' -> v.length() == 1 ? Boolean.FALSE : null;
            default -> null;
        };
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
     * (physical); {@link #decode} refuses other values as the server does.
     */
    boolean replication() {
        String value = parameters.get("replication");
        // decode() let through only "database" and the server's booleans.
        return value != null && (value.equals("database") || Boolean.TRUE.equals(parseBool(value)));
    }

    /**
     * Who the client says it is. Equal to the identity this thread made last (the clients of one application's
     * pool), it is that one: their sessions share one record and its strings instead of keeping a copy each.
     */
    ClientIdentity identity() {
        ClientIdentity made = new ClientIdentity(user(), database(), applicationName(), replication());
        ClientIdentity last = LAST_IDENTITY.getIfExists();
        if (made.equals(last)) {
            return last;
        }
        LAST_IDENTITY.set(made);
        return made;
    }
}
