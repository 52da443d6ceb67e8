package io.connguard.core.pool;

import io.connguard.core.api.ClientIdentity;
import io.connguard.core.auth.PoolAuth;
import io.connguard.core.auth.UsersDirectory;
import io.connguard.core.config.PoolConfig;
import io.connguard.core.server.Listener;
import io.connguard.core.session.ProxyServices;
import io.connguard.core.session.UpstreamConnector;
import io.netty.channel.Channel;
import io.netty.channel.EventLoop;
import io.netty.util.concurrent.Future;

import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The pools of one pooled listener, one per (user, database), all on the listener's single event loop:
 * it creates pools on first use, keeps the listener's count of open server connections against
 * {@code maxUpstreamConnections} (closing an idle connection of another pool to make room), and hands a
 * connection freed in one pool to a waiter of another. Only {@link #snapshot} is read from other threads.
 */
public final class Pools implements AutoCloseable {

    private static final AtomicLong IDS = new AtomicLong();

    private final Listener listener;
    private final ProxyServices services;
    private final EventLoop loop;
    private final UsersDirectory users;
    private final Map<PoolKey, ServerPool> pools = new ConcurrentHashMap<>();
    private int open;
    private boolean handingOver;

    public Pools(Listener listener, ProxyServices services, EventLoop loop, UsersDirectory users) {
        this.listener = listener;
        this.services = services;
        this.loop = loop;
        this.users = users;
    }

    /** The pool for a client's user and database, created on first use. Call on {@link #loop()}. */
    public ServerPool pool(ClientIdentity who) {
        PoolKey key = new PoolKey(listener.name(), who.user(), who.database());
        ServerPool pool = pools.get(key);
        if (pool == null) {
            pool = new ServerPool(key, this, loop, new PoolAuth(users, who.user()));
            pools.put(key, pool);
        }
        return pool;
    }

    public EventLoop loop() {
        return loop;
    }

    PoolConfig config() {
        return listener.config().pool();
    }

    Listener listener() {
        return listener;
    }

    long nextId() {
        return IDS.incrementAndGet();
    }

    PoolMeters meters(PoolKey key, ServerPool pool) {
        return new PoolMeters(services.metrics().registry(), key);
    }

    Future<Channel> connect(ServerConnection connection) {
        return UpstreamConnector.connectPooled(loop, new ServerConnectionHandler(connection), listener, services);
    }

    String describe(Throwable cause) {
        listener.meters().connectError();
        return "could not connect to the database server " + listener.config().upstream() + ": "
                + UpstreamConnector.describe(cause);
    }

    /** Whether the listener may open one more server connection for {@code pool}, making room if it must. */
    boolean roomForOneMore(ServerPool pool) {
        int cap = listener.config().maxUpstreamConnections();
        if (cap == 0 || open < cap) {
            return true;
        }
        for (ServerPool other : pools.values()) {
            if (other != pool && other.closeOneIdle()) {
                return false; // room comes when that connection has closed
            }
        }
        return false;
    }

    /** One more server connection counts against the listener's cap (from the connect attempt on). */
    void opened() {
        open++;
    }

    void closedOne() {
        open--;
    }

    /** The TCP connection of a server connection is open (the listener's upstream gauge and connect time). */
    void connected(long connectNanos) {
        listener.meters().upstreamOpened(connectNanos);
    }

    void disconnected() {
        listener.meters().upstreamClosed();
    }

    /** A connection of {@code freed} closed or went idle: a waiter of another pool may now get one. */
    void someoneElse(ServerPool freed) {
        if (listener.config().maxUpstreamConnections() == 0 || handingOver) {
            return;
        }
        handingOver = true;
        try {
            for (ServerPool other : pools.values()) {
                if (other != freed && other.hasWaiters()) {
                    other.serveWaiters();
                }
            }
        } finally {
            handingOver = false;
        }
    }

    /** Every pool as {@code /pools} shows it; safe from any thread. */
    public List<PoolSnapshot> snapshot() {
        List<PoolSnapshot> all = new ArrayList<>();
        for (ServerPool pool : pools.values()) {
            all.add(pool.snapshot());
        }
        return all;
    }

    Collection<ServerPool> all() {
        return pools.values();
    }

    @Override
    public void close() {
        if (users != null) {
            users.close();
        }
        loop.execute(() -> pools.values().forEach(ServerPool::closeAll));
    }
}
