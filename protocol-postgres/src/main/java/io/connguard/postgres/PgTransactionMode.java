package io.connguard.postgres;

import io.connguard.core.api.SessionContext;
import io.netty.buffer.ByteBuf;
import io.netty.util.concurrent.FastThreadLocal;

import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;

/**
 * One PostgreSQL client in transaction mode ({@code pool.mode: transaction}): it holds a server
 * connection only while it is inside a transaction or has a request in flight.
 *
 * <ul>
 * <li>Between transactions, the client's next bytes are held (no copy; reading stops beyond
 *     {@link #HOLD_LIMIT}) and core is asked for a server connection. On the one lent, the client's
 *     parameters are made to match first ({@link #syncQuery}): its start-up parameters, and the values the
 *     server reported to it since (ParameterStatus after its own SETs), in one simple Query whose reply is
 *     swallowed. Then the held bytes go.</li>
 * <li>Every client byte goes through {@link PgPreparedStatements} (named statements follow the client to
 *     any server connection), every server byte through the connection's {@link PgServerStatements}.</li>
 * <li>The text of every Query and Parse is read by {@link PgStatementClassifier} (fed by the tracker, as
 *     it passes): a pin keeps the client on its connection until the state is gone (ends count only after a
 *     success outside a transaction) or the client leaves. A connection that served a pin is reset
 *     ({@code DISCARD ALL}) before another client gets it.</li>
 * <li>When the server has answered everything (ReadyForQuery {@code I}, nothing owed, both streams at a
 *     message boundary, no pin), the connection goes back to the pool ({@link SessionContext#serverIdle}).</li>
 * </ul>
 */
final class PgTransactionMode implements PgSessionTracker.Pooling, PgPreparedStatements.Output {

    /** Client bytes held while no server connection is lent, beyond which the client is not read. */
    static final int HOLD_LIMIT = 64 * 1024;
    /** Statements prepared per server connection before the least recently used is closed. */
    static final int SERVER_STATEMENTS = 250;
    /** Named prepared statements kept per client connection: how many, and their bytes. */
    static final PgPreparedStatements.Limits CLIENT_STATEMENTS = new PgPreparedStatements.Limits(2000, 8L << 20);
    /** Reported parameters a client cannot set: never part of the parameters replayed on a connection. */
    private static final Set<String> READ_ONLY = caseInsensitive("server_version", "server_encoding",
            "is_superuser", "session_authorization", "integer_datetimes", "in_hot_standby");
    private static final int MAX_REPLY = 1 << 20;
    /** What an unreported parameter is set to after a client's RESET or DISCARD: unknown, so it is set again. */
    private static final String UNKNOWN = new String("\0unknown");
    /**
     * The start-up target this event loop made last: a client whose start-up parameters are the same (every
     * client of one application's pool) shares it, map and strings, instead of keeping its own copy.
     */
    private static final FastThreadLocal<Target> LAST_STARTUP = new FastThreadLocal<>();

    private final SessionContext context;
    private final PgSessionTracker tracker;
    private final Client client;
    /**
     * The client's statement rewriter: taken from the event loop's spares when bytes flow, given back when a
     * transaction ends and it holds nothing of the client (null then), so that an idle client keeps none.
     */
    private PgPreparedStatements prepared;
    /** The client's start-up parameters (case-insensitive names). */
    private final Map<String, String> wanted;
    /** Reported parameters the server told the client after its start-up (its SETs): they follow it. */
    private Map<String, String> changes;
    /** What this client expects of a connection (start-up parameters, then changes), rebuilt when it changes. */
    private Target target;

    /**
     * The session of the client (an interface, not four lambdas: an idle client keeps fewer objects).
     */
    interface Client {
        /** Whether both scanned streams stand between messages. */
        boolean streamsAtBoundary();

        /** Server bytes for the client (scanned and sent by the session). */
        void transactionToClient(ByteBuf bytes);

