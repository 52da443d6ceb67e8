package io.connguard.postgres;

import io.connguard.core.api.SessionContext;
import io.connguard.core.api.SessionState;
import io.netty.buffer.ByteBuf;

import java.nio.charset.StandardCharsets;

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
    /** The one ParameterStatus the tracker reads: a change of application_name re-keys the session. */
    private static final byte[] APPLICATION_NAME = "application_name\0".getBytes(StandardCharsets.US_ASCII);
    /** The server truncates application_name to NAMEDATALEN - 1 = 63 bytes; plus its terminator. */
    private static final int MAX_APPLICATION_NAME = 64;
    /** Transaction mode: the longest ParameterStatus body kept whole (a longer one pins, see PgTransactionMode). */
    private static final int MAX_PARAMETER = 4096;
    /** CommandComplete tags after which the server's parameters are no longer what connguard set: RESET, DISCARD. */
    private static final byte[] RESET_TAG = "RESET\0".getBytes(StandardCharsets.US_ASCII);
    private static final byte[] DISCARD_TAG = "DISCARD ".getBytes(StandardCharsets.US_ASCII);

    private final SessionContext context;
    private final PgStatementCapture statement;
    private final Owner owner;

    /** The statement capture the client's queries go to (for the views' last statement). */
    PgStatementCapture statement() {
        return statement;
    }

    /** The scanners of the two directions, each its own sink. */
    final PgFrameScanner clientScanner = new ClientMessages();
    final PgFrameScanner serverScanner = new ServerMessages();

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
    /** The status byte of the last ReadyForQuery. */
    private byte lastStatus = 'I';

    /** Transaction mode: what a pooler needs beyond the state (null otherwise). */
    private Pooling pooling;
    /** Transaction mode: the text of every Query and Parse is read by a {@link PgStatementClassifier}. */
    private boolean classifies;
    /** The server's standard_conforming_strings as the client last saw it: how the texts are lexed. */
    private boolean standardConformingStrings = true;
    /** The classifier reading the current Query or Parse, borrowed for it; null between them. */
    private PgStatementClassifier classifier;
    /** Transaction mode: every ParameterStatus is read (name and value), not just application_name. */
    private byte[] parameter;
    private int parameterLength;
    private boolean parameterTooLong;

    /** The session the tracker reports to (an interface, not two lambdas: an idle session keeps fewer objects). */
    interface Owner {
        /** A BackendKeyData. */
        void registerBackendKey(PgBackendKey key);

        /** The server reported application_name (ParameterStatus). */
        void applicationNameReported(String application);
    }

    /** What a transaction-mode pooler hears from the tracker, in stream order. */
    interface Pooling {
        /** A Query or Parse was read whole: the classifier holds its outcome. */
        void classified(PgStatementClassifier classifier);

        /** The server sent an ErrorResponse. */
        void error();

        /** A ReadyForQuery with {@code status}; {@code settled}: nothing else is owed or open after it. */
        void ready(byte status, boolean settled);

        /** Whether {@link #parameter} wants to hear ParameterStatus now (not during the start-up answer). */
        boolean followsParameters();

        /** A ParameterStatus: the server reports {@code name} is now {@code value}. */
        void parameter(String name, String value);

        /** A RESET or DISCARD completed: parameters connguard set may have been reset. */
        void reset();
    }

    /**
     * The body of the current ReadyForQuery or BackendKeyData, collected across buffers. Sized for a
     * protocol 3.0 key and grown once for a longer 3.2 key: every idle session keeps it.
     */
    private byte[] body = new byte[8];
    private int bodyLength;
    private int declaredLength;

    /** Inside a ParameterStatus, whose body goes to {@link ServerMessages#parameterStatusBody}. */
    private boolean inParameterStatus;
    /** How many bytes of {@link #APPLICATION_NAME} the current ParameterStatus matched; -1 once another name. */
    private int nameMatched;
    /** The reported application_name value, allocated only when one is reported (start-up, SET). */
    private byte[] applicationName;
    private int applicationNameLength;

    /**
     * @param owner told each BackendKeyData and each application_name the server reports (ParameterStatus),
     *              which is how a {@code SET application_name} after start-up becomes visible
     */
    PgSessionTracker(SessionContext context, PgStatementCapture statement, Owner owner) {
        this.context = context;
        this.statement = statement;
        this.owner = owner;
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

    /**
     * Transaction mode: reads the text of every Query and Parse with a {@link PgStatementClassifier} and
     * tells {@code pooling} what it needs to pin, follow parameters and return server connections.
     */
    void pool(Pooling pooling) {
        this.classifies = true;
        this.pooling = pooling;
    }

    /** Transaction mode: the server's standard_conforming_strings changed; later texts are lexed by it. */
    void standardConformingStrings(boolean on) {
        standardConformingStrings = on;
    }

    /**
     * The server owes nothing, no extended-protocol batch is open and the last ReadyForQuery said idle
     * outside a transaction ({@code I}): the session has no request in flight.
     */
    boolean settledIdle() {
        return authenticated && !lost && readyOwed == 0 && !batchOpen && lastStatus == 'I';
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
        lastStatus = status;
        if (pooling != null) {
            parameter = null; // ParameterStatus comes in bursts (start-up, a SET): an idle session keeps none
            pooling.ready(status, readyOwed == 0 && !batchOpen);
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
    private final class ClientMessages extends PgFrameScanner {

        @Override
        public int onMessageStart(byte type, int bodyLength) {
            switch (type) {
                case 'Q' -> {                       // Query
                    statement.begin(false);
                    readyOwed++;
                    syncsSinceCommand = 0;
                    report(SessionState.ACTIVE);
                    if (classifies) {
                        classifier = PgStatementClassifier.borrow(standardConformingStrings);
                        classifier.beginQuery();
                        return bodyLength;
                    }
                    return Math.min(bodyLength, PgStatementCapture.MAX_PREFIX);
                }
                case 'P' -> {                       // Parse
                    statement.begin(true);
                    batchOpen = true;
                    report(SessionState.ACTIVE);
                    if (classifies) {
                        classifier = PgStatementClassifier.borrow(standardConformingStrings);
                        classifier.beginParse();
                        return bodyLength;
                    }
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
            if (classifier != null) {
                classifier.accept(buf, index, length);
            }
        }

        @Override
        public void onMessageEnd(byte type) {
            if (classifier != null) {
                PgStatementClassifier done = classifier;
                classifier = null;
                done.finish();
                pooling.classified(done);
                done.giveBack();
            }
        }

        @Override
        public void onUnframeable(String reason) {
            lose("client stream: " + reason);
        }
    }

    /** Server → client messages. https://www.postgresql.org/docs/current/protocol-message-formats.html */
    private final class ServerMessages extends PgFrameScanner {

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
                case 'S' -> {                       // ParameterStatus: name and value, read if application_name
                    inParameterStatus = true;
                    nameMatched = 0;
                    if (pooling != null) {
                        parameterLength = 0;
                        parameterTooLong = length > MAX_PARAMETER;
                        if (parameter == null || parameter.length < Math.min(length, MAX_PARAMETER)) {
                            parameter = new byte[Math.min(Math.max(length, 64), MAX_PARAMETER)];
                        }
                        return Math.min(length, MAX_PARAMETER);
                    }
                    return Math.min(length, APPLICATION_NAME.length + MAX_APPLICATION_NAME);
                }
                case 'E' -> {                       // ErrorResponse
                    if (pooling != null) {
                        pooling.error();
                    }
                }
                case 'G' -> {                       // CopyInResponse
                    readyOwed = Math.max(readyOwed - syncsSinceCommand, 0);
                    syncsSinceCommand = 0;
                }
                case 'C' -> {                       // CommandComplete: its tag, in transaction mode
                    if (pooling != null) {
                        bodyLength = 0;
                        declaredLength = length;
                        return Math.min(length, body.length);
                    }
                }
                case 'R', 'N', 'A', 'v',            // authentication, notices, negotiation
                        '1', '2', '3', 'I', 'n', 's', 't', 'T', 'D', 'V',
                        'H', 'W', 'd', 'c' -> {     // CopyOut, CopyBoth, CopyData, CopyDone
                }
                default -> lose(String.format("unknown backend message type 0x%02x", type & 0xFF));
            }
            return 0;
        }

        @Override
        public void onBody(ByteBuf buf, int index, int length) {
            if (inParameterStatus) {
                if (pooling != null) {
                    buf.getBytes(index, parameter, parameterLength, length);
                    parameterLength += length;
                }
                parameterStatusBody(buf, index, length);
                return;
            }
            buf.getBytes(index, body, bodyLength, length);
            bodyLength += length;
        }

        /** Matches the parameter name against application_name byte by byte, then keeps the value. */
        private void parameterStatusBody(ByteBuf buf, int index, int length) {
            int i = index;
            int end = index + length;
            if (nameMatched < 0) {
                return;
            }
            while (i < end && nameMatched < APPLICATION_NAME.length) {
                if (buf.getByte(i++) != APPLICATION_NAME[nameMatched]) {
                    nameMatched = -1; // another parameter: ignore the rest of this message
                    return;
                }
                nameMatched++;
            }
            if (nameMatched == APPLICATION_NAME.length && i < end) {
                if (applicationName == null) {
                    applicationName = new byte[MAX_APPLICATION_NAME];
                }
                int n = Math.min(end - i, MAX_APPLICATION_NAME - applicationNameLength);
                buf.getBytes(i, applicationName, applicationNameLength, n);
                applicationNameLength += n;
            }
        }

        @Override
        public void onMessageEnd(byte type) {
            if (type == 'S') {
                parameterStatusEnd();
            } else if (type == 'C') {
                if (pooling != null && (startsWith(RESET_TAG) || startsWith(DISCARD_TAG))) {
                    pooling.reset();
                }
            } else if (type == 'Z') {
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
                    owner.registerBackendKey(key);
                }
            }
        }

        private void parameterStatusEnd() {
            if (pooling != null && pooling.followsParameters()) {
                reportParameter();
            }
            boolean matched = nameMatched == APPLICATION_NAME.length;
            inParameterStatus = false;
            int length = applicationNameLength;
            applicationNameLength = 0;
            if (!matched) {
                return;
            }
            int end = 0;
            while (end < length && applicationName[end] != 0) {
                end++;
            }
            owner.applicationNameReported(new String(applicationName, 0, end, StandardCharsets.UTF_8));
            applicationName = null; // rare: not worth keeping 64 bytes in every idle session
        }

        private boolean startsWith(byte[] tag) {
            if (bodyLength < tag.length) {
                return false;
            }
            for (int i = 0; i < tag.length; i++) {
                if (body[i] != tag[i]) {
                    return false;
                }
            }
            return true;
        }

        /** Transaction mode: hands the whole ParameterStatus to the pooler (one too long to keep: value null). */
        private void reportParameter() {
            int nameEnd = 0;
            while (nameEnd < parameterLength && parameter[nameEnd] != 0) {
                nameEnd++;
            }
            if (nameEnd == parameterLength) {
                return;
            }
            String name = new String(parameter, 0, nameEnd, StandardCharsets.UTF_8);
            int valueEnd = nameEnd + 1;
            while (valueEnd < parameterLength && parameter[valueEnd] != 0) {
                valueEnd++;
            }
            String value = parameterTooLong || valueEnd == parameterLength ? null
                    : new String(parameter, nameEnd + 1, valueEnd - nameEnd - 1, StandardCharsets.UTF_8);
            pooling.parameter(name, value);
        }

        @Override
        public void onUnframeable(String reason) {
            lose("server stream: " + reason);
        }
    }
}
