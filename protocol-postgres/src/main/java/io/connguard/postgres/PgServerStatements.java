package io.connguard.postgres;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;

import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.function.Consumer;

/**
 * What one server connection knows about prepared statements in transaction mode: which statements are
 * prepared on it under connguard's names ({@code cg_1}, {@code cg_2}, ... unique on the connection; one
 * per distinct Parse body, shared by every client that parses the same text), as an LRU of a fixed
 * capacity; and, in order, every request sent on it whose response is still due, so that the responses to
 * requests connguard injected are swallowed, answers given locally are inserted where the client expects
 * them, and failures are remembered (a statement whose Parse failed is not prepared here).
 *
 * <p>The per-client side, {@link PgPreparedStatements}, fills the queue as it rewrites the client's
 * messages; {@link #serverBytes} consumes the server's responses. Only responses to requests that went
 * through {@link PgPreparedStatements} may be fed here: the pooler's own queries on the connection (a
 * reset, the replay of parameters at checkout) are answered outside it, while the connection is
 * {@link #idle()}. After resetting the connection with DISCARD ALL or DEALLOCATE ALL itself, the pooler
 * calls {@link #forgetAll()}; when {@link #lost()} turns true, it closes the connection. Not thread-safe:
 * it belongs to whoever
 * holds the server connection, and is handed over with it. Memory: the LRU's names and keys, and one
 * slot per request in flight.
 *
 * @see <a href="https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-EXT-QUERY">Extended Query</a>
 */
final class PgServerStatements implements PgMessageCutter.Owner {

    // Requests in flight, in the order sent; the low byte is the kind.
    static final int PARSE = 1, BIND = 2, CLOSE = 3, DESCRIBE = 4, EXECUTE = 5, SYNC = 6, QUERY = 7,
            FUNCTION = 8, COPY_END = 9, FAKE_PARSE_COMPLETE = 10, FAKE_CLOSE_COMPLETE = 11, FAKE_ERROR = 12;
    /** The request was injected by connguard: its success response is swallowed. */
    static final int INJECTED = 1 << 8;

    private static final int PEEK = 64;
    private static final byte[] STALE_PLAN = "0A000".getBytes(StandardCharsets.US_ASCII);
    private static final byte[] DISCARD_ALL = "DISCARD ALL".getBytes(StandardCharsets.US_ASCII);
    private static final byte[] DEALLOCATE_ALL = "DEALLOCATE ALL".getBytes(StandardCharsets.US_ASCII);

    private final int capacity;
    private final ByteBufAllocator alloc;
    private final LinkedHashMap<PgStatement, byte[]> prepared = new LinkedHashMap<>(16, 0.75f, true);
    /** Names still prepared on the server that no statement maps to any more: closed at the next chance. */
    private final ArrayDeque<byte[]> orphans = new ArrayDeque<>();
    private int lastName;

    private int[] kinds = new int[16];
    private Object[] statements = new Object[16];
    private Object[] extras = new Object[16];
    private int head;
    private int size;

    private final PgMessageCutter cutter;
    private final Consumer<ByteBuf> toClient = buf -> this.output.toClient(buf);
    private PgPreparedStatements client;
    private PgPreparedStatements.Output output;
    private final byte[] peek = new byte[PEEK];
    private int peekLength;
    private boolean copyIn;
    private byte transactionStatus = 'I';
    private boolean skipCopyEnd;
    private boolean lost;

    /** @param capacity statements kept prepared on this connection; the least recently used is closed beyond it */
    PgServerStatements(int capacity, ByteBufAllocator alloc) {
        if (capacity < 1) {
            throw new IllegalArgumentException("capacity must be at least 1");
        }
        this.capacity = capacity;
        this.alloc = alloc;
        this.cutter = new PgMessageCutter(this, alloc);
    }