        /** A server connection was lent (cancel requests reach it now). */
        void serverLent();

        /** The server connection went back (cancel requests reach nothing). */
        void serverReleased();
    }

    /**
     * The parameters a client expects of a server connection. Clients with equal targets (the same start-up
     * parameters and changes, as every connection of one application's pool has) can use a connection
     * synced to either without a query: each connection remembers the target it was last synced to.
     */
    static final class Target {
        private final Map<String, String> values;
        private final int hash;

        Target(Map<String, String> values) {
            this.values = values;
            this.hash = values.hashCode();
        }

        boolean sameAs(Target other) {
            return other == this || other != null && other.hash == hash && other.values.equals(values);
        }
    }

    private PgServerConnection server;
    private ArrayDeque<ByteBuf> held;
    private int heldBytes;
    private boolean asked;
    /** connguard's parameter query runs on the lent connection; its reply is read here. */
    private PgMessageReader syncReader;
    private PgErrorResponse syncError;
    private List<String> syncSet;
    private List<String> syncReset;
    private boolean started;
    private boolean lost;

    /** {@link PgPin} bits held now. */
    private int pins;
    /** Pin ends seen since the last settled ReadyForQuery: they count if it says idle without an error. */
    private int pendingEnds;
    private boolean errorSinceEnds;
    /** A pin was held during this lend: the connection is reset before another client gets it. */
    private boolean resetNeeded;

    /**
     * @param client the session, told of lends and given the server's bytes for the client
     */
    PgTransactionMode(SessionContext context, PgSessionTracker tracker, Map<String, String> wanted,
                      Client client) {
        this.context = context;
        this.tracker = tracker;
        Map<String, String> sorted = new TreeMap<>(String.CASE_INSENSITIVE_ORDER);
        sorted.putAll(wanted);
        Target last = LAST_STARTUP.getIfExists();
        if (last == null || !sameEntries(last.values, sorted)) {
            last = new Target(sorted);
            LAST_STARTUP.set(last);
        }
        this.wanted = last.values; // never changed: later changes go to new maps
        this.target = last;
        this.client = client;
        tracker.pool(this);
    }

    // ---------------------------------------------------------------- the start-up

    /**
     * The first lend, at start-up: the query that sets the connection to the client's start-up parameters
     * (and undoes what earlier clients set), or null; its reply goes to {@link #feedSync}.
     */
    ByteBuf startupQuery(PgServerConnection first) {
        server = first;
        return syncQuery(first);
    }

    /** The client has its start-up answer: what the server reports from now on follows the client. */
    void started() {
        started = true;
        client.serverLent();
        checkRelease();
    }

    // ---------------------------------------------------------------- client → server

    /** Client bytes (scanned already, Terminate cut off). */
    void clientBytes(ByteBuf bytes) {
        if (server == null || syncReader != null || held != null) {
            hold(bytes);
            return;
        }
        forward(bytes);
    }

    private void hold(ByteBuf bytes) {
        if (held == null) {
            held = new ArrayDeque<>(4);
        }
        held.add(bytes);
        heldBytes += bytes.readableBytes();
        if (server == null && !asked) {
            asked = true;
            context.serverWanted(); // may lend at once: lent() then sends what is held
        }
    }

    private void forward(ByteBuf bytes) {
        rewriter().clientBytes(bytes, server.statements(), this);
    }

    private PgPreparedStatements rewriter() {
        if (prepared == null) {
            prepared = PgPreparedStatements.take(CLIENT_STATEMENTS, context.alloc());
        }
        return prepared;
    }

    /** Core should stop reading the client: enough is held until a server connection is lent. */
    boolean holding() {
        return heldBytes >= HOLD_LIMIT;
    }

    // ---------------------------------------------------------------- lending

    /** A server connection was lent for the client's next transaction. */
    void lent(PgServerConnection connection) {
        asked = false;
        server = connection;
        resetNeeded = false;
        client.serverLent();
        ByteBuf query = syncQuery(connection);
        if (query != null) {
            context.toUpstream(query);
        } else {
            flushHeld();
        }
    }

