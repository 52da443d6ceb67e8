package io.connguard.mysql;

import io.connguard.core.api.ClientIdentity;
import io.connguard.core.api.SessionContext;
import io.connguard.core.api.SessionState;

import static io.connguard.mysql.MySqlCapabilities.CLIENT_DEPRECATE_EOF;
import static io.connguard.mysql.MySqlCapabilities.CLIENT_OPTIONAL_RESULTSET_METADATA;
import static io.connguard.mysql.MySqlCapabilities.MARIADB_CLIENT_CACHE_METADATA;
import static io.connguard.mysql.MySqlCapabilities.SERVER_MORE_RESULTS_EXISTS;
import static io.connguard.mysql.MySqlCapabilities.SERVER_STATUS_CURSOR_EXISTS;
import static io.connguard.mysql.MySqlCapabilities.SERVER_STATUS_IN_TRANS;

/**
 * Knows where every response of the command phase ends: it queues the response shape of each command the
 * client sends (clients may pipeline), follows the server's packets through OK / ERR / result sets /
 * LOCAL INFILE / prepared-statement metadata / authentication exchanges, and reports the session's state
 * from the status flags of the OK or EOF that ends the last pending response.
 *
 * @see <a href="https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_com_query_response.html">COM_QUERY response</a>
 * @see <a href="https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_binary_resultset.html">Binary result set</a>
 * @see <a href="https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_com_stmt_prepare.html">COM_STMT_PREPARE</a>
 * @see <a href="https://mariadb.com/kb/en/result-set-packets/">MariaDB result sets (metadata caching)</a>
 * @see <a href="https://mariadb.com/kb/en/progress-reporting/">MariaDB progress reporting</a>
 */
final class MySqlCommandTracker implements MySqlPacketScanner.Listener {

    /** What the client stream carries now, as the server's last packet decided. */
    enum ClientMode { COMMANDS, INFILE_DATA, AUTH_DATA }

    private enum Phase { FIRST, COLUMN_DEFS, METADATA_EOF, ROWS, PARAM_DEFS, PARAMS_EOF, PREPARED_COLUMNS, COLUMNS_EOF, INFILE }

    private static final int NO_STATUS = MySqlStatus.NONE;

    /** What transaction mode learns from the responses (null in other modes). */
    interface Pooling {
        /** An OK packet (or the 0xFE OK that ends a result set under CLIENT_DEPRECATE_EOF) of {@code length} bytes. */
        void ok(byte[] prefix, int prefixLength, int length);

        /** The first packet of a COM_STMT_PREPARE response (PREPARE_OK or ERR). */
        void prepareResponse(byte[] prefix, int prefixLength, int length);

        /** A command's response ended; {@code error}: with an ERR. */
        void ended(boolean error);
    }

    private final SessionContext context;
    private boolean deprecateEof;
    private boolean metadataFlag;
    /** The shape of the oldest pending response (when {@code count > 0}). */
    private int front;
    /**
     * The shapes of the responses pending behind it, a ring from {@code head}: made when the client pipelines
     * commands (most clients wait for each response, and keep none).
     */
    private int[] behind;
    private int head;
    /** Responses pending: the front one and {@code count - 1} behind it. */
    private int count;
    private Phase phase = Phase.FIRST;
    /** Column or parameter definitions still to come (a server sends at most 4,096 columns, 65,535 parameters). */
    private int defsRemaining;
    private int preparedColumns;
    private ClientMode clientMode = ClientMode.COMMANDS;
    private boolean inTransaction;
    private SessionState reported;
    private boolean lost;
    private boolean quit;
    private int nextSequenceId = 1;
    private ClientIdentity identity;
    private ClientIdentity changeUserIdentity;
    private Pooling pooling;
    /** The first byte of the last server packet (ERR: the response that ends with it failed). */
    private int lastFirst;

    MySqlCommandTracker(SessionContext context, ClientIdentity identity) {
        this.context = context;
        this.identity = identity;
    }

    /** Transaction mode: reports OK packets, prepare responses and response ends to {@code pooling}. */
    void pooling(Pooling pooling) {
        this.pooling = pooling;
    }