    /**
     * Consumes server → client bytes (takes the reference of {@code in}) while {@code client} is served:
     * writes what the client must see to {@code out.toClient}, swallowing the responses to injected requests
     * and inserting local answers in their place in the order.
     */
    void serverBytes(ByteBuf in, PgPreparedStatements client, PgPreparedStatements.Output out) {
        this.client = client;
        this.output = out;
        try {
            cutter.feed(in, toClient);
        } finally {
            this.client = null;
            this.output = null;
        }
    }

    /** True when no response is due and the server stream is between messages: the connection can be returned. */
    boolean idle() {
        return size == 0 && cutter.atBoundary();
    }

    /** Statements prepared on this connection. */
    int preparedCount() {
        return prepared.size();
    }

    /** Forget every statement: the connection was reset (DISCARD ALL, DEALLOCATE ALL) by connguard itself. */
    void forgetAll() {
        prepared.clear();
        orphans.clear();
    }

    /** True once responses did not match the requests: the pooler should close this connection. */
    boolean lost() {
        return lost;
    }

    // ------------------------------------------------------------------ used by PgPreparedStatements

    /** The name of {@code statement} on this connection, marking it used; null when not prepared here. */
    byte[] lookup(PgStatement statement) {
        return prepared.get(statement);
    }

    /** Records {@code statement} as prepared (its Parse is about to be sent) and returns its new name. */
    byte[] register(PgStatement statement) {
        byte[] name = ("cg_" + ++lastName).getBytes(StandardCharsets.US_ASCII);
        prepared.put(statement, name);
        return name;
    }

    /**
     * The least recently used statement beyond the capacity, removed; null when within it, or while a
     * transaction is open or a response is due: closing a statement closes the portals made from it, so
     * statements are only closed between transactions (the LRU may exceed its capacity by what one
     * transaction uses).
     */
    Map.Entry<PgStatement, byte[]> evict() {
        if (prepared.size() <= capacity || !betweenTransactions()) {
            return null;
        }
        Iterator<Map.Entry<PgStatement, byte[]>> eldest = prepared.entrySet().iterator();
        Map.Entry<PgStatement, byte[]> entry = eldest.next();
        eldest.remove();
        return entry;
    }

    /** A name to close that no statement maps to any more, or null; only between transactions (see {@link #evict}). */
    byte[] pollOrphan() {
        return betweenTransactions() ? orphans.poll() : null;
    }

    private boolean betweenTransactions() {
        return size == 0 && transactionStatus == 'I' && cutter.atBoundary();
    }

    /** Queues a request whose response is due, in the order sent. */
    void expect(int kind, Object statement, Object extra) {
        if (kind == COPY_END && skipCopyEnd) {
            skipCopyEnd = false;            // the server failed the COPY already and ignores the CopyDone/Fail
            return;
        }
        if (size == kinds.length) {
            grow();
        }
        int at = (head + size++) & (kinds.length - 1);
        kinds[at] = kind;
        statements[at] = statement;
        extras[at] = extra;
    }

    /** Writes the local answers at the head of the queue, if the server stream is between messages. */
    void answerLocally(PgPreparedStatements.Output out) {
        if (cutter.atBoundary()) {
            drainFakes(out, out::toClient);
        }
    }

    // ------------------------------------------------------------------ responses

    @Override
    public int onStart(byte type, int bodyLength) {
        peekLength = 0;
        int entry = size == 0 ? 0 : kinds[head];
        return switch (type) {
            case '1' -> entry == (PARSE | INJECTED) ? PgMessageCutter.DROP : 0;
            case '3' -> entry == (CLOSE | INJECTED) ? PgMessageCutter.DROP : 0;
            case 'E', 'C' -> PEEK;
            case 'Z' -> 1;
            default -> 0;
        };
    }

    @Override
    public int onTake(ByteBuf buf, int index, int length) {
        return length;
    }

    @Override
    public void onPeek(ByteBuf buf, int index, int length) {
        buf.getBytes(index, peek, peekLength, length);
        peekLength += length;
    }