    private void flushHeld() {
        ArrayDeque<ByteBuf> bytes = held;
        held = null;
        heldBytes = 0;
        if (bytes == null) {
            checkRelease();
            return;
        }
        for (ByteBuf b; (b = bytes.poll()) != null; ) {
            if (server == null || lost) {
                b.release();
            } else {
                forward(b);
            }
        }
    }

    /**
     * The query that makes {@code connection} match what this client expects: each settable parameter whose
     * value differs is set ({@code set_config}); one an earlier client set that this client never asked for is
     * RESET. Null when the connection matches already.
     */
    private ByteBuf syncQuery(PgServerConnection connection) {
        if (connection.appliedKnown() && target.sameAs(connection.syncedTo())) {
            connection.syncedTo(target);
            return null; // set for an equal target already, and nothing changed it since
        }
        Map<String, String> current = connection.parameters();
        Map<String, String> applied = connection.applied();
        Set<String> names = new TreeSet<>(String.CASE_INSENSITIVE_ORDER);
        names.addAll(current.keySet());
        names.addAll(wanted.keySet());
        names.addAll(applied.keySet());
        if (changes != null) {
            names.addAll(changes.keySet());
        }
        StringBuilder sql = null;
        List<String> set = null;
        List<String> reset = null;
        int selected = 0;
        for (String name : names) {
            if (READ_ONLY.contains(name)) {
                continue;
            }
            String want = changes == null ? null : changes.get(name);
            if (want == null) {
                want = wanted.get(name);
            }
            if (want == null) {
                want = connection.initialParameters().get(name);
            }
            String have = current.containsKey(name) ? current.get(name)
                    : connection.appliedKnown() ? applied.get(name) : UNKNOWN;
            if (want == null ? have == null : want.equals(have)) {
                continue;
            }
            if (sql == null) {
                sql = new StringBuilder();
                set = new ArrayList<>();
                reset = new ArrayList<>();
            }
            if (want == null) {
                reset.add(name);
            } else {
                sql.append(selected++ == 0 ? "SELECT " : ", ").append("pg_catalog.set_config(")
                        .append(literal(name)).append(", ").append(literal(want)).append(", false)");
                set.add(name);
            }
        }
        if (sql == null) {
            connection.syncedTo(target);
            return null;
        }
        if (selected > 0) {
            sql.append(';');
        }
        for (String name : reset) {
            sql.append("RESET ").append(identifier(name)).append(';');
        }
        syncSet = set;
        syncReset = reset;
        syncError = null;
        syncReader = new PgMessageReader(context.alloc(), MAX_REPLY);
        byte[] text = sql.toString().getBytes(StandardCharsets.UTF_8);
        return context.alloc().buffer(6 + text.length).writeByte('Q').writeInt(5 + text.length).writeBytes(text)
                .writeByte(0);
    }

    /** Whether connguard's parameter query is running (its reply goes to {@link #feedSync}). */
    boolean syncing() {
        return syncReader != null;
    }

