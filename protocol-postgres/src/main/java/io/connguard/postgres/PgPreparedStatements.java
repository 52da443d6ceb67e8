package io.connguard.postgres;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.Unpooled;
import io.netty.util.concurrent.FastThreadLocal;

import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import java.util.function.Consumer;

/**
 * Makes one client's named prepared statements work in transaction mode, where its transactions run on
 * whichever server connection is free: it keeps the client's statements (name → the Parse body: query
 * text and parameter types), and rewrites the client's messages for the server connection serving it now,
 * whose state is a {@link PgServerStatements}.
 *
 * <ul>
 * <li>Parse of a named statement: kept (within {@link Limits}); sent as a Parse under the connection's
 *     name for that text ({@code cg_N}), or answered locally with ParseComplete when the connection has it
 *     already (prepared by this client or another one earlier).</li>
 * <li>Bind, Describe ({@code S}) of a named statement: sent under the connection's name; when the
 *     connection has not prepared it yet, a Parse is injected before (its ParseComplete is swallowed;
 *     an error of it reaches the client in place of the response to its own message, and the statement
 *     is then not prepared there). A Bind's parameters are not copied: a new header and names are
 *     written, the rest of the client's message follows as slices of the buffers it came in.</li>
 * <li>Close ({@code S}) of a named statement: the client forgets it and gets CloseComplete locally; the
 *     statement stays prepared on the server connections for other clients and later reuse, until their
 *     LRU closes it (capacity of {@link PgServerStatements}; closes are sent before the first message of a
 *     transaction, never inside one, where portals made from the statement may be open).</li>
 * <li>A duplicate name, an unknown name, a limit or a name longer than {@link #MAX_NAME} gives the client
 *     an ErrorResponse (42P05, 26000, 53400, 54000) in order, and its messages up to Sync are dropped as the server would skip them. Unlike on the
 *     server, such an error does not abort an open transaction block.</li>
 * <li>DEALLOCATE ALL and DISCARD ALL (their CommandComplete, seen by {@link PgServerStatements}) forget
 *     every statement of the client and of the connection.</li>
 * <li>Unnamed statements, portals and every other message pass untouched.</li>
 * </ul>
 *
 * <p>The pooler feeds each chunk the client sends with {@link #clientBytes} (a server connection must be
 * assigned, and may only change when {@link #atBoundary()} and the old connection is
 * {@link PgServerStatements#idle()}), and each chunk that connection sends with
 * {@link PgServerStatements#serverBytes}; both write through an {@link Output}. Named Parses and Binds of
 * statements whose text pins ({@link PgStatementClassifier}) are reported to {@link Output#pinned} every
 * time. One instance per client session, used on its event loop.
 *
 * @see <a href="https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-EXT-QUERY">Extended Query</a>
 */
final class PgPreparedStatements implements PgMessageCutter.Owner {

    /** Where the rewritten streams go; every buffer handed over is owned by the receiver. */
    interface Output {
        void toServer(ByteBuf buf);

        void toClient(ByteBuf buf);

        /** A named Parse or a Bind of a named statement whose text starts these {@link PgPin} bits. */
        void pinned(int pins);

        /** Responses stopped matching requests, or a stream cannot be framed: close the server connection. */
        void lostSync(String reason);
    }

    /** Bounds on one client's statements: how many, and the bytes of their names and Parse bodies. */
    record Limits(int maxStatements, long maxBytes) {
    }

    /** Longest statement or portal name handled; longer names pass untouched (the server decides). */
    static final int MAX_NAME = 1024;
    private static final byte[] NO_BYTES = new byte[0];
    /** Spares kept per event loop: about as many as its clients in a transaction at once, at most this. */
    private static final int MAX_SPARES = 64;
    /**
     * This event loop's rewriters that hold nothing of a client: an idle client of unnamed statements and
     * simple queries gives its rewriter back between transactions instead of keeping ~180 bytes for nothing.
     */
    private static final FastThreadLocal<ArrayDeque<PgPreparedStatements>> SPARES = new FastThreadLocal<>() {
        @Override
        protected ArrayDeque<PgPreparedStatements> initialValue() {
            return new ArrayDeque<>();
        }
    };

    private enum Phase { NAME, BODY, REST, DISCARD }

    private final Limits limits;
    private final ByteBufAllocator alloc;
    private final PgMessageCutter cutter;
    /** The client's named statements: made at the first one, dropped when the last is gone. */
    private Map<Name, PgStatement> statements;
    /**
     * Grows to the longest name probed (at most 2 * MAX_NAME + 2 bytes); made at the first named statement
     * a message names ({@link #probe()}): a client of unnamed statements and simple queries keeps none.
     */
    private Name probe;
    private long bytes;

