package io.connguard.postgres;

import io.connguard.core.api.SessionContext;
import io.connguard.core.auth.Randomness;
import io.netty.buffer.ByteBuf;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A PostgreSQL client's start-up on a pooled listener, where connguard answers the handshake itself: it
 * asks for the client's password on the local leg (AuthenticationCleartextPassword) when core says so,
 * makes the lent server connection match the client's start-up parameters (one
 * {@code SELECT set_config(...)} for those that differ, {@code options} {@code -c} switches included), and
 * then tells the client what the server would have: AuthenticationOk, every ParameterStatus, a
 * BackendKeyData minted by connguard (cancel requests with it are routed to the backend serving the
 * client) and ReadyForQuery. The client speaks protocol 3.0 from then on (a newer minor it asked for is
 * negotiated down, as an older server would).
 *
 * @see <a href="https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-START-UP">Start-up</a>
 */
final class PgPooledStart {

    /** Where the applying of parameters is. */
    enum Applied { RUNNING, DONE, FAILED }

    private static final int MAX_PASSWORD_MESSAGE = 8192;
    private static final int MAX_REPLY = 1 << 20;
    /** Protocol 3.0 as a start-up packet and NegotiateProtocolVersion write it. */
    private static final int PROTOCOL_3_0 = 3 << 16;

    private final SessionContext context;
    private final int clientMinor;
    private final List<String> unsupportedOptions = new ArrayList<>();
    /** The parameters the server connection must have for this client, in start-up order. */
    private final Map<String, String> wanted = new LinkedHashMap<>();
    private PgMessageReader reader;
    private byte[] applyError;

    private PgPooledStart(SessionContext context, int clientMinor) {
        this.context = context;
        this.clientMinor = clientMinor;
    }

    /**
     * The start-up of {@code message} on a pooled listener, or null after telling core why it cannot be
     * served there ({@code violation}).
     */
    static PgPooledStart of(SessionContext context, PgStartupMessage message) {
        PgPooledStart start = new PgPooledStart(context, message.minor());
        String refused = start.read(message);
        if (refused != null) {
            context.violation(refused);
            return null;
        }
        return start;
    }

    private String read(PgStartupMessage message) {
        if (message.replication()) {
            return "replication connections need a relay listener (pool.mode relay)";
        }
        for (Map.Entry<String, String> p : message.parameters().entrySet()) {
            String name = p.getKey();
            switch (name) {
                case "user", "database", "replication" -> {
                }
                case "options" -> {
                    String bad = options(p.getValue());
                    if (bad != null) {
                        return bad;
                    }
                }
                default -> {
                    if (name.startsWith("_pq_.")) {
                        unsupportedOptions.add(name);
                    } else {
                        wanted.put(name, p.getValue());
                    }
                }
            }
        }
        return null;
    }

    /** Reads {@code -c name=value} and {@code --name=value} switches; anything else cannot follow a client. */
    private String options(String options) {
        List<String> words = new ArrayList<>();
        StringBuilder word = new StringBuilder();
        for (int i = 0; i < options.length(); i++) {
            char c = options.charAt(i);
            if (c == '\\' && i + 1 < options.length()) {
                word.append(options.charAt(++i));
            } else if (Character.isWhitespace(c)) {
                if (!word.isEmpty()) {
                    words.add(word.toString());
                    word.setLength(0);
                }
            } else {
                word.append(c);
            }
        }
        if (!word.isEmpty()) {
            words.add(word.toString());
        }
        for (int i = 0; i < words.size(); i++) {
            String w = words.get(i);
            String setting;
            if (w.equals("-c") && i + 1 < words.size()) {
                setting = words.get(++i);
            } else if (w.startsWith("-c") && w.length() > 2) {
                setting = w.substring(2);
            } else if (w.startsWith("--") && w.length() > 2) {
                setting = w.substring(2);
            } else {
                return "start-up option '" + w + "' is not supported on a pooled listener (only -c name=value)";
            }
            int eq = setting.indexOf('=');
            if (eq <= 0) {
                return "start-up option '" + w + "' has no value";
            }
            wanted.put(setting.substring(0, eq).replace('-', '_'), setting.substring(eq + 1));
        }
        return null;
    }

    // ---------------------------------------------------------------- the password

    /** Asks the client for its password: AuthenticationCleartextPassword. */
    void requestPassword() {
        context.toClient(context.alloc().buffer(9).writeByte('R').writeInt(8).writeInt(3));
        reader = new PgMessageReader(context.alloc(), MAX_PASSWORD_MESSAGE);
    }

    /**
     * Client bytes while the password is awaited: the password once its message is whole (the caller hands
     * it to core), else null. A malformed or unexpected message is reported to core as a violation.
     */
    char[] feedPassword(ByteBuf bytes) {
        char[][] password = new char[1][];
        String malformed = reader.feed(bytes, (type, body) -> {
            if (type != 'p') {
                context.violation(String.format("expected a password message, got '%c'", type));
                return false;
            }
            int end = body.indexOf(body.readerIndex(), body.writerIndex(), (byte) 0);
            if (end < 0) {
                context.violation("malformed password message");
            } else {
                password[0] = body.toString(body.readerIndex(), end - body.readerIndex(), StandardCharsets.UTF_8)
                        .toCharArray();
                body.setZero(body.readerIndex(), body.readableBytes());
            }
            return false;
        });
        if (malformed != null) {
            context.violation("password message: " + malformed);
        }
        return password[0];
    }