    /**
     * Server bytes while connguard's parameter query runs. Returns null while it runs, else the outcome: the
     * server's error, or {@code PgErrorResponse} null with {@code done[0]} true.
     */
    PgPooledStart.Applied feedSync(ByteBuf bytes) {
        PgPooledStart.Applied[] result = {PgPooledStart.Applied.RUNNING};
        PgServerConnection on = server;
        String malformed = syncReader.feed(bytes, (type, body) -> {
            switch (type) {
                case 'S' -> {
                    String name = cString(body);
                    String value = cString(body);
                    if (name != null && value != null) {
                        on.parameter(name, value);
                    }
                }
                case 'E' -> syncError = PgErrorResponse.decode(body, body.readableBytes());
                case 'Z' -> {
                    result[0] = syncError == null ? PgPooledStart.Applied.DONE : PgPooledStart.Applied.FAILED;
                    return false;
                }
                default -> {
                }
            }
            return true;
        });
        if (malformed != null) {
            syncError = null;
            result[0] = PgPooledStart.Applied.FAILED;
        }
        if (result[0] == PgPooledStart.Applied.RUNNING) {
            return result[0];
        }
        syncReader.release();
        syncReader = null;
        if (result[0] == PgPooledStart.Applied.DONE) {
            for (String name : syncSet) {
                if (!on.parameters().containsKey(name)) {
                    String value = changes != null && changes.containsKey(name) ? changes.get(name) : wanted.get(name);
                    on.applied(name, value != null ? value : on.initialParameters().get(name));
                }
            }
            for (String name : syncReset) {
                on.applied(name, null);
            }
            on.appliedKnown(true);
            on.syncedTo(target);
        }
        syncSet = null;
        syncReset = null;
        return result[0];
    }

    /** The server's error from connguard's parameter query, as the client would have read it; may be null. */
    PgErrorResponse syncError() {
        return syncError;
    }

    /** Later lends: the server's reply to the parameter query, then the held bytes. */
    void serverBytesWhileSyncing(ByteBuf bytes) {
        switch (feedSync(bytes)) {
            case DONE -> flushHeld();
            case FAILED -> {
                lost = true;
                context.upstreamFailed("setting the client's parameters on a pooled server connection failed: "
                        + (syncError == null ? "malformed reply" : syncError.toString()));
            }
            case RUNNING -> {
            }
        }
    }

    // ---------------------------------------------------------------- server → client

    /** Server bytes while lent. */
    void serverBytes(ByteBuf bytes) {
        if (syncReader != null) {
            serverBytesWhileSyncing(bytes);
            return;
        }
        server.statements().serverBytes(bytes, rewriter(), this);
        checkRelease();
    }

    /** Gives the connection back when the client has nothing in flight and no pin. */
    private void checkRelease() {
        if (server == null || syncReader != null || lost || held != null || pins != 0 || !started) {
            return;
        }
        if (!tracker.settledIdle() || !client.streamsAtBoundary() || prepared != null && !prepared.atBoundary()
                || !server.statements().idle() || server.statements().lost()) {
            return;
        }
        if (prepared != null && prepared.holdsNothing()) {
            prepared.giveBack();
            prepared = null;
        }
        PgServerConnection done = server;
        server = null;
        done.parametersTracked();
        client.serverReleased();
        boolean reset = resetNeeded;
        resetNeeded = false;
        context.serverIdle(reset);
    }

    // ---------------------------------------------------------------- PgPreparedStatements.Output

    @Override
    public void toServer(ByteBuf buf) {
        context.toUpstream(buf);
    }

    @Override
    public void toClient(ByteBuf buf) {
        client.transactionToClient(buf);
    }

    @Override
    public void pinned(int bits) {
        addPins(bits);
    }

    @Override
    public void lostSync(String reason) {
        if (!lost) {
            lost = true;
            context.upstreamFailed("connguard lost track of prepared statements on the server connection: " + reason);
        }
    }

    // ---------------------------------------------------------------- PgSessionTracker.Pooling

    @Override
    public void classified(PgStatementClassifier outcome) {
        int startedPins = outcome.pinsStarted();
        if (startedPins != 0) {
            if (outcome.unknown()) {
                context.log().debug("statement text connguard cannot be sure of pins the client: {}",
                        outcome.unknownReason());
            }
            addPins(startedPins);
        }
        pendingEnds = (pendingEnds & ~startedPins) | outcome.pinsEnded();
    }

    @Override
    public void error() {
        errorSinceEnds = true;
    }

    @Override
    public void ready(byte status, boolean settled) {
        if (!settled) {
            return;
        }
        if (status == 'I' && !errorSinceEnds && pendingEnds != 0) {
            pins &= ~pendingEnds;
        }
        pendingEnds = 0;
        errorSinceEnds = false;
        if (status == 'I' && started) {
            context.transactionServed();
        }
    }