    @Override
    public void onEnd(byte type) {
        if (!lost) {
            response(type);
        }
        drainFakes(output, toClient);
    }

    @Override
    public void onUnframeable(String reason) {
        lose("server stream: " + reason);
    }

    private void response(byte type) {
        switch (type) {
            case '1' -> expectHead(PARSE, "ParseComplete");
            case '2' -> expectHead(BIND, "BindComplete");
            case '3' -> expectHead(CLOSE, "CloseComplete");
            case 'n' -> expectHead(DESCRIBE, "NoData");
            case 'T' -> {
                if (headKind() == DESCRIBE) {
                    pop();
                }
            }
            case 'I', 's' -> {
                if (headKind() == EXECUTE) {
                    pop();
                }
            }
            case 'C' -> {
                if (copyIn) {
                    endCopy();
                }
                if (tagIs(DISCARD_ALL) || tagIs(DEALLOCATE_ALL)) {
                    forgetAll();
                    if (client != null) {
                        client.forgetAll();
                    }
                }
                if (headKind() == EXECUTE) {
                    pop();
                }
            }
            case 'E' -> {
                if (copyIn) {
                    endCopy();
                }
                error();
            }
            case 'Z' -> {
                if (peekLength == 1) {
                    transactionStatus = peek[0];
                }
                ready();
            }
            case 'G' -> copyIn = true;
            default -> {
            }
        }
    }

    private void expectHead(int kind, String what) {
        if (headKind() == kind) {
            pop();
        } else {
            lose(what + " without a matching request");
        }
    }

    /** An ErrorResponse: after a simple Query it ends nothing; in the extended protocol the server skips to Sync. */
    private void error() {
        int kind = headKind();
        if (kind == 0 || kind == QUERY || kind == FUNCTION || kind == SYNC) {
            return;
        }
        if ((kind == BIND || kind == EXECUTE) && errorCodeIs(STALE_PLAN) && statements[head] instanceof PgStatement stale) {
            byte[] name = prepared.remove(stale);  // "cached plan must not change result type": prepare it afresh
            if (name != null) {
                orphans.add(name);
            }
        }
        while (size > 0 && headKind() != SYNC) {
            popFailed();
        }
    }

    /** ReadyForQuery answers the first Sync, Query or FunctionCall; requests before it were skipped by the server. */
    private void ready() {
        while (size > 0) {
            int kind = headKind();
            if (kind == SYNC || kind == QUERY || kind == FUNCTION) {
                pop();
                return;
            }
            popFailed();
        }
        lose("ReadyForQuery without a pending request");
    }

    /**
     * COPY FROM STDIN ended: the server ignored the Syncs sent in copy-in mode (up to the client's CopyDone or
     * CopyFail), and answers no CopyDone or CopyFail.
     */
    private void endCopy() {
        copyIn = false;
        int copyEnd = -1;
        for (int i = 1; i < size; i++) {
            if ((kinds[(head + i) & (kinds.length - 1)] & 0xFF) == COPY_END) {
                copyEnd = i;
                break;
            }
        }
        if (copyEnd < 0) {
            skipCopyEnd = true;
        }
        int limit = copyEnd < 0 ? size : copyEnd + 1;
        int write = 1;
        for (int read = 1; read < size; read++) {
            int from = (head + read) & (kinds.length - 1);
            int kind = kinds[from] & 0xFF;
            if (read < limit && (kind == SYNC || kind == COPY_END)) {
                continue;
            }
            int to = (head + write++) & (kinds.length - 1);
            kinds[to] = kinds[from];
            statements[to] = statements[from];
            extras[to] = extras[from];
        }
        for (int i = write; i < size; i++) {
            int at = (head + i) & (kinds.length - 1);
            statements[at] = null;
            extras[at] = null;
        }
        size = write;
    }

