package io.connguard.mysql;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;

import java.util.ArrayDeque;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;

/**
 * Makes one client's binary-protocol prepared statements (COM_STMT_*) work in transaction mode, where
 * its transactions run on whichever server connection is free. The client sees statement ids minted by
 * connguard, stable whatever connection serves it; each server connection has its own ids
 * ({@link MySqlServerStatements}). The pooler calls it at packet boundaries (it never reads a stream):
 *
 * <ul>
 * <li>COM_STMT_PREPARE from the client: {@link #onPrepare} keeps the query text (within {@link Limits};
 *     beyond them the client gets ERR 1461 in order, as from a server at {@code max_prepared_stmt_count})
 *     and the command is forwarded; the first packet of its response goes to {@link #onPrepareResponse},
 *     which on a PREPARE_OK records the statement for the client and the connection and rewrites the
 *     4-byte statement id in place to the client's id (the definitions that follow pass untouched).</li>
 * <li>COM_STMT_EXECUTE, SEND_LONG_DATA, RESET, FETCH, CLOSE and MariaDB's COM_STMT_BULK_EXECUTE (whose
 *     drivers send the parameter types with every batch) from the client: {@link #onCommand} decides a
 *     {@link Route}. The id is rewritten in place (same length) to the serving connection's id. When the
 *     statement is not prepared there, {@link Route#PREPARE_FIRST}: the pooler sends
 *     {@link #injectedPrepare()}, feeds every packet of its response to {@link #onInjectedPacket} (all are
 *     swallowed, in order), then calls {@link #onCommand} again. An ERR of that prepare reaches the client
 *     as the ERR of its own command ({@link #takeOutput()}, sequence id 1); for SEND_LONG_DATA, which has no
 *     response, at the statement's next EXECUTE, as a server reports long-data errors.</li>
 * <li>An EXECUTE whose parameters were bound earlier ({@code new_params_bound_flag} 0) while the serving
 *     connection's statement last had other types bound (bound on another connection, or by another
 *     client): {@link Route#REWRITE_HEAD}, the pooler sends {@link #takeOutput()} (a new header and the
 *     head of the EXECUTE with the flag set and the client's types) in place of the first
 *     {@link #replacedBytes()} bytes of the packet, and the rest of the client's packet after it.</li>
 * <li>COM_STMT_CLOSE: the client forgets the statement; nothing is sent ({@link Route#DROP}). It stays
 *     prepared on the connection for later reuse by any client until the connection's LRU closes it.</li>
 * <li>MariaDB's id 0xFFFFFFFF ("the statement just prepared", pipelined after a PREPARE) is forwarded
 *     unchanged: the PREPARE before it was forwarded on the same connection.</li>
 * </ul>
 *
 * <p>Long data sent but not yet executed, and cursors opened by an EXECUTE, live on the server connection:
 * while {@link #needsSameConnection()} the pooler keeps the client on it. One instance per client
 * session, used on its event loop.
 *
 * @see <a href="https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_com_stmt_execute.html">COM_STMT_EXECUTE</a>
 * @see <a href="https://mariadb.com/kb/en/com_stmt_execute/">MariaDB COM_STMT_EXECUTE</a>
 */
final class MySqlPreparedStatements {

    /** What the pooler does with a client's statement command. */
    enum Route {
        /** Send the packet (its id rewritten in place). */
        FORWARD,
        /** Send {@link #injectedPrepare()} first, swallow its response, then ask again. */
        PREPARE_FIRST,
        /** Send {@link #takeOutput()} instead of the packet's first {@link #replacedBytes()} bytes, then the rest. */
        REWRITE_HEAD,
        /** Send nothing upstream; send {@link #takeOutput()} to the client (an ERR). */
        ANSWER,
        /** Send nothing, answer nothing. */
        DROP
    }

    /** Result of {@link #onInjectedPacket}. */
    enum Injected { MORE, DONE, FAILED }

    /** Bounds on one client's statements: how many, and the bytes of their query texts. */
    record Limits(int maxStatements, long maxTextBytes) {
    }

    static final int COM_STMT_PREPARE = 0x16, COM_STMT_EXECUTE = 0x17, COM_STMT_SEND_LONG_DATA = 0x18,
            COM_STMT_CLOSE = 0x19, COM_STMT_RESET = 0x1A, COM_STMT_FETCH = 0x1C, COM_STMT_BULK_EXECUTE = 0xFA;
    /** MariaDB: "the statement prepared last" in a pipeline. */
    static final int LAST_PREPARED = 0xFFFFFFFF;