    /** Authentication succeeded with these negotiated capabilities and the OK's status flags. */
    void start(long capabilities, int status) {
        deprecateEof = MySqlCapabilities.has(capabilities, CLIENT_DEPRECATE_EOF);
        metadataFlag = MySqlCapabilities.has(capabilities, CLIENT_OPTIONAL_RESULTSET_METADATA | MARIADB_CLIENT_CACHE_METADATA);
        inTransaction = (status & SERVER_STATUS_IN_TRANS) != 0;
        report(idleState());
    }

    /** A command packet (sequence id 0) began; {@code executeFlags} is COM_STMT_EXECUTE's cursor byte. */
    void onCommand(int command, int executeFlags) {
        nextSequenceId = 1;
        if (lost) {
            return;
        }
        int shape = MySqlCommand.responseOf(command, executeFlags);
        switch (shape) {
            case MySqlCommand.QUIT -> quit = true;
            case MySqlCommand.NO_RESPONSE -> {
                if (count == 0) {
                    report(idleState()); // client activity, no response to wait for
                }
            }
            case MySqlCommand.REPLICATION -> loseSync("replication command 0x" + Integer.toHexString(command));
            case MySqlCommand.UNKNOWN -> loseSync("unknown command 0x" + Integer.toHexString(command));
            default -> {
                enqueue(shape);
                report(SessionState.ACTIVE);
            }
        }
    }

    /** A client packet that is not a command: continuation, LOCAL INFILE data or authentication data. */
    void onClientPacket(int sequenceId, int length, boolean continuation) {
        nextSequenceId = (sequenceId + 1) & 0xFF;
        if (!lost && !continuation && clientMode == ClientMode.COMMANDS) {
            loseSync("client packet with sequence id " + sequenceId + " and length " + length + " between commands");
        } else if (!lost && clientMode == ClientMode.INFILE_DATA && length == 0 && !continuation) {
            clientMode = ClientMode.COMMANDS;
            phase = Phase.FIRST; // the server now answers the file with OK or ERR
        }
    }

    /** The identity a pending COM_CHANGE_USER will give the session once the server accepts it. */
    void expectChangeUser(ClientIdentity identity) {
        changeUserIdentity = identity;
    }

    @Override
    public void onPacket(int sequenceId, int length, boolean continuation, byte[] prefix, int prefixLength) {
        nextSequenceId = (sequenceId + 1) & 0xFF;
        if (lost || continuation) {
            return;
        }
        int first = prefixLength > 0 ? prefix[0] & 0xFF : -1;
        if (count == 0) {
            if (first != MySqlWire.ERR) { // a server may say why it closes (e.g. its own timeout)
                loseSync("server packet 0x" + Integer.toHexString(first) + " with no command pending");
            }
            return;
        }
        if (first == MySqlWire.ERR && MySqlStatus.isProgress(prefix, prefixLength)) {
            return;
        }
        lastFirst = first;
        switch (phase) {
            case FIRST -> onFirst(first, length, prefix, prefixLength);
            case COLUMN_DEFS -> {
                if (--defsRemaining == 0) {
                    phase = deprecateEof ? Phase.ROWS : Phase.METADATA_EOF;
                }
            }
            case METADATA_EOF -> onMetadataEof(first, prefix, prefixLength);
            case ROWS -> onRow(first, length, prefix, prefixLength);
            case PARAM_DEFS -> {
                if (--defsRemaining == 0) {
                    phase = deprecateEof ? preparedColumnsPhase() : Phase.PARAMS_EOF;
                }
            }
            case PARAMS_EOF -> {
                if (expectEof(first)) {
                    phase = preparedColumnsPhase();
                }
            }
            case PREPARED_COLUMNS -> {
                if (--defsRemaining == 0) {
                    if (deprecateEof) {
                        end(NO_STATUS);
                    } else {
                        phase = Phase.COLUMNS_EOF;
                    }
                }
            }
            case COLUMNS_EOF -> {
                if (expectEof(first)) {
                    end(MySqlStatus.eof(prefix, prefixLength));
                }
            }
            case INFILE -> loseSync("server packet 0x" + Integer.toHexString(first) + " during LOCAL INFILE");
        }
    }