    private final Consumer<ByteBuf> toServer = buf -> this.output.toServer(buf);
    private PgServerStatements server;
    private Output output;

    // the message being read
    private byte type;
    private int bodyLength;
    private boolean taking;
    private Phase phase;
    /** The first bytes of the message being taken apart: made at the first such message, then kept. */
    private byte[] prefix = NO_BYTES;
    private int prefixLength;
    private int nulsSeen;
    private Name parseName;
    private byte[] parseBody;
    private int parseBodyLength;
    private boolean failedUntilSync;
    private PgStatement lastBound;

    PgPreparedStatements(Limits limits, ByteBufAllocator alloc) {
        this.limits = limits;
        this.alloc = alloc;
        this.cutter = new PgMessageCutter(this, alloc);
    }

    /** This event loop's spare rewriter with {@code limits} and {@code alloc}, or a new one. */
    static PgPreparedStatements take(Limits limits, ByteBufAllocator alloc) {
        PgPreparedStatements spare = SPARES.get().poll();
        if (spare != null && spare.limits == limits && spare.alloc == alloc) {
            return spare;
        }
        return new PgPreparedStatements(limits, alloc);
    }

    /**
     * Whether this rewriter holds nothing of its client (no statement, between messages, no error until
     * Sync, no bound statement an Execute could name), so that it may serve another client of this loop.
     */
    boolean holdsNothing() {
        return statements == null && bytes == 0 && !failedUntilSync && lastBound == null && cutter.atBoundary();
    }

    /** Done with a rewriter that {@link #holdsNothing()}: it becomes one of this event loop's spares. */
    void giveBack() {
        ArrayDeque<PgPreparedStatements> spares = SPARES.get();
        if (spares.size() < MAX_SPARES) {
            spares.push(this);
        }
    }

    /** Consumes client → server bytes (takes the reference of {@code in}) for the connection {@code server}. */
    void clientBytes(ByteBuf in, PgServerStatements server, Output out) {
        this.server = server;
        this.output = out;
        try {
            cutter.feed(in, toServer);
        } finally {
            this.server = null;
            this.output = null;
        }
    }

    /** True between messages: the pooler may hand the next message to another server connection. */
    boolean atBoundary() {
        return cutter.atBoundary();
    }

    int count() {
        return statements == null ? 0 : statements.size();
    }

    /** Bytes of the kept names and Parse bodies. */
    long bytes() {
        return bytes;
    }

    /** Forgets every statement (DEALLOCATE ALL, DISCARD ALL). */
    void forgetAll() {
        statements = null;
        bytes = 0;
    }

    /** The client's Parse of {@code name} failed on the server (or was skipped after an error): forget it. */
    void parseFailed(Object name, PgStatement statement) {
        if (name instanceof Name key && statements != null && statements.get(key) == statement) {
            forget(key);
            bytes -= key.length + statement.body().length;
        }
    }

    // ------------------------------------------------------------------ client messages

    /**
     * Passes untouched, without taking it apart, a Parse, Bind, Describe or Close whose first body bytes show
     * it names no statement (unnamed statements, portals): what drivers send for one-off queries.
     */
    @Override
    public int onStart(byte messageType, int length, ByteBuf buf, int bodyIndex, int available) {
        if (available >= 2 && !failedUntilSync && length >= 2) {
            byte first = buf.getByte(bodyIndex);
            byte second = buf.getByte(bodyIndex + 1);
            int kind = switch (messageType) {
                case 'P' -> first == 0 ? PgServerStatements.PARSE : 0;
                case 'B' -> first == 0 && second == 0 ? PgServerStatements.BIND : 0;
                case 'D', 'C' -> first == 'P' || first == 'S' && second == 0 ? kindOf(messageType) : 0;
                default -> 0;
            };
            if (kind != 0) {
                type = messageType;
                bodyLength = length;
                taking = false;
                closeUnused();
                if (messageType == 'B') {
                    lastBound = null;
                }
                server.expect(kind, null, null);
                return 0;
            }
        }
        return onStart(messageType, length);
    }