    private static final class Statement {
        final MySqlServerStatements.Text text;
        final int params;
        byte[] types;
        byte[] deferredError;
        boolean longData;
        boolean cursor;

        Statement(MySqlServerStatements.Text text, int params) {
            this.text = text;
            this.params = params;
        }
    }

    private static final class Pending {
        final MySqlServerStatements.Text text;
        boolean closed;

        Pending(MySqlServerStatements.Text text) {
            this.text = text;
        }
    }

    private final Limits limits;
    private final ByteBufAllocator alloc;
    private final Map<Integer, Statement> statements = new HashMap<>();
    private final ArrayDeque<Pending> pending = new ArrayDeque<>(2);   // small: grows for pipelined prepares
    private int nextId = 1;
    private int lastMinted = LAST_PREPARED;
    private long textBytes;

    private Statement injecting;
    private int injectingCommand;
    private int injectRemaining = -1;
    private ByteBuf output;
    private int replaced;

    MySqlPreparedStatements(Limits limits, ByteBufAllocator alloc) {
        this.limits = limits;
        this.alloc = alloc;
    }

    // ------------------------------------------------------------------ COM_STMT_PREPARE

    /**
     * A COM_STMT_PREPARE whose whole payload ({@code 0x16} and the query text) is at {@code payloadIndex}.
     * Returns {@link Route#FORWARD}, or {@link Route#ANSWER} beyond the limits.
     */
    Route onPrepare(ByteBuf buf, int payloadIndex, int payloadLength) {
        Route admitted = admitPrepare(payloadLength);
        if (admitted != Route.FORWARD) {
            return admitted;
        }
        int textLength = payloadLength - 1;
        byte[] text = new byte[textLength];
        buf.getBytes(payloadIndex + 1, text);
        pending.add(new Pending(new MySqlServerStatements.Text(text)));
        textBytes += textLength;
        return Route.FORWARD;
    }

    /**
     * The limits' verdict on a COM_STMT_PREPARE of {@code payloadLength} bytes, from its header alone (before
     * its text is gathered): {@link Route#FORWARD}, or {@link Route#ANSWER} with the ERR in {@link #takeOutput()}.
     */
    Route admitPrepare(int payloadLength) {
        int textLength = payloadLength - 1;
        if (statements.size() + pending.size() >= limits.maxStatements()) {
            return answer(1461, "42000", "Can't create more than " + limits.maxStatements()
                    + " prepared statements per client connection (connguard)");
        }
        if (textBytes + textLength > limits.maxTextBytes()) {
            return answer(1461, "42000", "Prepared statement text over connguard's limit of "
                    + limits.maxTextBytes() + " bytes per client connection");
        }
        return Route.FORWARD;
    }

    /**
     * The first packet of the response to a forwarded COM_STMT_PREPARE (PREPARE_OK or ERR; at least 9
     * payload bytes readable). On PREPARE_OK the statement id is rewritten in place and the client's id
     * returned; on ERR, -1.
     */
    int onPrepareResponse(ByteBuf buf, int payloadIndex, int payloadLength, MySqlServerStatements server) {
        Pending prepared = pending.poll();
        if (prepared == null) {
            throw new IllegalStateException("a prepare response without a prepare");
        }
        if (buf.getUnsignedByte(payloadIndex) != MySqlWire.OK) {
            textBytes -= prepared.text.bytes().length;
            return -1;
        }
        int serverId = buf.getIntLE(payloadIndex + 1);
        int columns = buf.getUnsignedShortLE(payloadIndex + 5);
        int params = buf.getUnsignedShortLE(payloadIndex + 7);
        server.put(prepared.text, serverId, params, columns);
        Statement statement = new Statement(prepared.text, params);
        int clientId = mintId();
        if (prepared.closed) {
            textBytes -= prepared.text.bytes().length;         // closed by a pipelined COM_STMT_CLOSE(0xFFFFFFFF)
        } else {
            lastMinted = clientId;
            statements.put(clientId, statement);
        }
        buf.setIntLE(payloadIndex + 1, clientId);
        return clientId;
    }

    // ------------------------------------------------------------------ EXECUTE, SEND_LONG_DATA, RESET, FETCH, CLOSE

