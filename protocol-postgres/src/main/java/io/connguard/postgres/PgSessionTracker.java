package io.connguard.postgres;

import io.connguard.core.api.SessionContext;
import io.connguard.core.api.SessionState;
import io.netty.buffer.ByteBuf;

import java.util.function.Consumer;

/**
 * Follows one session's transaction state from the message types crossing the proxy and reports it to
 * core: a request makes the session active; when the server has sent every ReadyForQuery it owes, its
 * status byte says idle ({@code I}) or idle in a transaction ({@code T}, {@code E}). Input it does not
 * understand makes the session unknown (reported once) and it stops reporting.
 *
 * <p>ReadyForQuery is owed once for the start-up, then once per Query, Sync and FunctionCall, so a
 * pipelined extended-protocol batch with several Syncs stays active until its last ReadyForQuery, and a
 * COPY, whose ReadyForQuery only comes after the data, is active however long it stalls. Asynchronous
 * server messages (NoticeResponse, ParameterStatus, NotificationResponse) are not client activity.
 *
 * @see <a href="https://www.postgresql.org/docs/current/protocol-flow.html">Message flow</a>
 */
final class PgSessionTracker {

    private static final int MAX_BODY = 4 + PgBackendKey.MAX_SECRET_LENGTH;

    private final SessionContext context;
    private final PgStatementCapture statement;
    private final Consumer<PgBackendKey> backendKeys;

    final PgFrameScanner.Sink clientSink = new ClientMessages();
    final PgFrameScanner.Sink serverSink = new ServerMessages();

    /** ReadyForQuery messages the server still owes. */
    private int readyOwed = 1;
    /** Extended-protocol messages were sent after the last Sync: their Sync is still to come. */
    private boolean batchOpen;
    /**
     * Syncs sent after the last Execute or Query. If that command turns out to be COPY FROM STDIN the
     * server ignores them (it ignores Sync in copy-in mode) and the client sends another after CopyDone.
     */
    private int syncsSinceCommand;
    private boolean authenticated;
    private boolean terminated;
    private boolean lost;
    private SessionState reported;

    /**
     * The body of the current ReadyForQuery or BackendKeyData, collected across buffers. Sized for a
     * protocol 3.0 key and grown once for a longer 3.2 key: every idle session keeps it.
     */
    private byte[] body = new byte[8];
    private int bodyLength;
    private int declaredLength;

    PgSessionTracker(SessionContext context, PgStatementCapture statement, Consumer<PgBackendKey> backendKeys) {
        this.context = context;
        this.statement = statement;
        this.backendKeys = backendKeys;
    }

    /** The first ReadyForQuery has arrived: authentication and start-up are over. */
    boolean authenticated() {
        return authenticated;
    }

    /** The client has sent Terminate. */
    boolean terminated() {
        return terminated;
    }

    boolean lost() {
        return lost;
    }

    private void report(SessionState state) {
        if (authenticated && !lost && state != reported) {
            reported = state;
            context.stateChanged(state);
        }
    }

    private void lose(String reason) {
        if (!lost) {
            lost = true;
            reported = SessionState.UNKNOWN;
            context.lostSync(reason);
        }
    }

    private void readyForQuery(byte status) {
        boolean first = !authenticated;
        authenticated = true;
        if (lost) {
            return;
        }
        if (--readyOwed < 0) {
            lose("ReadyForQuery without a pending request");
            return;
        }
        if (readyOwed > 0 || batchOpen) {
            if (first) {
                report(SessionState.ACTIVE);
            }
            return;
        }
        switch (status) {
            case 'I' -> report(SessionState.IDLE);
            case 'T', 'E' -> report(SessionState.IDLE_IN_TRANSACTION);
            default -> lose(String.format("unknown transaction status 0x%02x in ReadyForQuery", status & 0xFF));
        }
    }

    /** Client → server messages. https://www.postgresql.org/docs/current/protocol-message-formats.html */
    private final class ClientMessages implements PgFrameScanner.Sink {