    /** Client bytes that came after the password message (a conforming client sends none). */
    ByteBuf takeEarly() {
        if (reader == null) {
            return null;
        }
        ByteBuf rest = reader.takeRest();
        reader.release();
        reader = null;
        return rest;
    }

    /** The parameters the client asked for at start-up (options' -c switches included), in order. */
    Map<String, String> wanted() {
        return wanted;
    }

    // ---------------------------------------------------------------- the server connection

    /** The query that makes {@code server} match the client, or null when it already does. */
    ByteBuf applyQuery(PgServerConnection server) {
        StringBuilder sql = new StringBuilder("SELECT ");
        int n = 0;
        for (Map.Entry<String, String> p : wanted.entrySet()) {
            if (server.parametersKnown() && p.getValue().equals(server.parameters().get(p.getKey()))) {
                continue;
            }
            if (n++ > 0) {
                sql.append(", ");
            }
            sql.append("pg_catalog.set_config(").append(literal(p.getKey())).append(", ").append(literal(p.getValue()))
                    .append(", false)");
        }
        if (n == 0) {
            return null;
        }
        byte[] bytes = sql.toString().getBytes(StandardCharsets.UTF_8);
        reader = new PgMessageReader(context.alloc(), MAX_REPLY);
        return context.alloc().buffer(6 + bytes.length).writeByte('Q').writeInt(5 + bytes.length).writeBytes(bytes)
                .writeByte(0);
    }

    /** The server's reply to {@link #applyQuery}: parameters it reports are kept on {@code server}. */
    Applied feedReply(ByteBuf bytes, PgServerConnection server) {
        Applied[] result = {Applied.RUNNING};
        String malformed = reader.feed(bytes, (type, body) -> {
            switch (type) {
                case 'S' -> {
                    String name = cString(body);
                    String value = cString(body);
                    if (name != null && value != null) {
                        server.parameter(name, value);
                    }
                }
                case 'E' -> {
                    applyError = PgErrorResponse.decode(body, body.readableBytes()).bytes();
                }
                case 'Z' -> {
                    result[0] = applyError == null ? Applied.DONE : Applied.FAILED;
                    return false;
                }
                default -> {
                    // RowDescription, DataRow, CommandComplete, notices: the client did not ask for them.
                }
            }
            return true;
        });
        if (malformed != null) {
            return Applied.FAILED;
        }
        return result[0];
    }

    /** The server's error from applying the parameters (what the client would have got at start-up). */
    ByteBuf applyError() {
        byte[] error = applyError != null ? applyError : new byte[0];
        return context.alloc().buffer(error.length).writeBytes(error);
    }

    /** What the client would have read from the server after its StartupMessage. */
    ByteBuf loginAnswer(PgServerConnection server, int processId, byte[] secret) {
        ByteBuf out = context.alloc().buffer(256);
        if (clientMinor > 0 || !unsupportedOptions.isEmpty()) {
            int start = out.writerIndex();
            // The version it falls back to, written whole as PostgreSQL writes it (3 << 16 | 0), not the minor
            // alone that the protocol page describes: libpq 18 refuses 0 as "a downgrade to pre-3.0".
            out.writeByte('v').writeInt(0).writeInt(PROTOCOL_3_0).writeInt(unsupportedOptions.size());
            for (String option : unsupportedOptions) {
                cString(out, option);
            }
            out.setInt(start + 1, out.writerIndex() - start - 1);
        }
        out.writeByte('R').writeInt(8).writeInt(0);
        server.writeParameterStatus(out);
        out.writeByte('K').writeInt(8 + secret.length).writeInt(processId).writeBytes(secret);
        out.writeByte('Z').writeInt(5).writeByte('I');
        return out;
    }

    /** A BackendKeyData secret for the client (4 bytes: the client speaks 3.0). */
    static byte[] mintSecret() {
        return Randomness.bytes(4);
    }

    static int mintProcessId() {
        return Randomness.positiveInt();
    }

    void release() {
        if (reader != null) {
            reader.release();
            reader = null;
        }
    }

    /** An escape-string literal: safe whatever standard_conforming_strings says. */
    private static String literal(String value) {
        return "E'" + value.replace("\\", "\\\\").replace("'", "''") + "'";
    }

    private static void cString(ByteBuf out, String value) {
        out.writeCharSequence(value, StandardCharsets.UTF_8);
        out.writeByte(0);
    }

    private static String cString(ByteBuf body) {
        int end = body.indexOf(body.readerIndex(), body.writerIndex(), (byte) 0);
        if (end < 0) {
            return null;
        }
        String value = body.toString(body.readerIndex(), end - body.readerIndex(), StandardCharsets.UTF_8);
        body.readerIndex(end + 1);
        return value;
    }
}
