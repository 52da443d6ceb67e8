package io.connguard.core.pool;

import io.connguard.core.api.ClientIdentity;
import io.connguard.core.auth.PoolAuth;
import io.connguard.core.config.PoolConfig;
import io.connguard.core.server.Listener;
import io.netty.buffer.ByteBuf;
import io.netty.channel.Channel;
import io.netty.channel.EventLoop;
import io.netty.util.ReferenceCountUtil;
import io.netty.util.concurrent.ScheduledFuture;

import java.util.ArrayDeque;
import java.util.Arrays;
import java.util.Iterator;
import java.util.concurrent.TimeUnit;

/**
 * The server connections of one (listener, user, database): the idle ones (most recently used first), the
 * lent ones, those opening or resetting, and the sessions waiting for one in arrival order. It opens
 * connections on demand up to {@code pool.size} (and the listener's {@code maxUpstreamConnections}),
 * keeps {@code minIdle} open where it can log in without a client, and closes idle connections after
 * {@code idleTimeout} or once older than {@code maxLifetime}. Confined to the listener's one event loop,
 * so nothing here is locked.
 */
public final class ServerPool {

    /** A session waiting for a server connection. */
    private record Waiter(Lessee lessee, ClientIdentity identity, char[] password, boolean fresh, long since,
                          ScheduledFuture<?> timer) {
    }

    private final PoolKey key;
    private final Pools pools;
    private final EventLoop loop;
    private final PoolAuth auth;
    private final ArrayDeque<ServerConnection> idle = new ArrayDeque<>();
    private final BusyConnections busy = new BusyConnections();
    private final ArrayDeque<Waiter> waiters = new ArrayDeque<>();
    private final PoolMeters meters;
    private ScheduledFuture<?> reaper;
    /** Pinned connections by reason, for {@code /pools} (read from the admin thread). */
    private volatile java.util.Map<String, Integer> pins = java.util.Map.of();

    /** Transaction mode: see {@link #transactionPassword()}. */
    private char[] lentPassword;

    ServerPool(PoolKey key, Pools pools, EventLoop loop, PoolAuth auth) {
        this.key = key;
        this.pools = pools;
        this.loop = loop;
        this.auth = auth;
        this.meters = pools.meters(key, this);
    }

    // ------------------------------------------------------------------ checkout

    /**
     * Lends {@code lessee} a server connection: an idle one, or a new one logged in with {@code password}
     * (null: none known; the login asks through the lessee if the database wants one). {@code fresh}: the
     * client's password must be verified by a server login of its own, so an idle connection will not do.
     * A session that finds the pool full waits up to {@code maxWaitNanos}.
     */
    public void checkout(Lessee lessee, ClientIdentity identity, char[] password, boolean fresh, long maxWaitNanos) {
        char[] copy = password == null ? null : password.clone();
        if (waiters.isEmpty() && serve(lessee, identity, copy, fresh, System.nanoTime())) {
            return;
        }
        ScheduledFuture<?> timer = loop.schedule(() -> expire(lessee), Math.max(0, maxWaitNanos), TimeUnit.NANOSECONDS);
        waiters.add(new Waiter(lessee, identity, copy, fresh, System.nanoTime(), timer));
        publish();
    }

    /** The session stopped waiting (it closed). */
    public void cancel(Lessee lessee) {
        for (Iterator<Waiter> it = waiters.iterator(); it.hasNext(); ) {
            Waiter w = it.next();
            if (w.lessee() == lessee) {
                it.remove();
                w.timer().cancel(false);
                clear(w.password());
            }
        }
        for (int i = 0; i < busy.size(); i++) {
            ServerConnection c = busy.get(i);
            if (c.state() == ServerConnection.State.LOGIN && c.lessee() == lessee) {
                c.openedFor(null);
            }
        }
    }