    /**
     * A client's statement command with sequence id {@code sequenceId}; {@code available} payload bytes are
     * readable from {@code payloadIndex} (for an EXECUTE at least {@link #executeHeadLength} of them, or all).
     */
    Route onCommand(ByteBuf buf, int payloadIndex, int available, int payloadLength, int sequenceId,
                    MySqlServerStatements server) {
        int command = payloadLength > 0 ? buf.getUnsignedByte(payloadIndex) : -1;
        if (payloadLength < 5 || command == COM_STMT_EXECUTE && payloadLength < 10) {
            return command == COM_STMT_CLOSE ? Route.DROP : Route.FORWARD;   // malformed: the server answers it
        }
        int id = buf.getIntLE(payloadIndex + 1);
        if (command == COM_STMT_CLOSE) {
            if (id == LAST_PREPARED) {
                if (!pending.isEmpty()) {
                    pending.peekLast().closed = true;
                    return Route.DROP;
                }
                id = lastMinted;
            }
            Statement closed = statements.remove(id);
            if (closed != null) {
                textBytes -= closed.text.bytes().length;
            }
            return Route.DROP;
        }
        if (id == LAST_PREPARED) {
            return Route.FORWARD;                               // its PREPARE went to this connection just before
        }
        Statement statement = statements.get(id);
        if (statement == null) {
            if (command == COM_STMT_SEND_LONG_DATA) {
                return Route.DROP;
            }
            return answer(1243, "HY000", "Unknown prepared statement handler (" + Integer.toUnsignedString(id)
                    + ") given to " + (command == COM_STMT_EXECUTE ? "mysqld_stmt_execute" : "mysqld_stmt_command"));
        }
        if ((command == COM_STMT_EXECUTE || command == COM_STMT_BULK_EXECUTE) && statement.deferredError != null) {
            byte[] error = statement.deferredError;
            statement.deferredError = null;
            statement.longData = false;
            return answer(error);
        }
        MySqlServerStatements.Entry entry = server.lookup(statement.text);
        if (entry == null) {
            injecting = statement;
            injectingCommand = command;
            injectRemaining = -1;
            return Route.PREPARE_FIRST;
        }
        buf.setIntLE(payloadIndex + 1, entry.serverId);
        switch (command) {
            case COM_STMT_SEND_LONG_DATA -> statement.longData = true;
            case COM_STMT_BULK_EXECUTE -> statement.longData = false;
            case COM_STMT_RESET -> {
                statement.longData = false;
                statement.cursor = false;
            }
            case COM_STMT_EXECUTE -> {
                return execute(buf, payloadIndex, available, payloadLength, sequenceId, statement, entry);
            }
            default -> {
            }
        }
        return Route.FORWARD;
    }

    /** How many leading payload bytes of an EXECUTE of client statement {@code id} {@link #onCommand} reads. */
    int executeHeadLength(int id) {
        Statement statement = statements.get(id);
        if (statement == null || statement.params == 0) {
            return 10;
        }
        return 11 + (statement.params + 7) / 8 + 2 * statement.params;
    }

    private Route execute(ByteBuf buf, int payloadIndex, int available, int payloadLength, int sequenceId,
                          Statement statement, MySqlServerStatements.Entry entry) {
        statement.longData = false;
        statement.cursor = (buf.getUnsignedByte(payloadIndex + 5) & 0x07) != 0;
        int params = statement.params;
        int flagOffset = 10 + (params + 7) / 8;
        if (params == 0 || payloadLength <= flagOffset) {
            return Route.FORWARD;
        }
        if (available <= flagOffset) {
            throw new IllegalArgumentException("the head of the EXECUTE is not readable");
        }
        if (buf.getUnsignedByte(payloadIndex + flagOffset) != 0) {   // new_params_bound_flag: the types follow
            int typesLength = 2 * params;
            if (payloadLength < flagOffset + 1 + typesLength) {
                return Route.FORWARD;                           // malformed: the server answers it
            }
            if (available < flagOffset + 1 + typesLength) {
                throw new IllegalArgumentException("the head of the EXECUTE is not readable");
            }
            byte[] types = new byte[typesLength];
            buf.getBytes(payloadIndex + flagOffset + 1, types);
            statement.types = types;
            entry.boundTypes = types;
            return Route.FORWARD;
        }
        if (statement.types == null || Arrays.equals(statement.types, entry.boundTypes)) {
            return Route.FORWARD;
        }
        int newLength = payloadLength + statement.types.length;
        if (newLength >= MySqlWire.MAX_PAYLOAD) {
            return answer(1153, "08S01", "connguard cannot re-send the parameter types of an EXECUTE this large");
        }
        ByteBuf head = alloc.buffer(MySqlWire.HEADER_SIZE + flagOffset + 1 + statement.types.length);
        head.writeMediumLE(newLength).writeByte(sequenceId);
        head.writeBytes(buf, payloadIndex, flagOffset);
        head.writeByte(1).writeBytes(statement.types);
        entry.boundTypes = statement.types;
        setOutput(head);
        replaced = MySqlWire.HEADER_SIZE + flagOffset + 1;
        return Route.REWRITE_HEAD;
    }