    private void onFirst(int first, int length, byte[] prefix, int prefixLength) {
        int shape = front;
        switch (shape) {
            case MySqlCommand.SIMPLE -> {
                if (first == MySqlWire.OK) {
                    okSeen(prefix, prefixLength, length);
                    end(MySqlStatus.ok(prefix, prefixLength));
                } else if (first == MySqlWire.EOF) {
                    end(MySqlStatus.terminator(prefix, prefixLength, deprecateEof));
                } else if (first == MySqlWire.ERR) {
                    end(NO_STATUS);
                } else {
                    loseSync("unexpected response 0x" + Integer.toHexString(first));
                }
            }
            case MySqlCommand.STATISTICS -> end(NO_STATUS);
            case MySqlCommand.ROWS -> onRow(first, length, prefix, prefixLength);
            case MySqlCommand.PREPARE -> onPrepareOk(first, length, prefix, prefixLength);
            case MySqlCommand.CHANGE_USER -> {
                if (first == MySqlWire.OK) {
                    end(MySqlStatus.ok(prefix, prefixLength));
                } else if (first == MySqlWire.ERR) {
                    end(NO_STATUS);
                } else {
                    clientMode = ClientMode.AUTH_DATA; // AuthSwitchRequest, AuthMoreData: the client answers
                }
            }
            default -> onResultStart(first, length, prefix, prefixLength);
        }
    }

    private void onResultStart(int first, int length, byte[] prefix, int prefixLength) {
        switch (first) {
            case MySqlWire.OK -> {
                okSeen(prefix, prefixLength, length);
                endOrNextResult(MySqlStatus.ok(prefix, prefixLength));
            }
            case MySqlWire.ERR -> end(NO_STATUS);
            case MySqlWire.LOCAL_INFILE -> {
                phase = Phase.INFILE;
                clientMode = ClientMode.INFILE_DATA;
            }
            default -> {
                long columns = MySqlWire.readLenencInt(prefix, 0, prefixLength);
                if (first == MySqlWire.EOF || columns <= 0) {
                    loseSync("unexpected result set header 0x" + Integer.toHexString(first));
                    return;
                }
                int size = MySqlWire.lenencSize(first);
                boolean metadataFollows = !metadataFlag || length <= size || prefix[size] != 0;
                defsRemaining = metadataFollows ? (int) Math.min(columns, Integer.MAX_VALUE) : 0;
                phase = defsRemaining > 0 ? Phase.COLUMN_DEFS : deprecateEof ? Phase.ROWS : Phase.METADATA_EOF;
            }
        }
    }

    private void onMetadataEof(int first, byte[] prefix, int prefixLength) {
        if (first == MySqlWire.ERR) {
            end(NO_STATUS);
        } else if (expectEof(first)) {
            int status = MySqlStatus.eof(prefix, prefixLength);
            boolean cursorOpened = front == MySqlCommand.EXECUTE_CURSOR && status != NO_STATUS
                    && (status & SERVER_STATUS_CURSOR_EXISTS) != 0;
            if (cursorOpened) {
                end(status); // rows come later, through COM_STMT_FETCH
            } else {
                phase = Phase.ROWS;
            }
        }
    }

    private void onRow(int first, int length, byte[] prefix, int prefixLength) {
        if (first == MySqlWire.ERR) {
            end(NO_STATUS);
        } else if (first == MySqlWire.EOF && length < (deprecateEof ? MySqlWire.MAX_PAYLOAD : 9)) {
            if (deprecateEof) {
                okSeen(prefix, prefixLength, length);
            }
            endOrNextResult(MySqlStatus.terminator(prefix, prefixLength, deprecateEof));
        } else {
            phase = Phase.ROWS;
        }
    }

    private void onPrepareOk(int first, int length, byte[] prefix, int prefixLength) {
        if (pooling != null && (first == MySqlWire.ERR || first == MySqlWire.OK)) {
            pooling.prepareResponse(prefix, prefixLength, length);
        }
        if (first == MySqlWire.ERR) {
            end(NO_STATUS);
            return;
        }
        if (first != MySqlWire.OK || prefixLength < 9) {
            loseSync("unexpected COM_STMT_PREPARE response 0x" + Integer.toHexString(first));
            return;
        }
        int columns = MySqlWire.readInt2(prefix, 5);
        int params = MySqlWire.readInt2(prefix, 7);
        boolean metadataFollows = !metadataFlag || length <= 12 || prefixLength <= 12 || prefix[12] != 0;
        preparedColumns = metadataFollows ? columns : 0;
        defsRemaining = metadataFollows ? params : 0;
        phase = defsRemaining > 0 ? Phase.PARAM_DEFS : preparedColumnsPhase();
    }