    private void expire(Lessee lessee) {
        for (Iterator<Waiter> it = waiters.iterator(); it.hasNext(); ) {
            Waiter w = it.next();
            if (w.lessee() == lessee) {
                it.remove();
                clear(w.password());
                meters.waited(System.nanoTime() - w.since());
                publish();
                lessee.unavailable("no server connection of the pool freed up within queueTimeout (pool.size "
                        + pools.config().size() + ")", true);
                return;
            }
        }
    }

    /** Serves one request at once if the pool can; false when it must wait. */
    private boolean serve(Lessee lessee, ClientIdentity identity, char[] password, boolean fresh, long since) {
        if (fresh && password == null && auth.need() == PoolAuth.Need.NONE) {
            fresh = false; // asked for a login of its own before the pool knew the database asks no password
        }
        if (!fresh) {
            ServerConnection c = fitting(lessee);
            if (c != null) {
                clear(password);
                busy.add(c);
                meters.waited(System.nanoTime() - since);
                c.lend(lessee);
                publish();
                return true;
            }
        }
        if (size() >= pools.config().size()) {
            if (idle.isEmpty()) {
                return false;
            }
            // Idle connections are there but none will do: make room for the login that verifies a new password,
            // or for a connection that fits this client.
            ServerConnection oldest = idle.pollLast();
            busy.add(oldest); // counted until its channel has closed; the waiter is served then
            oldest.close();
            return false;
        }
        if (!pools.roomForOneMore(this)) {
            return false;
        }
        meters.waited(System.nanoTime() - since);
        open(lessee, identity, auth.serverPassword(password));
        clear(password);
        return true;
    }

    /** The most recently used idle connection that can serve {@code lessee}, taken off the idle list; or null. */
    private ServerConnection fitting(Lessee lessee) {
        for (Iterator<ServerConnection> it = idle.iterator(); it.hasNext(); ) {
            ServerConnection c = it.next();
            if (lessee.fits(c)) {
                it.remove();
                return c;
            }
        }
        return null;
    }

    private void open(Lessee lessee, ClientIdentity identity, char[] password) {
        ServerConnection c = new ServerConnection(pools.nextId(), this, System.nanoTime());
        c.openedFor(lessee);
        busy.add(c);
        pools.opened();
        if (pools.config().minIdle() > 0) {
            armReaper(); // tops up minIdle while every connection is lent, as a pool's minimum idle means
        }
        char[] copy = password == null ? null : password.clone();
        long started = System.nanoTime();
        pools.connect(c).addListener(done -> {
            if (!done.isSuccess()) {
                clear(copy);
                busy.remove(c);
                pools.closedOne();
                Lessee waiting = c.lessee();
                if (waiting != null) {
                    waiting.unavailable(pools.describe(done.cause()), false);
                }
                serveWaiters();
                return;
            }
            pools.connected(System.nanoTime() - started);
            ((Channel) done.getNow()).closeFuture().addListener(closed -> pools.disconnected());
            c.open((Channel) done.getNow(), identity, copy);
            clear(copy);
        });
    }

    /** Serves waiters in order while the pool can. */
    void serveWaiters() {
        while (!waiters.isEmpty()) {
            // Taken off the queue before it is served: a lend runs the session, which may come back here.
            Waiter w = waiters.pollFirst();
            if (!serve(w.lessee(), w.identity(), w.password(), w.fresh(), w.since())) {
                waiters.addFirst(w); // nothing was lent, so nothing ran in between
                break;
            }
            w.timer().cancel(false);
        }
        publish();
        pools.someoneElse(this);
    }

    /** Publishes the counts the gauges and {@code /pools} read. */
    void publish() {
        int pinned = busy.pinned();
        meters.publish(busy.size() - pinned, idle.size(), pinned, waiters.size());
    }

    PoolSnapshot snapshot() {
        return new PoolSnapshot(key.listener(), key.user(), key.database(), meters.get(0), meters.get(1),
                meters.get(2), meters.get(PoolMeters.WAITING), pins);
    }