    @Override
    public int onStart(byte messageType, int length) {
        type = messageType;
        bodyLength = length;
        taking = false;
        if (failedUntilSync && messageType != 'S' && messageType != 'X') {
            return PgMessageCutter.DROP;
        }
        closeUnused();
        switch (messageType) {
            case 'P', 'B', 'D', 'C' -> {
                if (length == 0 || ((messageType == 'D' || messageType == 'C') && length > MAX_NAME + 1)) {
                    server.expect(kindOf(messageType), null, null);
                    return 0;
                }
                taking = true;
                phase = Phase.NAME;
                prefixLength = 0;
                nulsSeen = 0;
                return PgMessageCutter.TAKE;
            }
            case 'S' -> {
                failedUntilSync = false;
                server.expect(PgServerStatements.SYNC, null, null);
            }
            case 'E' -> server.expect(PgServerStatements.EXECUTE, lastBound, null);
            case 'Q' -> server.expect(PgServerStatements.QUERY, null, null);
            case 'F' -> server.expect(PgServerStatements.FUNCTION, null, null);
            case 'c', 'f' -> server.expect(PgServerStatements.COPY_END, null, null);
            default -> {
            }
        }
        return 0;
    }

    @Override
    public int onTake(ByteBuf buf, int index, int length) {
        switch (phase) {
            case REST -> {
                return 0;
            }
            case DISCARD -> {
                return length;
            }
            case BODY -> {
                buf.getBytes(index, parseBody, parseBodyLength, length);
                parseBodyLength += length;
                return length;
            }
            default -> {
            }
        }
        int wantedNuls = type == 'B' ? 2 : type == 'P' ? 1 : Integer.MAX_VALUE;
        int at = index;
        int end = index + length;
        while (at < end && nulsSeen < wantedNuls) {
            byte b = buf.getByte(at++);
            if (prefixLength == 2 * MAX_NAME + 2) {
                fail("54000", "connguard handles statement and portal names of at most " + MAX_NAME + " bytes");
                phase = Phase.DISCARD;
                return length;
            }
            if (prefixLength == prefix.length) {
                prefix = Arrays.copyOf(prefix, Math.max(64, prefix.length * 2));
            }
            prefix[prefixLength++] = b;
            if (b == 0) {
                nulsSeen++;
            }
        }
        if (nulsSeen < wantedNuls) {
            return length;
        }
        if (type == 'P') {
            parseNamed();
        } else {
            bindNamed();
        }
        if (phase == Phase.REST) {
            return at - index;
        }
        if (phase == Phase.BODY) {
            buf.getBytes(at, parseBody, parseBodyLength, end - at);
            parseBodyLength += end - at;
        }
        return length;
    }

    @Override
    public void onPeek(ByteBuf buf, int index, int length) {
    }

    @Override
    public void onEnd(byte messageType) {
        if (!taking) {
            return;
        }
        taking = false;
        if (phase == Phase.BODY) {
            parse();
        } else if (phase == Phase.NAME) {
            if (messageType == 'D' || messageType == 'C') {
                describeOrClose();
            } else {
                passPrefix(kindOf(messageType), null);   // malformed: the server will say so
            }
        }
    }

    @Override
    public void onUnframeable(String reason) {
        output.lostSync("client stream: " + reason);
    }

    /** The name of a Parse has been read. */
    private void parseNamed() {
        int nameLength = prefixLength - 1;
        if (nameLength == 0) {
            passPrefix(PgServerStatements.PARSE, null);
            return;
        }
        if (nameLength > MAX_NAME) {
            fail("54000", "connguard handles statement names of at most " + MAX_NAME + " bytes");
            phase = Phase.DISCARD;
            return;
        }
        Name name = probe().set(prefix, nameLength);
        int textLength = bodyLength - prefixLength;
        if (statements != null && statements.containsKey(name)) {
            fail("42P05", "prepared statement \"" + name + "\" already exists");
        } else if (count() >= limits.maxStatements()) {
            fail("53400", "connguard keeps at most " + limits.maxStatements()
                    + " prepared statements per client connection; close some first");
        } else if (bytes + nameLength + textLength > limits.maxBytes()) {
            fail("53400", "connguard keeps at most " + limits.maxBytes()
                    + " bytes of prepared statements per client connection; close some first");
        } else {
            parseName = name.copy();
            parseBody = new byte[textLength];
            parseBodyLength = 0;
            phase = Phase.BODY;
            return;
        }
        phase = Phase.DISCARD;
    }

