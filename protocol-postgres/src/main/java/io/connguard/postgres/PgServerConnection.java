package io.connguard.postgres;

import io.connguard.core.api.ClientIdentity;
import io.connguard.core.api.ServerConnectionContext;
import io.connguard.core.api.ServerConnectionProtocol;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.Unpooled;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.TreeMap;
import java.util.Map;

/**
 * The PostgreSQL half of one pooled server connection: logs in with {@link PgServerLogin} as the pool's
 * user to its database (nothing else in the StartupMessage: a client's other parameters are applied on
 * each lend, so any client of the pool can use any of its connections), resets it with
 * {@code DISCARD ALL} when a client gives it back, and knows what the server reports it is set to.
 *
 * @see <a href="https://www.postgresql.org/docs/current/sql-discard.html">DISCARD</a>
 */
final class PgServerConnection implements ServerConnectionProtocol {

    private enum Phase { LOGIN, READY, RESET, CLOSED }

    private static final int MAX_MESSAGE = 1 << 20;

    private final ServerConnectionContext context;
    private final PgServerLogin login;
    private final PgMessageReader reader;
    /** What the server reports it is set to (ParameterStatus); names are case-insensitive, as GUC names are. */
    private final Map<String, String> parameters = new TreeMap<>(String.CASE_INSENSITIVE_ORDER);
    /**
     * {@link #parameters} as the ParameterStatus messages a client's start-up answer carries, encoded once
     * and again only after a parameter changes: every pooled login sends them, and they rarely change.
     */
    private byte[] parameterStatus;
    /** What the server reported at login: the pool's defaults (transaction mode undoes other clients' values). */
    private Map<String, String> initial = Map.of();
    /** Transaction mode: parameters the server does not report that connguard set on it (for some client). */
    private Map<String, String> applied;
    /** Transaction mode: the prepared statements on this connection (created on first use). */
    private PgServerStatements statements;
    /** Transaction mode: {@link #parameters} were followed while lent, so a lend without reset keeps them known. */
    private boolean tracked;
    private boolean appliedKnown = true;
    /** Transaction mode: the client parameters this connection was last set to (null: unknown). */
    private PgTransactionMode.Target syncedTo;
    private Phase phase = Phase.LOGIN;
    /** Whether {@link #parameters} are what the server is set to (false after a lend without reset). */
    private boolean parametersKnown = true;
    private PgBackendKey backendKey;

    PgServerConnection(ServerConnectionContext context, ClientIdentity who, char[] password) {
        this.context = context;
        Map<String, String> startup = new LinkedHashMap<>();
        startup.put("user", who.user());
        startup.put("database", who.database());
        this.login = new PgServerLogin(context.alloc(), startup, password);
        this.reader = new PgMessageReader(context.alloc(), MAX_MESSAGE);
    }

    @Override
    public void onConnected() {
        context.toServer(login.startupMessage());
    }

    @Override
    public void onServerBytes(ByteBuf bytes) {
        switch (phase) {
            case LOGIN -> outcome(login.feed(bytes, context::toServer));
            case READY, RESET -> {
                String malformed = reader.feed(bytes, this::message);
                if (malformed != null) {
                    context.failed(malformed);
                }
            }
            case CLOSED -> bytes.release();
        }
    }

    @Override
    public void password(char[] password) {
        if (phase == Phase.LOGIN && login.status() == PgServerLogin.Status.PASSWORD_NEEDED) {
            outcome(login.password(password, context::toServer));
        }
    }

    private void outcome(PgServerLogin.Status status) {
        switch (status) {
            case READY -> {
                parameters.putAll(login.serverParameters());
                parameterStatus = null;
                Map<String, String> defaults = new TreeMap<>(String.CASE_INSENSITIVE_ORDER);
                defaults.putAll(parameters);
                initial = Collections.unmodifiableMap(defaults);
                byte[] secret = login.secret();
                if (secret != null) {
                    byte[] body = new byte[4 + secret.length];
                    body[0] = (byte) (login.processId() >>> 24);
                    body[1] = (byte) (login.processId() >>> 16);
                    body[2] = (byte) (login.processId() >>> 8);
                    body[3] = (byte) login.processId();
                    System.arraycopy(secret, 0, body, 4, secret.length);
                    backendKey = PgBackendKey.read(body, body.length);
                }
                phase = Phase.READY;
                boolean asked = login.method() != PgServerLogin.Method.NONE;
                login.release();
                context.loggedIn(asked);
            }
            case PASSWORD_NEEDED -> context.passwordNeeded();
            case FAILED -> {
                PgErrorResponse error = login.error();
                String reason = login.failure();
                login.release();
                if (error != null) {
                    boolean credentials = error.code().equals("28P01") || error.code().equals("28000");
                    context.loginRefused(context.alloc().buffer(error.raw().length).writeBytes(error.bytes()),
                            credentials, error.severity() + " " + error.code() + ": " + error.message());
                } else {
                    context.failed(reason);
                }
            }
            case RUNNING -> {
            }
        }
    }

