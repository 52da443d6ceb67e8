package io.connguard.mysql;

import io.connguard.core.api.SessionContext;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.CompositeByteBuf;
import io.netty.buffer.Unpooled;

import java.util.Arrays;

/**
 * One MySQL client in transaction mode ({@code pool.mode: transaction}): it holds a server connection only
 * while a command is in flight, a transaction is open, a prepared statement keeps a cursor or long data on
 * it, or a pin keeps it there.
 *
 * <ul>
 * <li>As the command scanner's gate it sees every command before it leaves. Without a server connection
 *     the command and what follows are held back (no copy) and core is asked for one; COM_QUIT never reaches
 *     a server connection.</li>
 * <li>On each connection lent, the client's session state ({@link MySqlSessionState}) is replayed first,
 *     when it differs: its character set, one {@code SET SESSION ...}, COM_INIT_DB of its schema, and
 *     {@code DO LAST_INSERT_ID(n)}; their answers are swallowed and the client's commands follow once they
 *     succeed. A failed replay reaches the client as the ERR of its command.</li>
 * <li>COM_STMT_* go through {@link MySqlPreparedStatements} (ids minted per client, mapped per connection,
 *     re-prepared where missing); an answer connguard must give in the server's place is sent as a
 *     {@code SIGNAL} with the same code, so that it arrives in order with the server's other answers.</li>
 * <li>The text of every COM_QUERY and COM_STMT_PREPARE is read by {@link MySqlStatementClassifier}: a pin
 *     keeps the client on its connection until the state is gone, and a connection that served a pin is
 *     reset (COM_RESET_CONNECTION) before another client gets it. Every OK packet with session-state
 *     information updates the client's state and the connection's.</li>
 * <li>When the last response ends outside a transaction with nothing pending, the connection goes back
 *     ({@link SessionContext#serverIdle}), without a reset unless a pin was held.</li>
 * </ul>
 */