    /** A named Parse has been read whole. */
    private void parse() {
        PgStatement statement = new PgStatement(parseBody, classify(parseBody));
        Name name = parseName;
        parseBody = null;
        parseName = null;
        if (statements == null) {
            statements = new HashMap<>();
        }
        statements.put(name, statement);
        bytes += name.length + statement.body().length;
        if (statement.pins() != 0) {
            output.pinned(statement.pins());
        }
        byte[] serverName = server.lookup(statement);
        if (serverName != null) {
            server.expect(PgServerStatements.FAKE_PARSE_COMPLETE, statement, name);
            server.answerLocally(output);
            return;
        }
        serverName = server.register(statement);
        cutter.emit(parseMessage(serverName, statement), toServer);
        server.expect(PgServerStatements.PARSE, statement, new PgServerStatements.ClientParse(name, serverName));
    }

    /** The portal and statement names of a Bind have been read. */
    private void bindNamed() {
        int portalEnd = indexOfNul(0);
        int nameLength = prefixLength - portalEnd - 2;
        if (nameLength == 0) {
            lastBound = null;
            passPrefix(PgServerStatements.BIND, null);
            return;
        }
        Name name = probe().set(prefix, portalEnd + 1, nameLength);
        PgStatement statement = statements == null ? null : statements.get(name);
        if (statement == null) {
            fail("26000", "prepared statement \"" + name + "\" does not exist");
            phase = Phase.DISCARD;
            return;
        }
        if (statement.pins() != 0) {
            output.pinned(statement.pins());
        }
        byte[] serverName = prepare(statement);
        int newLength = 4 + bodyLength - nameLength + serverName.length;
        ByteBuf header = alloc.buffer(6 + portalEnd + serverName.length + 1);
        header.writeByte('B').writeInt(newLength).writeBytes(prefix, 0, portalEnd + 1).writeBytes(serverName).writeByte(0);
        cutter.emit(header, toServer);
        server.expect(PgServerStatements.BIND, statement, null);
        lastBound = statement;
        phase = Phase.REST;
    }

    /** A Describe or Close whose body (a kind byte and a name) has been read whole. */
    private void describeOrClose() {
        boolean named = prefixLength >= 3 && prefix[0] == 'S' && prefix[prefixLength - 1] == 0
                && indexOfNul(1) == prefixLength - 1;
        if (!named) {
            passPrefix(kindOf(type), null);
            return;
        }
        Name name = probe().set(prefix, 1, prefixLength - 2);
        if (type == 'C') {
            PgStatement closed = forget(name);
            if (closed != null) {
                bytes -= name.length + closed.body().length;
            }
            server.expect(PgServerStatements.FAKE_CLOSE_COMPLETE, null, null);
            server.answerLocally(output);
            return;
        }
        PgStatement statement = statements == null ? null : statements.get(name);
        if (statement == null) {
            fail("26000", "prepared statement \"" + name + "\" does not exist");
            return;
        }
        byte[] serverName = prepare(statement);
        ByteBuf describe = alloc.buffer(7 + serverName.length);
        describe.writeByte('D').writeInt(6 + serverName.length).writeByte('S').writeBytes(serverName).writeByte(0);
        cutter.emit(describe, toServer);
        server.expect(PgServerStatements.DESCRIBE, statement, null);
    }

    /** The server name of {@code statement}, injecting its Parse when this connection lacks it. */
    private byte[] prepare(PgStatement statement) {
        byte[] serverName = server.lookup(statement);
        if (serverName == null) {
            serverName = server.register(statement);
            cutter.emit(parseMessage(serverName, statement), toServer);
            server.expect(PgServerStatements.PARSE | PgServerStatements.INJECTED, statement, serverName);
        }
        return serverName;
    }

    /**
     * Before the first message of a transaction: closes what the connection's LRU let go and the statements
     * whose plans went stale (never inside a transaction, where open portals may come from them).
     */
    private void closeUnused() {
        Map.Entry<PgStatement, byte[]> evicted;
        while ((evicted = server.evict()) != null) {
            cutter.emit(closeMessage(evicted.getValue()), toServer);
            server.expect(PgServerStatements.CLOSE | PgServerStatements.INJECTED, evicted.getKey(), evicted.getValue());
        }
        byte[] orphan;
        while ((orphan = server.pollOrphan()) != null) {
            cutter.emit(closeMessage(orphan), toServer);
            server.expect(PgServerStatements.CLOSE | PgServerStatements.INJECTED, null, orphan);
        }
    }

    /** Forwards the message's header and the prefix read so far unchanged; the rest (if any) passes. */
    private void passPrefix(int kind, PgStatement statement) {
        ByteBuf copy = alloc.buffer(5 + prefixLength);
        copy.writeByte(type).writeInt(bodyLength + 4).writeBytes(prefix, 0, prefixLength);
        cutter.emit(copy, toServer);
        server.expect(kind, statement, null);
        phase = Phase.REST;
    }