    private boolean message(byte type, ByteBuf body) {
        switch (type) {
            case 'S' -> {
                String name = cString(body);
                String value = cString(body);
                if (name != null && value != null) {
                    parameters.put(name, value);
                    parameterStatus = null;
                    syncedTo = null;
                }
            }
            case 'E' -> {
                PgErrorResponse error = PgErrorResponse.decode(body, body.readableBytes());
                context.failed((phase == Phase.RESET ? "reset failed: " : "the server ended the idle connection: ")
                        + error);
                phase = Phase.CLOSED;
                return false;
            }
            case 'Z' -> {
                if (phase == Phase.RESET) {
                    phase = Phase.READY;
                    parametersKnown = true;
                    if (applied != null) {
                        applied.clear();
                    }
                    appliedKnown = true;
                    syncedTo = null;
                    if (statements != null) {
                        statements.forgetAll();
                    }
                    context.resetDone();
                }
            }
            case 'C', 'N', 'A' -> {
                // The reset's CommandComplete, notices, a late notification: nothing to keep.
            }
            default -> {
                context.failed(String.format("unexpected message '%c' from an idle server connection", type));
                phase = Phase.CLOSED;
                return false;
            }
        }
        return true;
    }

    @Override
    public void reset(boolean full) {
        if (phase != Phase.READY) {
            context.failed("reset in the wrong phase " + phase);
            return;
        }
        if (!full) {
            parametersKnown = tracked;
            tracked = false;
            context.resetDone();
            return;
        }
        tracked = false;
        phase = Phase.RESET;
        byte[] sql = "DISCARD ALL".getBytes(StandardCharsets.US_ASCII);
        context.toServer(context.alloc().buffer(6 + sql.length).writeByte('Q').writeInt(5 + sql.length)
                .writeBytes(sql).writeByte(0));
    }

    @Override
    public ByteBuf goodbye() {
        return context.alloc().buffer(5).writeByte('X').writeInt(4);
    }

    @Override
    public void close() {
        phase = Phase.CLOSED;
        login.release();
        reader.release();
    }

    // ---------------------------------------------------------------- for the client's PgSession

    /** What the server reported it is set to (ParameterStatus), in order. */
    Map<String, String> parameters() {
        return Collections.unmodifiableMap(parameters);
    }

    /** Writes {@link #parameters()} to {@code out} as ParameterStatus messages, in order. */
    void writeParameterStatus(ByteBuf out) {
        if (parameterStatus == null) {
            ByteBuf encoded = Unpooled.buffer(32 * parameters.size());
            for (Map.Entry<String, String> p : parameters.entrySet()) {
                int start = encoded.writerIndex();
                encoded.writeByte('S').writeInt(0);
                encoded.writeCharSequence(p.getKey(), StandardCharsets.UTF_8);
                encoded.writeByte(0);
                encoded.writeCharSequence(p.getValue(), StandardCharsets.UTF_8);
                encoded.writeByte(0);
                encoded.setInt(start + 1, encoded.writerIndex() - start - 1);
            }
            parameterStatus = ByteBufUtil.getBytes(encoded);
        }
        out.writeBytes(parameterStatus);
    }

    /** Whether {@link #parameters()} can be trusted (a lend without reset may have changed them). */
    boolean parametersKnown() {
        return parametersKnown;
    }

    /** The server reported a parameter while a client's start-up parameters were applied. */
    void parameter(String name, String value) {
        if (!value.equals(parameters.put(name, value))) {
            parameterStatus = null;
        }
    }

    /** What the server reported right after login: the values a client that asked for nothing expects. */
    Map<String, String> initialParameters() {
        return initial;
    }

    /** Parameters the server does not report that connguard set on this connection, case-insensitive. */
    Map<String, String> applied() {
        return applied == null ? Map.of() : applied;
    }

    /** connguard set {@code name} (not reported by the server) to {@code value}; null: RESET it. */
    void applied(String name, String value) {
        if (value == null) {
            if (applied != null) {
                applied.remove(name);
            }
            return;
        }
        if (applied == null) {
            applied = new TreeMap<>(String.CASE_INSENSITIVE_ORDER);
        }
        applied.put(name, value);
    }

    /** Whether {@link #applied()} is what the server is set to (false after a client's RESET or DISCARD). */
    boolean appliedKnown() {
        return appliedKnown;
    }

    void appliedKnown(boolean known) {
        appliedKnown = known;
    }

    PgTransactionMode.Target syncedTo() {
        return syncedTo;
    }

    void syncedTo(PgTransactionMode.Target target) {
        syncedTo = target;
    }

    /** A client ran RESET or DISCARD: unreported parameters may no longer be what connguard set. */
    void appliedUnknown() {
        appliedKnown = false;
    }

    /** Transaction mode: the lessee followed every ParameterStatus while lent; {@link #parameters} stay known. */
    void parametersTracked() {
        tracked = true;
    }

    /** Transaction mode: the prepared statements on this connection. */
    PgServerStatements statements() {
        if (statements == null) {
            statements = new PgServerStatements(PgTransactionMode.SERVER_STATEMENTS, context.alloc());
        }
        return statements;
    }

    /** The key of the backend behind this connection, for cancel requests. */
    PgBackendKey backendKey() {
        return backendKey;
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

    @Override
    public String toString() {
        return "PgServerConnection" + Arrays.asList(phase, backendKey);
    }
}