        @Override
        public int onMessageStart(byte type, int bodyLength) {
            switch (type) {
                case 'Q' -> {                       // Query
                    statement.begin(false);
                    readyOwed++;
                    syncsSinceCommand = 0;
                    report(SessionState.ACTIVE);
                    return Math.min(bodyLength, PgStatementCapture.MAX_PREFIX);
                }
                case 'P' -> {                       // Parse
                    statement.begin(true);
                    batchOpen = true;
                    report(SessionState.ACTIVE);
                    return Math.min(bodyLength, PgStatementCapture.MAX_PREFIX);
                }
                case 'B', 'D', 'C' -> {             // Bind, Describe, Close
                    batchOpen = true;
                    report(SessionState.ACTIVE);
                }
                case 'E' -> {                       // Execute
                    batchOpen = true;
                    syncsSinceCommand = 0;
                    report(SessionState.ACTIVE);
                }
                case 'S' -> {                       // Sync
                    readyOwed++;
                    batchOpen = false;
                    syncsSinceCommand++;
                    report(SessionState.ACTIVE);
                }
                case 'F' -> {                       // FunctionCall
                    readyOwed++;
                    syncsSinceCommand = 0;
                    report(SessionState.ACTIVE);
                }
                case 'H', 'd', 'c', 'f' -> {        // Flush, CopyData, CopyDone, CopyFail: no reply of their own
                }
                case 'X' -> terminated = true;      // Terminate
                case 'p' -> {                       // password, SASL or GSS response
                    if (authenticated) {
                        lose("authentication message after authentication completed");
                    }
                }
                default -> lose(String.format("unknown frontend message type 0x%02x", type & 0xFF));
            }
            return 0;
        }

        @Override
        public void onBody(ByteBuf buf, int index, int length) {
            statement.accept(buf, index, length);
        }

        @Override
        public void onMessageEnd(byte type) {
        }

        @Override
        public void onUnframeable(String reason) {
            lose("client stream: " + reason);
        }
    }

    /** Server → client messages. https://www.postgresql.org/docs/current/protocol-message-formats.html */
    private final class ServerMessages implements PgFrameScanner.Sink {

        @Override
        public int onMessageStart(byte type, int length) {
            switch (type) {
                case 'Z', 'K' -> {                  // ReadyForQuery, BackendKeyData: read the body
                    bodyLength = 0;
                    declaredLength = length;
                    if (length > body.length && length <= MAX_BODY) {
                        body = new byte[length];
                    }
                    return Math.min(length, body.length);
                }
                case 'G' -> {                       // CopyInResponse
                    readyOwed = Math.max(readyOwed - syncsSinceCommand, 0);
                    syncsSinceCommand = 0;
                }
                case 'R', 'S', 'E', 'N', 'A', 'v',  // authentication, parameters, errors, notices, negotiation
                        '1', '2', '3', 'C', 'I', 'n', 's', 't', 'T', 'D', 'V',
                        'H', 'W', 'd', 'c' -> {     // CopyOut, CopyBoth, CopyData, CopyDone
                }
                default -> lose(String.format("unknown backend message type 0x%02x", type & 0xFF));
            }
            return 0;
        }

        @Override
        public void onBody(ByteBuf buf, int index, int length) {
            buf.getBytes(index, body, bodyLength, length);
            bodyLength += length;
        }

        @Override
        public void onMessageEnd(byte type) {
            if (type == 'Z') {
                if (declaredLength != 1) {
                    lose("ReadyForQuery of length " + declaredLength);
                } else {
                    readyForQuery(body[0]);
                }
            } else if (type == 'K') {
                PgBackendKey key = declaredLength > MAX_BODY ? null : PgBackendKey.read(body, bodyLength);
                if (key == null) {
                    context.log().debug("BackendKeyData with a key of {} bytes: cancel requests cannot be routed",
                            declaredLength - 4);
                } else {
                    backendKeys.accept(key);
                }
            }
        }

        @Override
        public void onUnframeable(String reason) {
            lose("server stream: " + reason);
        }
    }
}