    /** Drops the head request, which the server did not carry out, and undoes what was assumed of it. */
    private void popFailed() {
        int kind = headKind();
        Object statement = statements[head];
        Object extra = extras[head];
        pop();
        switch (kind) {
            case PARSE -> {
                if (extra instanceof ClientParse parse) {
                    unregister((PgStatement) statement, parse.serverName());
                    if (client != null) {
                        client.parseFailed(parse.clientName(), (PgStatement) statement);
                    }
                } else if (extra instanceof byte[] name) {
                    unregister((PgStatement) statement, name);
                }
            }
            case FAKE_PARSE_COMPLETE -> {
                if (client != null) {
                    client.parseFailed(extra, (PgStatement) statement);
                }
            }
            case CLOSE -> {
                if (extra instanceof byte[] name) {
                    if (statement instanceof PgStatement kept && !prepared.containsKey(kept)) {
                        prepared.put(kept, name);
                    } else {
                        orphans.add(name);
                    }
                }
            }
            default -> {
            }
        }
    }

    /** The Parse that prepared {@code statement} as {@code name} failed: it is not prepared here. */
    private void unregister(PgStatement statement, byte[] name) {
        if (statement != null && prepared.get(statement) == name) {
            prepared.remove(statement);
        }
    }

    /** The extra of a PARSE request the client sent: its own name, for forgetting it if the Parse fails. */
    record ClientParse(Object clientName, byte[] serverName) {
    }

    private void drainFakes(PgPreparedStatements.Output out, Consumer<ByteBuf> sink) {
        while (size > 0) {
            int kind = headKind();
            ByteBuf message;
            if (kind == FAKE_PARSE_COMPLETE) {
                message = alloc.buffer(5).writeByte('1').writeInt(4);
            } else if (kind == FAKE_CLOSE_COMPLETE) {
                message = alloc.buffer(5).writeByte('3').writeInt(4);
            } else if (kind == FAKE_ERROR) {
                String[] error = (String[]) statements[head];
                message = PgPreparedStatements.errorResponse(alloc, error[0], error[1]);
            } else {
                return;
            }
            pop();
            cutter.emit(message, sink);
        }
    }

    private int headKind() {
        return size == 0 ? 0 : kinds[head] & 0xFF;
    }

    private void pop() {
        statements[head] = null;
        extras[head] = null;
        head = (head + 1) & (kinds.length - 1);
        size--;
    }

    private void grow() {
        int[] newKinds = new int[kinds.length * 2];
        Object[] newStatements = new Object[kinds.length * 2];
        Object[] newExtras = new Object[kinds.length * 2];
        for (int i = 0; i < size; i++) {
            int from = (head + i) & (kinds.length - 1);
            newKinds[i] = kinds[from];
            newStatements[i] = statements[from];
            newExtras[i] = extras[from];
        }
        kinds = newKinds;
        statements = newStatements;
        extras = newExtras;
        head = 0;
    }

    private void lose(String reason) {
        if (!lost) {
            lost = true;
            while (size > 0) {
                pop();
            }
            if (output != null) {
                output.lostSync(reason);
            }
        }
    }

    /** The CommandComplete tag in the peek equals {@code tag}. */
    private boolean tagIs(byte[] tag) {
        if (peekLength != tag.length + 1 || peek[tag.length] != 0) {
            return false;
        }
        for (int i = 0; i < tag.length; i++) {
            if (peek[i] != tag[i]) {
                return false;
            }
        }
        return true;
    }

    /** The ErrorResponse in the peek has SQLSTATE {@code code} (fields S, V and C come first from the server). */
    private boolean errorCodeIs(byte[] code) {
        int at = 0;
        while (at < peekLength && peek[at] != 0) {
            byte field = peek[at++];
            int start = at;
            while (at < peekLength && peek[at] != 0) {
                at++;
            }
            if (field == 'C' && at < peekLength && at - start == code.length) {
                for (int i = 0; i < code.length; i++) {
                    if (peek[start + i] != code[i]) {
                        return false;
                    }
                }
                return true;
            }
            at++;
        }
        return false;
    }
}