    @Override
    public boolean followsParameters() {
        return started;
    }

    @Override
    public void parameter(String name, String value) {
        if (!started) {
            return;
        }
        if (value == null) {
            addPins(PgPin.UNKNOWN.bit()); // too long to replay: the client stays where it is
            return;
        }
        if (name.equalsIgnoreCase("standard_conforming_strings")) {
            tracker.standardConformingStrings(!value.equalsIgnoreCase("off"));
        }
        if (server != null) {
            server.parameter(name, value);
        }
        if (changes == null) {
            changes = new TreeMap<>(String.CASE_INSENSITIVE_ORDER);
        }
        Target before = target;
        if (!value.equals(changes.put(name, value))) {
            Map<String, String> values = new TreeMap<>(String.CASE_INSENSITIVE_ORDER);
            values.putAll(wanted);
            values.putAll(changes);
            target = new Target(values);
        }
        if (server != null && before.sameAs(server.syncedTo())) {
            server.syncedTo(target); // it was set for the client, and reports the client's change: still is
        }
    }

    @Override
    public void reset() {
        if (server != null) {
            server.appliedUnknown();
            server.syncedTo(null);
        }
    }

    private void addPins(int bits) {
        int fresh = bits & ~pins;
        if (bits != 0) {
            resetNeeded = true;
        }
        pins |= bits;
        if (fresh != 0) {
            for (PgPin pin : PgPin.values()) {
                if ((fresh & pin.bit()) != 0) {
                    context.pinned(pin.label());
                }
            }
        }
    }

    // ---------------------------------------------------------------- core's questions

    /** Why the client is pinned now, or null: the reasons' labels, comma-separated. */
    String pinReason() {
        if (pins == 0) {
            return null;
        }
        StringBuilder why = new StringBuilder();
        for (PgPin pin : PgPin.of(pins)) {
            if (!why.isEmpty()) {
                why.append(',');
            }
            why.append(pin.label());
        }
        return why.toString();
    }

    /** When the client leaves holding an idle connection: whether what it left must be reset. */
    boolean needsReset() {
        return pins != 0 || resetNeeded;
    }

    /** When the client leaves: whether the lent connection can serve another client (after a reset). */
    boolean reusable() {
        return server != null && !lost && syncReader == null && (prepared == null || prepared.atBoundary())
                && server.statements().idle() && !server.statements().lost();
    }

    void close() {
        if (held != null) {
            for (ByteBuf b; (b = held.poll()) != null; ) {
                b.release();
            }
            held = null;
        }
        if (syncReader != null) {
            syncReader.release();
            syncReader = null;
        }
    }

    // ---------------------------------------------------------------- SQL text

    /** An escape-string literal: safe whatever standard_conforming_strings says. */
    static String literal(String value) {
        return "E'" + value.replace("\\", "\\\\").replace("'", "''") + "'";
    }

    private static String identifier(String name) {
        return '"' + name.replace("\"", "\"\"") + '"';
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

    /** Whether two sorted maps hold the same names, spelt alike, with the same values. */
    private static boolean sameEntries(Map<String, String> a, Map<String, String> b) {
        if (a.size() != b.size()) {
            return false;
        }
        Iterator<Map.Entry<String, String>> other = b.entrySet().iterator();
        for (Map.Entry<String, String> entry : a.entrySet()) {
            Map.Entry<String, String> that = other.next();
            if (!entry.getKey().equals(that.getKey()) || !Objects.equals(entry.getValue(), that.getValue())) {
                return false;
            }
        }
        return true;
    }

    private static Set<String> caseInsensitive(String... names) {
        Set<String> set = new TreeSet<>(String.CASE_INSENSITIVE_ORDER);
        set.addAll(List.of(names));
        return set;
    }
}