final class MySqlTransactionMode implements MySqlCommandScanner.Gate, MySqlCommandTracker.Pooling,
        MySqlPacketScanner.BodySink {

    /** Client bytes held while no server connection is lent, beyond which the client is not read. */
    static final int HOLD_LIMIT = 64 * 1024;
    /** Room for a held prepare response's start: a header and the 12-byte PREPARE_OK (an ERR grows it). */
    private static final int HELD_PREPARE = 16;
    /** Prepared statements kept per client connection: how many, and their text bytes. */
    static final MySqlPreparedStatements.Limits CLIENT_STATEMENTS = new MySqlPreparedStatements.Limits(2000, 8L << 20);
    private static final int COM_RESET_CONNECTION = 0x1F;
    private static final int MAX_INJECTED_PACKET = 1 << 20;

    private enum Injection { NONE, REPLAY, PREPARE }

    private final SessionContext context;
    private final MySqlSession session;
    private final MySqlCommandTracker tracker;
    private final MySqlCommandScanner commands;
    /** Reads the lent connection's stream: taken from the event loop's spares while a connection is lent. */
    private MySqlPacketScanner responses;
    private final boolean deprecateEof;
    /** What the client changed of its session since it was fresh. */
    private final MySqlSessionState state;
    /** The client's prepared statements: made at its first COM_STMT_* command (most idle clients have none). */
    private MySqlPreparedStatements prepared;
    private final MySqlPins pins;

    private MySqlServerConnection server;
    private boolean started;
    private boolean asked;
    private boolean lost;

    /** Answers of connguard's own commands still to swallow, and which they are. */
    private int swallow;
    private Injection injection = Injection.NONE;
    private MySqlPacketAssembler swallowed;
    private MySqlStateReplay replay;
    /** The ERR of a failed replay or injected prepare, answered to the next command. */
    private ByteBuf pendingError;
    /** The injected prepare of a SEND_LONG_DATA failed: the command is dropped (its EXECUTE gets the error). */
    private boolean dropNext;
    /** Client COM_STMT_PREPAREs answered by connguard: their ERR is no server prepare response. */
    private int answeredPrepares;

    /** What the gate decided for the command it let pass. */
    private ByteBuf replacement;
    private boolean dropRest;
    private boolean quitting;
    private boolean changeUser;
    /** The server buffer being scanned (a PREPARE_OK's id is rewritten in it). */
    private ByteBuf scanning;

    MySqlTransactionMode(SessionContext context, MySqlSession session, MySqlCommandTracker tracker,
                         MySqlCommandScanner commands, long capabilities, String database) {
        this.context = context;
        this.session = session;
        this.tracker = tracker;
        this.commands = commands;
        this.deprecateEof = (capabilities & MySqlCapabilities.CLIENT_DEPRECATE_EOF) != 0;
        this.state = new MySqlSessionState(database);
        tracker.pooling(this);
        this.pins = new MySqlPins(context);
        commands.textListener(pins);
        commands.gate(this);
    }

    // ---------------------------------------------------------------- lending

    /** The client has its handshake OK on {@code first}: it is given back at once, replayed at the next borrow. */
    void started(MySqlServerConnection first, int status) {
        server = first;
        takeScanner();
        started = true;
        pins.followStatus(status, state.ansiQuotes());
        checkRelease();
    }

    /** A server connection was lent for the client's next command: the client's state is replayed first. */
    void lent(MySqlServerConnection connection) {
        server = connection;
        takeScanner();
        asked = false;
        pins.lendStarted();
        session.threadLent(connection.threadId());
        java.util.List<Integer> closes = connection.statements().takeCloses();
        int collation = session.collation();
        ByteBuf out = closes.isEmpty() && connection.collation() == collation && state.sameAs(connection.state())
                && !connection.state().loginVariablesChanged() ? null : context.alloc().buffer(256);
        if (out == null) {
            resume();                                           // nothing to close or replay: no buffer either
            return;
        }
        for (int id : closes) {
            ByteBuf close = closePacket(id);
            out.writeBytes(close);
            close.release();
        }
        try {
            replay = MySqlStateReplay.write(out, state, connection, collation);
        } catch (IllegalStateException e) {
            out.release();
            lose(e.getMessage());
            return;
        }
        if (out.isReadable()) {
            context.toUpstream(out);
        } else {
            out.release();
        }
        if (replay == null) {
            resume();
            return;
        }
        swallow = 1;
        injection = Injection.REPLAY;
    }

    /** The held commands go through the gate again. */
    private void resume() {
        commands.resume();
        checkRelease();
    }

    /** Gives the connection back when the client has nothing in flight, no transaction and no pin. */
    void checkRelease() {
        if (server == null || !started || swallow > 0 || lost || pins.any() || tracker.lost()) {
            return;
        }
        if (!tracker.idle() || tracker.inTransaction() || !responsesAtBoundary() || !commands.atBoundary()
                || prepared != null && prepared.needsSameConnection()) {
            return;
        }
        MySqlServerConnection done = server;
        server = null;
        responses.giveBack();
        responses = null;
        for (int id : done.statements().takeCloses()) {
            context.toUpstream(closePacket(id));
        }
        session.threadReturned();
        boolean reset = pins.heldThisLend();
        context.transactionServed();
        context.serverIdle(reset);
    }

    // ---------------------------------------------------------------- the gate (client → server)

    @Override
    public int needed(ByteBuf buf, int index, int end, int length, int command) {
        int header = MySqlWire.HEADER_SIZE;
        return switch (command) {
            case MySqlPreparedStatements.COM_STMT_PREPARE -> length <= MAX_INJECTED_PACKET ? header + length : header + 1;
            case MySqlPreparedStatements.COM_STMT_EXECUTE -> {
                if (length < 5 || end - index < header + 5) {
                    yield header + Math.min(length, 5);
                }
                yield header + Math.min(length, prepared().executeHeadLength(buf.getIntLE(index + header + 1)));
            }
            case MySqlPreparedStatements.COM_STMT_SEND_LONG_DATA, MySqlPreparedStatements.COM_STMT_CLOSE,
                 MySqlPreparedStatements.COM_STMT_RESET, MySqlPreparedStatements.COM_STMT_FETCH,
                 MySqlPreparedStatements.COM_STMT_BULK_EXECUTE -> header + Math.min(length, 5);
            default -> -1;
        };
    }

    @Override
    public boolean allows(ByteBuf buf, int index, int need) {
        int length = buf.getUnsignedMediumLE(index);
        int payload = index + MySqlWire.HEADER_SIZE;
        int command = buf.getUnsignedByte(payload);
        if (command == MySqlCommand.COM_QUIT) {
            quitting = true;
            return false;
        }
        if (command == MySqlCommand.COM_CHANGE_USER) {
            changeUser = true;
            return false;
        }
        if (command == MySqlPreparedStatements.COM_STMT_CLOSE && !lost) {
            prepared().onCommand(buf, payload, need - MySqlWire.HEADER_SIZE, length, 0, null);
            drop();                                             // no response: no server connection needed
            return true;
        }
        if (server == null || swallow > 0) {
            return false;
        }
        if (lost) {
            return true;
        }
        if (pendingError != null || dropNext) {
            ByteBuf error = pendingError;
            pendingError = null;
            dropNext = false;
            if (error == null) {
                drop();
            } else {
                answer(signal(error));
            }
            if (command == MySqlPreparedStatements.COM_STMT_PREPARE) {
                answeredPrepares++;
            }
            return true;
        }
        switch (command) {
            case COM_RESET_CONNECTION -> pins.add(MySqlPin.UNKNOWN.bit()); // it turns tracking off on the connection
            case MySqlPreparedStatements.COM_STMT_PREPARE -> routePrepare(buf, payload, need, length);
            case MySqlPreparedStatements.COM_STMT_EXECUTE, MySqlPreparedStatements.COM_STMT_SEND_LONG_DATA,
                 MySqlPreparedStatements.COM_STMT_RESET, MySqlPreparedStatements.COM_STMT_FETCH,
                 MySqlPreparedStatements.COM_STMT_BULK_EXECUTE -> {
                return routeStatement(buf, index, need, length);
            }
            default -> {
            }
        }
        return true;
    }

    private void routePrepare(ByteBuf buf, int payload, int need, int length) {
        if (need < MySqlWire.HEADER_SIZE + length) {
            answer(signal(1461, "42000", "Prepared statement text over connguard's limit of "
                    + MAX_INJECTED_PACKET + " bytes"));
            answeredPrepares++;
            return;
        }
        if (prepared().onPrepare(buf, payload, length) == MySqlPreparedStatements.Route.ANSWER) {
            answer(signal(prepared().takeOutput()));
            answeredPrepares++;
        }
    }

    private boolean routeStatement(ByteBuf buf, int index, int need, int length) {
        int payload = index + MySqlWire.HEADER_SIZE;
        MySqlPreparedStatements.Route route = prepared().onCommand(buf, payload, need - MySqlWire.HEADER_SIZE, length,
                buf.getUnsignedByte(index + 3), server.statements());
        switch (route) {
            case FORWARD -> {
            }
            case PREPARE_FIRST -> {
                injection = Injection.PREPARE;
                swallow = 1;
                context.toUpstream(prepared().injectedPrepare());
                return false;                                   // held until the prepare is answered
            }
            case REWRITE_HEAD -> {
                ByteBuf head = prepared().takeOutput();
                int replaced = prepared().replacedBytes();
                CompositeByteBuf both = context.alloc().compositeBuffer(2);
                both.addComponent(true, head);
                both.addComponent(true, buf.retainedSlice(index + replaced, need - replaced));
                replacement = both;
                dropRest = false;
            }
            case ANSWER -> answer(signal(prepared().takeOutput()));
            case DROP -> drop();
        }
        return true;
    }

    private void answer(ByteBuf query) {
        replacement = query;
        dropRest = true;
    }

    private void drop() {
        replacement = Unpooled.EMPTY_BUFFER;
        dropRest = true;
    }

    @Override
    public ByteBuf takeReplacement() {
        ByteBuf taken = replacement;
        replacement = null;
        return taken;
    }

    @Override
    public boolean dropsRest() {
        return dropRest;
    }

    @Override
    public void stopped() {
        if (quitting) {
            session.quit();
        } else if (changeUser) {
            context.violation("COM_CHANGE_USER is not supported on a pooled listener (pool.mode: transaction): "
                    + "connect as the other user instead");
        } else if (server == null && !asked) {
            asked = true;
            context.serverWanted(); // may lend at once: lent() then lets the held commands go
        }
    }

    @Override
    public void overflow() {
        context.violation("more than " + MySqlCommandScanner.MAX_HELD_BACK
                + " bytes sent while waiting for a server connection");
    }

    /** Core should stop reading the client: enough is held until a server connection is lent. */
    boolean holding() {
        return commands.heldBackBytes() >= HOLD_LIMIT;
    }

    // ---------------------------------------------------------------- server → client

    /** Server bytes while lent; they go to the client unless they answer connguard's own commands. */
    void serverBytes(ByteBuf bytes) {
        if (swallow > 0) {
            if (swallowed == null) {
                swallowed = new MySqlPacketAssembler(context.alloc(), MAX_INJECTED_PACKET);
            }
            swallowed.add(bytes);
            drain();
            return;
        }
        relay(bytes);
        checkRelease();
    }

    /**
     * Scans and forwards server bytes. The statement id of a PREPARE_OK is rewritten on its way, so the first
     * packet of a prepare response is held back while a read ends before its id (a server's bytes may be cut
     * anywhere): the held bytes go out once the rest has come and the id is rewritten across both.
     */
    private void relay(ByteBuf bytes) {
        takeScanner();                                          // bytes come only from a lent connection
        scanning = bytes;
        try {
            responses.scan(bytes, tracker);
        } finally {
            scanning = null;
        }
        boolean holding = responses.inPrefix() && tracker.prepareResponseNext();
        ByteBuf held = server.heldPrepare();
        if (holding && held != null && responses.packetStart() < 0) {
            held.writeBytes(bytes);                             // still short of the statement id
            bytes.release();
            return;
        }
        if (held != null) {
            server.holdPrepare(null);
            context.toClient(held);
        }
        if (holding && responses.packetStart() >= 0) {           // held from the packet's first byte, always
            int from = responses.packetStart();
            server.holdPrepare(context.alloc().heapBuffer(HELD_PREPARE).writeBytes(bytes, from, bytes.writerIndex() - from));
            bytes.writerIndex(from);
        }
        if (bytes.isReadable()) {
            context.toClient(bytes);
        } else {
            bytes.release();
        }
    }

    /** Writes the client's statement id over the server's in a PREPARE_OK whose start is held (see {@link #relay}). */
    private void rewriteAcross(ByteBuf held, int clientId) {
        for (int i = 0; i < 4; i++) {
            int at = MySqlWire.HEADER_SIZE + 1 + i;             // the id's bytes: after the header and the 0x00
            byte b = (byte) (clientId >>> (8 * i));
            if (at < held.readableBytes()) {
                held.setByte(held.readerIndex() + at, b);
            } else {
                scanning.setByte(scanning.readerIndex() + at - held.readableBytes(), b);
            }
        }
    }

    private void drain() {
        try {
            ByteBuf packet;
            while (swallow > 0 && !lost && (packet = swallowed.next()) != null) {
                try {
                    injected(packet);
                } finally {
                    packet.release();
                }
            }
        } catch (MalformedPacketException e) {
            lose("malformed answer to connguard's own command: " + e.getMessage());
        }
        if (swallow > 0 || lost) {
            return;
        }
        ByteBuf rest = swallowed.takeRest();
        if (rest != null) {
            relay(rest);
        }
        resume();
    }

    private void injected(ByteBuf packet) {
        int length = packet.readableBytes() - MySqlWire.HEADER_SIZE;
        if (injection == Injection.PREPARE) {
            switch (prepared().onInjectedPacket(packet, MySqlWire.HEADER_SIZE, length, deprecateEof, server.statements())) {
                case MORE -> {
                }
                case DONE -> swallow = 0;
                case FAILED -> {
                    swallow = 0;
                    pendingError = prepared().takeOutput();
                    dropNext = pendingError == null;            // SEND_LONG_DATA: its EXECUTE gets the error
                }
            }
            return;
        }
        if (replay.answer(packet, state)) {
            swallow = 0;
            pendingError = replay.takeError();
            if (pendingError != null) {
                pins.needReset();                               // what the connection holds is not known
            }
            replay = null;
        }
    }

    // ---------------------------------------------------------------- MySqlCommandTracker.Pooling

    @Override
    public void ok(byte[] prefix, int prefixLength, int length) {
        state.ok(prefix, prefixLength);
        if (server == null) {
            return;
        }
        server.state().ok(prefix, prefixLength);
        pins.followStatus(MySqlStatus.ok(prefix, prefixLength), state.ansiQuotes());
        MySqlOkCapture capture = server.okCapture();
        if (capture.begin(prefix, prefixLength, length)) {
            capture.accept(Unpooled.wrappedBuffer(prefix, 0, prefixLength), 0, prefixLength);
            responses.captureBody(this);
        }
    }

    @Override
    public void body(ByteBuf buf, int index, int length) {
        if (server != null) {
            server.okCapture().accept(buf, index, length);
        }
    }

    @Override
    public void end() {
        if (server == null) {
            return;
        }
        MySqlSessionChanges changes = server.okCapture().finish();
        String namesCollation = pins.namesCollation();
        state.apply(changes, namesCollation);
        server.state().apply(changes, namesCollation);
        if (changes == null || state.lost() || state.trackingChanged()) {
            pins.add(MySqlPin.UNKNOWN.bit());                   // the client's state is no longer known
        }
    }

    @Override
    public void prepareResponse(byte[] prefix, int prefixLength, int length) {
        boolean error = prefixLength > 0 && (prefix[0] & 0xFF) == MySqlWire.ERR;
        if (error && answeredPrepares > 0) {
            answeredPrepares--;                                 // connguard's own answer (a SIGNAL)
            return;
        }
        try {
            if (error) {
                prepared().onPrepareResponse(Unpooled.wrappedBuffer(prefix, 0, prefixLength), 0, prefixLength,
                        server.statements());
                return;
            }
            int at = responses.payloadIndex();
            if (at >= 0 && scanning != null && scanning.writerIndex() - at >= 9) {
                prepared().onPrepareResponse(scanning, at, length, server.statements());
            } else if (server.heldPrepare() != null && scanning != null && prefixLength >= 9) {
                byte[] head = Arrays.copyOf(prefix, prefixLength);
                rewriteAcross(server.heldPrepare(),
                        prepared().onPrepareResponse(Unpooled.wrappedBuffer(head), 0, length, server.statements()));
            } else {
                lose("a PREPARE_OK whose start was not held back");
            }
        } catch (IllegalStateException e) {
            lose(e.getMessage());
        }
    }

    @Override
    public void ended(boolean error) {
        pins.ended(error);
    }

    // ---------------------------------------------------------------- core's questions

    /** Why the client is pinned now, or null: the reasons' labels, comma-separated. */
    String pinReason() {
        return pins.reason();
    }

    /** When the client leaves holding an idle connection: whether what it left must be reset. */
    boolean needsReset() {
        return pins.heldThisLend();
    }

    private void takeScanner() {
        if (responses == null) {
            responses = MySqlPacketScanner.take();
        }
    }

    /** Whether the lent connection's stream stands between packets (true when none is lent). */
    boolean responsesAtBoundary() {
        return responses == null || responses.atBoundary();
    }

    /** When the client leaves: whether the lent connection can serve another client. */
    boolean reusable() {
        return server != null && !lost && swallow == 0 && server.heldPrepare() == null
                && (prepared == null || !prepared.needsSameConnection());
    }

    void close() {
        if (swallowed != null) {
            swallowed.close();
        }
        if (pendingError != null) {
            pendingError.release();
            pendingError = null;
        }
        if (replay != null) {
            replay.release();
            replay = null;
        }
        if (replacement != null) {
            replacement.release();
            replacement = null;
        }
        if (prepared != null) {
            prepared.release();
        }
    }

    // ---------------------------------------------------------------- helpers

    private MySqlPreparedStatements prepared() {
        if (prepared == null) {
            prepared = new MySqlPreparedStatements(CLIENT_STATEMENTS, context.alloc());
        }
        return prepared;
    }

    private void lose(String reason) {
        if (!lost) {
            lost = true;
            context.upstreamFailed("transaction mode lost track of the server connection: " + reason);
        }
    }

    private ByteBuf closePacket(int serverId) {
        return MySqlServerStatements.closePacket(context.alloc(), serverId);
    }

    private ByteBuf signal(ByteBuf err) {
        return MySqlSignal.of(context.alloc(), err);
    }

    private ByteBuf signal(int code, String sqlState, String message) {
        return MySqlSignal.of(context.alloc(), code, sqlState, message);
    }
}