    /** Whether a waiter of this pool could use a connection the listener frees. */
    boolean hasWaiters() {
        return !waiters.isEmpty();
    }

    // ------------------------------------------------------------------ reports from connections

    void loggedIn(ServerConnection c, boolean asked, char[] password) {
        auth.loginSucceeded(asked, password);
        if (password != null && pools.config().mode() == PoolConfig.Mode.TRANSACTION) {
            clear(lentPassword);
            lentPassword = password.clone();
        }
        Lessee lessee = c.lessee();
        if (lessee != null) {
            c.lend(lessee);
        } else {
            becomeIdle(c);
        }
    }

    void passwordNeeded(ServerConnection c) {
        Lessee lessee = c.lessee();
        if (lessee == null) {
            c.failed("the database asks for a password and no client is waiting to give one");
            return;
        }
        lessee.passwordNeeded(c);
    }

    void loginRefused(ServerConnection c, ByteBuf clientError, boolean credentials, char[] password, String reason) {
        if (credentials) {
            auth.loginRefused(password);
            if (lentPassword != null && password != null && java.util.Arrays.equals(lentPassword, password)) {
                clear(lentPassword);
                lentPassword = null;
            }
        }
        Lessee lessee = c.lessee();
        c.openedFor(null);
        if (lessee != null) {
            lessee.refused(clientError, reason);
        } else {
            ReferenceCountUtil.release(clientError);
        }
    }

    void loginFailed(ServerConnection c, String reason) {
        Lessee lessee = c.lessee();
        c.openedFor(null);
        if (lessee != null) {
            lessee.unavailable(reason, false);
        }
    }

    /** A lessee gives its connection back; {@code reusable}: it stands idle at a clean boundary. */
    public void giveBack(ServerConnection c, boolean reusable) {
        giveBack(c, reusable, pools.config().reset() == PoolConfig.Reset.AUTO);
    }

    /**
     * As {@link #giveBack(ServerConnection, boolean)}, saying whether the connection must be reset (transaction
     * mode resets only what a pin left behind, and {@code pool.reset: none} never).
     */
    public void giveBack(ServerConnection c, boolean reusable, boolean reset) {
        boolean old = expired(c, System.nanoTime());
        if (c.pinned()) {
            c.pinned(null);
            busy.pinChanged(c, true);
            countPins();
        }
        c.giveBack(reusable && !old, reset && pools.config().reset() == PoolConfig.Reset.AUTO);
        publish();
    }

    /**
     * The lessee of {@code c} is pinned to it for {@code reasons} (comma-separated; transaction mode): counted
     * as pinned, not active, and by reason in {@code /pools}.
     */
    public void pinned(ServerConnection c, String reasons) {
        if (!java.util.Objects.equals(c.pinReason(), reasons)) {
            boolean was = c.pinned();
            c.pinned(reasons);
            busy.pinChanged(c, was);
            countPins();
            publish();
        }
    }

    /** Recounts the pinned connections by reason for {@code /pools} (only when a pin comes or goes). */
    private void countPins() {
        java.util.Map<String, Integer> counts = new java.util.TreeMap<>();
        for (int i = 0; i < busy.size(); i++) {
            ServerConnection c = busy.get(i);
            if (c.pinned()) {
                for (String reason : c.pinReason().split(",")) {
                    counts.merge(reason, 1, Integer::sum);
                }
            }
        }
        pins = java.util.Collections.unmodifiableMap(counts);
    }

    void resetDone(ServerConnection c) {
        becomeIdle(c);
    }

    private void becomeIdle(ServerConnection c) {
        busy.remove(c);
        c.idle(System.nanoTime());
        idle.addFirst(c);
        armReaper();
        serveWaiters();
    }

    void closed(ServerConnection c, ServerConnection.State was) {
        boolean known = busy.remove(c) | idle.remove(c);
        if (known) {
            pools.closedOne();
        }
        serveWaiters();
    }