    // ------------------------------------------------------------------ the injected COM_STMT_PREPARE

    /** The COM_STMT_PREPARE to send before the command that got {@link Route#PREPARE_FIRST}; owned by the caller. */
    ByteBuf injectedPrepare() {
        byte[] text = injecting.text.bytes();
        ByteBuf out = alloc.buffer(MySqlWire.HEADER_SIZE + 1 + text.length);
        out.writeMediumLE(1 + text.length).writeByte(0).writeByte(COM_STMT_PREPARE).writeBytes(text);
        return out;
    }

    /**
     * One packet of the response to {@link #injectedPrepare()}, all swallowed: the first (PREPARE_OK, at
     * least 13 bytes readable when the packet has them, or a whole ERR), then each parameter and column
     * definition and their EOFs ({@code deprecateEof}: none).
     */
    Injected onInjectedPacket(ByteBuf buf, int payloadIndex, int payloadLength, boolean deprecateEof,
                              MySqlServerStatements server) {
        if (injecting == null) {
            throw new IllegalStateException("no injected prepare in progress");
        }
        if (injectRemaining < 0) {
            if (buf.getUnsignedByte(payloadIndex) != MySqlWire.OK) {
                byte[] error = new byte[payloadLength];
                buf.getBytes(payloadIndex, error);
                if (injectingCommand == COM_STMT_SEND_LONG_DATA) {
                    injecting.deferredError = error;
                } else {
                    answer(error);
                }
                injecting = null;
                return Injected.FAILED;
            }
            int serverId = buf.getIntLE(payloadIndex + 1);
            int columns = buf.getUnsignedShortLE(payloadIndex + 5);
            int params = buf.getUnsignedShortLE(payloadIndex + 7);
            boolean metadata = payloadLength <= 12 || buf.getUnsignedByte(payloadIndex + 12) != 0;
            server.put(injecting.text, serverId, params, columns);
            injectRemaining = !metadata ? 0
                    : params + (params > 0 && !deprecateEof ? 1 : 0) + columns + (columns > 0 && !deprecateEof ? 1 : 0);
        } else {
            injectRemaining--;
        }
        if (injectRemaining == 0) {
            injecting = null;
            injectRemaining = -1;
            return Injected.DONE;
        }
        return Injected.MORE;
    }

    // ------------------------------------------------------------------ state

    /** The packet prepared by the last {@link Route#ANSWER} or {@link Route#REWRITE_HEAD}; owned by the caller. */
    ByteBuf takeOutput() {
        ByteBuf taken = output;
        output = null;
        return taken;
    }

    /** Bytes of the client's packet (header included) that {@link Route#REWRITE_HEAD}'s output replaces. */
    int replacedBytes() {
        return replaced;
    }

    /** Long data sent and not executed, or a cursor open: the client must stay on its server connection. */
    boolean needsSameConnection() {
        for (Statement statement : statements.values()) {
            if (statement.longData || statement.cursor) {
                return true;
            }
        }
        return false;
    }

    /** The client reset its session (COM_RESET_CONNECTION, COM_CHANGE_USER): its statements are gone. */
    void forgetAll() {
        statements.clear();
        textBytes = 0;
        pending.forEach(p -> textBytes += p.text.bytes().length);
    }

    /** The client's statements (for /sessions and tests). */
    int statementCount() {
        return statements.size();
    }

    /** The query text bytes kept for this client. */
    long textBytes() {
        return textBytes;
    }

    /** Releases a packet not taken (the session closed). */
    void release() {
        setOutput(null);
    }

    private int mintId() {
        int id = nextId++;
        while (id == 0 || id == LAST_PREPARED || statements.containsKey(id)) {
            id = nextId++;
        }
        return id;
    }

    private Route answer(int code, String sqlState, String message) {
        setOutput(MySqlErrorWriter.write(alloc, 1, code, sqlState, message));
        return Route.ANSWER;
    }

    private Route answer(byte[] errPayload) {
        ByteBuf out = alloc.buffer(MySqlWire.HEADER_SIZE + errPayload.length);
        out.writeMediumLE(errPayload.length).writeByte(1).writeBytes(errPayload);
        setOutput(out);
        return Route.ANSWER;
    }

    private void setOutput(ByteBuf buf) {
        if (output != null) {
            output.release();
        }
        output = buf;
    }
}