    /** Answers the client with an ErrorResponse in order and drops its messages until Sync, as the server would. */
    private void fail(String sqlState, String message) {
        server.expect(PgServerStatements.FAKE_ERROR, new String[] {sqlState, message}, null);
        failedUntilSync = true;
        server.answerLocally(output);
    }

    private int classify(byte[] body) {
        PgStatementClassifier classifier = PgStatementClassifier.borrow(true);
        classifier.beginQuery();
        classifier.accept(Unpooled.wrappedBuffer(body), 0, body.length);
        classifier.finish();
        int pins = classifier.pinsStarted();
        classifier.giveBack();
        return pins;
    }

    /** The reusable name that probes the map; made at the first named statement. */
    private Name probe() {
        if (probe == null) {
            probe = new Name(new byte[32], 0);
        }
        return probe;
    }

    /** Removes {@code name}'s statement; the map goes when it is empty. Returns the statement or null. */
    private PgStatement forget(Name name) {
        if (statements == null) {
            return null;
        }
        PgStatement removed = statements.remove(name);
        if (statements.isEmpty()) {
            statements = null;
        }
        return removed;
    }

    private int indexOfNul(int from) {
        for (int i = from; i < prefixLength; i++) {
            if (prefix[i] == 0) {
                return i;
            }
        }
        return -1;
    }

    private static int kindOf(byte messageType) {
        return switch (messageType) {
            case 'P' -> PgServerStatements.PARSE;
            case 'B' -> PgServerStatements.BIND;
            case 'D' -> PgServerStatements.DESCRIBE;
            default -> PgServerStatements.CLOSE;
        };
    }

    private ByteBuf parseMessage(byte[] serverName, PgStatement statement) {
        byte[] body = statement.body();
        ByteBuf parse = alloc.buffer(6 + serverName.length + body.length);
        parse.writeByte('P').writeInt(5 + serverName.length + body.length).writeBytes(serverName).writeByte(0)
                .writeBytes(body);
        return parse;
    }

    private ByteBuf closeMessage(byte[] serverName) {
        return alloc.buffer(7 + serverName.length).writeByte('C').writeInt(6 + serverName.length).writeByte('S')
                .writeBytes(serverName).writeByte(0);
    }

    /** A non-fatal ErrorResponse (S, V = ERROR, C, M). */
    static ByteBuf errorResponse(ByteBufAllocator alloc, String sqlState, String message) {
        byte[] text = message.replace('\0', ' ').getBytes(StandardCharsets.UTF_8);
        ByteBuf out = alloc.buffer(32 + text.length);
        out.writeByte('E').writeInt(4 + 7 + 7 + 7 + 2 + text.length + 1);
        out.writeByte('S').writeBytes("ERROR".getBytes(StandardCharsets.US_ASCII)).writeByte(0);
        out.writeByte('V').writeBytes("ERROR".getBytes(StandardCharsets.US_ASCII)).writeByte(0);
        out.writeByte('C').writeBytes(sqlState.getBytes(StandardCharsets.US_ASCII)).writeByte(0);
        out.writeByte('M').writeBytes(text).writeByte(0);
        out.writeByte(0);
        return out;
    }

    /** A statement name as bytes; one mutable instance probes the map without allocating. */
    static final class Name {
        private byte[] bytes;
        private int length;
        private int hash;

        Name(byte[] bytes, int length) {
            this.bytes = bytes;
            set(bytes, 0, length);
        }

        Name set(byte[] source, int length) {
            return set(source, 0, length);
        }

        Name set(byte[] source, int offset, int count) {
            if (offset == 0 && source == bytes) {
                length = count;
            } else {
                if (bytes.length < count) {
                    bytes = new byte[Math.max(count, 2 * bytes.length)];
                }
                System.arraycopy(source, offset, bytes, 0, count);
                length = count;
            }
            int h = 1;
            for (int i = 0; i < count; i++) {
                h = 31 * h + bytes[i];
            }
            hash = h;
            return this;
        }

        Name copy() {
            return new Name(Arrays.copyOf(bytes, length), length);
        }

        @Override
        public boolean equals(Object other) {
            return other instanceof Name that && that.hash == hash
                    && Arrays.equals(bytes, 0, length, that.bytes, 0, that.length);
        }

        @Override
        public int hashCode() {
            return hash;
        }

        @Override
        public String toString() {
            return new String(bytes, 0, length, StandardCharsets.UTF_8);
        }
    }
}