    // ------------------------------------------------------------------ lifetimes

    private void armReaper() {
        if (reaper == null) {
            reaper = loop.scheduleWithFixedDelay(this::reap, 1, 1, TimeUnit.SECONDS);
        }
    }

    /** Closes idle connections past idleTimeout (beyond minIdle) or maxLifetime, and tops up minIdle. */
    void reap() {
        long now = System.nanoTime();
        PoolConfig config = pools.config();
        long idleTimeout = config.idleTimeout().toNanos();
        for (Iterator<ServerConnection> it = idle.descendingIterator(); it.hasNext(); ) {
            ServerConnection c = it.next();
            boolean tooIdle = idleTimeout > 0 && now - c.idleSince() >= idleTimeout && idle.size() > config.minIdle();
            if (tooIdle || expired(c, now)) {
                it.remove();
                busy.add(c); // counted until its channel has closed
                c.close();
            }
        }
        warm();
        publish();
        if (idle.isEmpty() && busy.isEmpty() && waiters.isEmpty() && reaper != null) {
            reaper.cancel(false);
            reaper = null;
        }
    }

    /**
     * Opens connections up to {@code minIdle} when the pool can log in without a client: the database asks
     * no password for this user, or the users file has it.
     */
    private void warm() {
        int missing = pools.config().minIdle() - idle.size() - opening();
        if (missing <= 0 || !(auth.need() == PoolAuth.Need.NONE || auth.serverPassword(null) != null)) {
            return;
        }
        ClientIdentity who = new ClientIdentity(key.user(), key.database(), "");
        for (int i = 0; i < missing && size() < pools.config().size() && pools.roomForOneMore(this); i++) {
            open(null, who, auth.serverPassword(null));
        }
    }

    private boolean expired(ServerConnection c, long now) {
        long lifetime = pools.config().maxLifetime().toNanos();
        return lifetime > 0 && now - c.openedNanos() >= lifetime;
    }

    /** Closes one idle connection to make room elsewhere in the listener; false if none is idle. */
    boolean closeOneIdle() {
        ServerConnection c = idle.pollLast();
        if (c == null) {
            return false;
        }
        busy.add(c);
        c.close();
        return true;
    }

    /** Closes every connection (the proxy is stopping). */
    /**
     * Transaction mode: the password the pool's last accepted login used (in memory only, cleared when a login
     * with it is refused or the pool closes), for a borrow whose client proved its password without giving it
     * (MySQL's scramble answer): its next server login has no one to ask. Null when none; not to be changed.
     */
    public char[] transactionPassword() {
        return lentPassword;
    }

    void closeAll() {
        clear(lentPassword);
        lentPassword = null;
        for (Waiter w : waiters) {
            w.timer().cancel(false);
            clear(w.password());
        }
        waiters.clear();
        for (ServerConnection c : idle.toArray(ServerConnection[]::new)) {
            c.close();
        }
        if (reaper != null) {
            reaper.cancel(false);
        }
    }

    // ------------------------------------------------------------------ views

    int size() {
        return idle.size() + busy.size();
    }

    private int opening() {
        int n = 0;
        for (int i = 0; i < busy.size(); i++) {
            ServerConnection c = busy.get(i);
            if (c.state() == ServerConnection.State.CONNECTING || c.state() == ServerConnection.State.LOGIN) {
                n++;
            }
        }
        return n;
    }

    /** Connections by state: active (lent, opening, resetting) and idle. */
    int active() {
        return busy.size();
    }

    int idleCount() {
        return idle.size();
    }

    int waiting() {
        return waiters.size();
    }

    public PoolKey key() {
        return key;
    }

    public PoolAuth auth() {
        return auth;
    }

    PoolConfig poolConfig() {
        return pools.config();
    }

    Listener listener() {
        return pools.listener();
    }

    private static void clear(char[] password) {
        if (password != null) {
            Arrays.fill(password, '\0');
        }
    }
}