    private Phase preparedColumnsPhase() {
        defsRemaining = preparedColumns;
        if (defsRemaining == 0) {
            end(NO_STATUS);
            return Phase.FIRST;
        }
        return Phase.PREPARED_COLUMNS;
    }

    private boolean expectEof(int first) {
        if (first == MySqlWire.EOF) {
            return true;
        }
        loseSync("expected EOF, got 0x" + Integer.toHexString(first));
        return false;
    }

    private void endOrNextResult(int status) {
        if (status != NO_STATUS && (status & SERVER_MORE_RESULTS_EXISTS) != 0) {
            phase = Phase.FIRST;
            inTransaction = (status & SERVER_STATUS_IN_TRANS) != 0;
        } else {
            end(status);
        }
    }

    private void okSeen(byte[] prefix, int prefixLength, int length) {
        if (pooling != null) {
            pooling.ok(prefix, prefixLength, length);
        }
    }

    private void end(int status) {
        if (pooling != null) {
            pooling.ended(lastFirst == MySqlWire.ERR);
        }
        int shape = front;
        count--;
        if (count > 0) {
            front = behind[head];
            head = (head + 1) % behind.length;
        }
        phase = Phase.FIRST;
        defsRemaining = 0;
        if (status != NO_STATUS) {
            inTransaction = (status & SERVER_STATUS_IN_TRANS) != 0;
        }
        if (shape == MySqlCommand.CHANGE_USER) {
            clientMode = ClientMode.COMMANDS;
            if (status != NO_STATUS && changeUserIdentity != null) {
                identity = changeUserIdentity;
                context.identified(identity);
            }
            changeUserIdentity = null;
        }
        if (count == 0) {
            report(idleState());
        }
    }

    private void enqueue(int shape) {
        if (count == 0) {
            front = shape;
            count = 1;
            return;
        }
        int queued = count - 1;
        if (behind == null || queued == behind.length) {
            int[] grown = new int[behind == null ? 4 : behind.length * 2];
            for (int i = 0; i < queued; i++) {
                grown[i] = behind[(head + i) % behind.length];
            }
            behind = grown;
            head = 0;
        }
        behind[(head + queued) % behind.length] = shape;
        count++;
    }

    private SessionState idleState() {
        return inTransaction ? SessionState.IDLE_IN_TRANSACTION : SessionState.IDLE;
    }

    private void report(SessionState state) {
        if (state != reported || state != SessionState.ACTIVE) {
            reported = state;
            context.stateChanged(state);
        }
    }

    /** Reports the state again (core starts counting a session that waited without a slot). */
    void reportAgain() {
        if (!lost) {
            context.stateChanged(reported);
        }
    }

    private void loseSync(String reason) {
        if (!lost) {
            lost = true;
            reported = SessionState.UNKNOWN;
            context.lostSync(reason);
        }
    }

    /** Who the session is now: the handshake's identity, or the last accepted COM_CHANGE_USER's. */
    ClientIdentity identity() {
        return identity;
    }

    ClientMode clientMode() {
        return lost ? ClientMode.COMMANDS : clientMode;
    }

    boolean lost() {
        return lost;
    }

    /** The client has sent COM_QUIT: the server needs no goodbye of ours. */
    boolean quit() {
        return quit;
    }

    /** The last OK or EOF said the session is inside a transaction. */
    boolean inTransaction() {
        return inTransaction;
    }

    /** No response pending and the client stream is between commands. */
    boolean idle() {
        return count == 0 && clientMode == ClientMode.COMMANDS;
    }

    /** Whether the next server packet is the first of a COM_STMT_PREPARE's response (PREPARE_OK or ERR). */
    boolean prepareResponseNext() {
        return count > 0 && phase == Phase.FIRST && front == MySqlCommand.PREPARE;
    }

    /** The sequence id the client expects next from the server. */
    int nextSequenceId() {
        return idle() ? 1 : nextSequenceId;
    }
}
