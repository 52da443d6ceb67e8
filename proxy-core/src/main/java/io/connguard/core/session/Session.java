package io.connguard.core.session;

import io.connguard.core.admission.Admission;
import io.connguard.core.admission.Admission.Rejection;
import io.connguard.core.admission.ClientKey;
import io.connguard.core.api.ClientIdentity;
import io.connguard.core.api.ClientTlsSession;
import io.connguard.core.api.ListenerInfo;
import io.connguard.core.api.ProtocolSession;
import io.connguard.core.api.ProxyError;
import io.connguard.core.api.SessionContext;
import io.connguard.core.api.SessionState;
import io.connguard.core.config.Limits;
import io.connguard.core.config.PoolConfig;
import io.connguard.core.metrics.ClientSeries;
import io.connguard.core.metrics.CloseReason;
import io.connguard.core.pool.Lessee;
import io.connguard.core.pool.ServerConnection;
import io.connguard.core.server.Listener;
import io.connguard.core.timers.LeakWatch;
import io.connguard.core.timers.SessionTimers;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandler;
import io.netty.channel.EventLoop;
import io.netty.util.concurrent.Future;
import io.netty.util.concurrent.ScheduledFuture;
import org.slf4j.event.Level;

import java.net.InetSocketAddress;
import java.time.Instant;
import java.util.List;

/**
 * One client connection and, once admitted, its upstream connection: the protocol-neutral state machine
 * HANDSHAKE → (QUEUED) → CONNECTING → CONNECTED → CLOSED that turns the protocol's reports into
 * admission, timers, metrics and kills, and moves bytes between the two channels with read-after-write
 * backpressure (a side is read only while the other side's outbound buffer is under its high water
 * mark; writes are flushed once per read batch).
 *
 * <p>This class is the face the protocols ({@link SessionContext}), admission ({@code Grantee}), the pool
 * ({@link Lessee}), the timers and the admin API see, holds the state the parts share (phase, channels,
 * identity, key, limits, ticket, series, reported state) and runs the relay itself: channel events from
 * {@link RelayHandler}, {@link #toClient} / {@link #toUpstream} and the flush per read batch. The rest is
 * delegated to package-private parts that each own their own state:
 * <ul>
 *   <li>{@link SessionAdmission}: identification, the admission ticket, queueing, probation, the early
 *       upstream and the connect after a grant (and per-transaction admission);
 *   <li>{@link ServerBorrowing}: pooled listeners: the pool, password checks, borrowing and giving back a
 *       server connection;
 *   <li>{@link SessionAccounting}: reported state counts, session timers, leak suspicion, and moving the
 *       accounting when the identity or the policy changes;
 *   <li>{@link SessionTls}: TLS on the upstream and client channels and the clientTls.mode refusals;
 *   <li>{@link SessionClosing}: the handshake timer, kills, the close, the goodbye upstream and the
 *       answer-linger after a kill.
 * </ul>
 *
 * <p>Everything here runs on the client channel's event loop, which the upstream channel shares; only
 * {@link #kill}, {@link #refresh} and the admission grant arrive from elsewhere, and they hop onto the loop.
 */
public final class Session implements SessionContext, SessionTimers.Actions, Admission.Grantee, LeakWatch.Candidate,
        Lessee {

    /** PROBATION: over its cap, authenticating or running a cancel on an early upstream without a client slot. */
    enum Phase { HANDSHAKE, QUEUED, CONNECTING, CONNECTED, PROBATION, CLOSED }

    final long id;
    final Listener listener;
    final ProxyServices services;
    final Channel client;
    // The address as text and the wall-clock opening time are derived when asked for (log lines, views,
    // admission): kept, they were ~80 bytes of every idle session.
    final long openedNanos = System.nanoTime();
    /**
     * Made at start-up for the handshake timer and let go once the timer is cancelled with nothing else
     * pending (see {@link #cancelHandshakeTimer}); made again when the session closes. Use {@link #closing()}.
     */
    private SessionClosing closing;
    final ServerBorrowing borrowing = new ServerBorrowing(this);
    final SessionAdmission admission = new SessionAdmission(this);
    final SessionAccounting accounting = new SessionAccounting(this);
    /** Made at the first TLS step or refusal: most sessions of most listeners never take one. */
    SessionTls tls;

    // The state the parts share; package-private so that they read and write it on this loop like this class.
    ProtocolSession protocol;
    Phase phase = Phase.HANDSHAKE;
    /** The upstream channel: opened for the session, opened early, or the lent server connection's. */
    Channel upstream;
    ClientIdentity identity;
    ClientKey key;
    Limits limits;
    /** The admission slot (or the wait for one) until it is given back: on close, or per transaction. */
    Admission.Ticket ticket;
    ClientSeries series;
    /** What the protocol last reported, since when, and whether inside a transaction. */
    SessionState state = SessionState.ACTIVE;
    long stateSince;
    boolean inTransaction;
    /** Transaction mode: the lease of a server connection per transaction (null in other modes). */
    final TransactionLease lease;
    /** Relay: inside a read batch (writes are flushed at its end), and the sides written to in it. */
    boolean reading;
    boolean clientDirty;
    boolean upstreamDirty;
    long bytesIn;
    long bytesOut;

    Session(Listener listener, ProxyServices services, Channel client) {
        this.id = services.registry().nextId();
        this.listener = listener;
        this.services = services;
        this.client = client;
        this.lease = listener.pools() != null && listener.config().pool().mode() == PoolConfig.Mode.TRANSACTION
                ? new TransactionLease() : null;
    }

    // ------------------------------------------------------------------ channel events (RelayHandler)

    void start() {
        services.registry().add(this);
        protocol = listener.module().newSession(this);
        closing().armHandshakeTimer();
        client.read();
    }

    void upstreamActive() {
        listener.meters().upstreamOpened(System.nanoTime() - admission.connectStartedAt());
    }

    void read(boolean fromClient, ByteBuf bytes) {
        if (phase == Phase.CLOSED) {
            bytes.release();
            if (fromClient) {
                closing().answerNextRequest();
            }
            return;
        }
        reading = true;
        try {
            if (fromClient) {
                bytesIn += bytes.readableBytes();
                protocol.onClientBytes(bytes);
            } else {
                protocol.onUpstreamBytes(bytes);
            }
        } catch (RuntimeException e) {
            log().at(Level.WARN).setCause(e).log("protocol tracker failed; closing the session");
            close(CloseReason.PROTOCOL_ERROR, null);
        }
    }

    void readComplete(boolean fromClient) {
        reading = false;
        flushDirty();
        if (lease != null && phase == Phase.CONNECTED && lease.takeRelease()) {
            borrowing.releaseServer(lease.takeReset());
        }
        if (phase == Phase.CLOSED) {
            if (fromClient && closing().answering()) {
                client.read();
            } else if (!fromClient && upstream != null && upstream.isActive()) {
                upstream.read(); // waiting for the server to close after our goodbye
            }
            return;
        }
        if (fromClient) {
            // Before an upstream exists, keep reading: the protocol bounds what it holds, and a read is how
            // a queued client's disconnect is noticed at once.
            if (upstream == null ? lease == null || !protocol.holdingClientBytes() : upstream.isWritable()) {
                client.read();
            }
        } else if (upstream != null && client.isWritable()) {
            upstream.read();
        }
    }

    void writabilityChanged(boolean clientSide) {
        if (phase == Phase.CLOSED || upstream == null) {
            return;
        }
        if (upstream == null) {
            return;
        }
        if (clientSide) {
            if (client.isWritable()) {
                upstream.read();
            }
        } else if (upstream.isWritable()) {
            client.read();
        }
    }

    void channelClosed(boolean clientSide) {
        if (!clientSide) {
            listener.meters().upstreamClosed();
        } else {
            closing().dropAnswer();
        }
        close(clientSide ? CloseReason.CLIENT : CloseReason.UPSTREAM, null);
    }

    void channelFailed(boolean clientSide, Throwable cause) {
        if (cause instanceof OutOfMemoryError) {
            // A buffer the capped direct memory could not give (a full heap exits the JVM before this): this
            // session ends, the others keep theirs.
            log().at(Level.WARN).addKeyValue("reason", "out_of_memory")
                    .log("out of buffer memory, closing the session: {}", cause.getMessage());
        } else {
            debug("{} connection failed: {}", clientSide ? "client" : "upstream", cause.toString());
        }
        close(clientSide ? CloseReason.CLIENT : CloseReason.UPSTREAM, null);
    }

    // ------------------------------------------------------------------ SessionContext

    @Override
    public long id() {
        return id;
    }

    @Override
    public ListenerInfo listener() {
        return listener.info();
    }

    @Override
    public InetSocketAddress clientAddress() {
        return (InetSocketAddress) client.remoteAddress(); // Netty keeps it: not repeated in every session
    }

    @Override
    public ByteBufAllocator alloc() {
        return client.alloc();
    }

    @Override
    public EventLoop eventLoop() {
        return loop();
    }

    /**
     * Made for each use (log lines are rare, and it holds nothing but the session): kept, it was 16 bytes of
     * every idle session.
     */
    @Override
    public SessionLogger log() {
        return new SessionLogger(this);
    }

    @Override
    public void identified(ClientIdentity who) {
        if (phase == Phase.CLOSED) {
            return;
        }
        if (identity == null) {
            admission.admit(who);
        } else if (phase == Phase.CONNECTED && !who.equals(identity)) {
            accounting.rekey(who);
        }
    }

    @Override
    public void stateChanged(SessionState reported) {
        accounting.stateChanged(reported);
    }

    @Override
    public void lostSync(String reason) {
        if (phase == Phase.CLOSED || state == SessionState.UNKNOWN) {
            return;
        }
        listener.meters().lostSync();
        log().at(Level.WARN).addKeyValue("reason", reason)
                .log("protocol tracker lost sync; relaying on without enforcing limits: {}", reason);
        if (phase == Phase.CONNECTED) {
            stateChanged(SessionState.UNKNOWN);
        } else {
            state = SessionState.UNKNOWN;
        }
    }

    @Override
    public void violation(String reason) {
        log().at(Level.INFO).addKeyValue("reason", "protocol_error").log("protocol violation: {}", reason);
        close(CloseReason.PROTOCOL_ERROR, new ProxyError(ProxyError.Kind.PROTOCOL_VIOLATION,
                "protocol violation: " + reason, ""));
    }

    @Override
    public void upstreamFailed(String reason) {
        if (phase == Phase.CLOSED) {
            return;
        }
        listener.meters().connectError();
        log().at(Level.WARN).addKeyValue("reason", "upstream").log("cannot use upstream {}: {}",
                listener.config().upstream(), reason);
        close(CloseReason.UPSTREAM, new ProxyError(ProxyError.Kind.UPSTREAM_UNAVAILABLE,
                "connguard could not use the database server " + listener.config().upstream() + ": " + reason, ""));
    }

    @Override
    public void toClient(ByteBuf bytes) {
        if (phase == Phase.CLOSED || !client.isActive()) {
            bytes.release();
            return;
        }
        bytesOut += bytes.readableBytes();
        client.write(bytes, client.voidPromise());
        if (reading) {
            clientDirty = true;
        } else {
            client.flush();
        }
    }

    @Override
    public void toUpstream(ByteBuf bytes) {
        if (phase == Phase.CLOSED || upstream == null || !upstream.isActive()) {
            bytes.release();
            return;
        }
        upstream.write(bytes, upstream.voidPromise());
        if (reading) {
            upstreamDirty = true;
        } else {
            upstream.flush();
        }
    }

    // ------------------------------------------------------------------ TLS (SessionTls)

    @Override
    public Future<Channel> startUpstreamTls() {
        return tls().startUpstreamTls();
    }

    @Override
    public Future<ClientTlsSession> startClientTls(ByteBuf alreadyRead) {
        return tls().startClientTls(alreadyRead);
    }

    @Override
    public void clientTlsRefused(ClientIdentity who, String request) {
        tls().clientTlsRefused(who, request);
    }

    @Override
    public void plaintextRefused(ClientIdentity who) {
        tls().plaintextRefused(who);
    }

    /** The client channel's event loop, which the session's upstream shares (Netty keeps it: not repeated here). */
    EventLoop loop() {
        return client.eventLoop();
    }

    SessionTls tls() {
        if (tls == null) {
            tls = new SessionTls(this);
        }
        return tls;
    }

    // ------------------------------------------------------------------ other SessionContext

    @Override
    public Future<Channel> connectAside(InetSocketAddress target, ChannelHandler handler) {
        return UpstreamConnector.connectAside(loop(), target, handler, listener, services);
    }

    @Override
    public void close() {
        close(CloseReason.CLIENT, null);
    }

    // ------------------------------------------------------------------ admission (SessionAdmission)

    @Override
    public boolean openUpstreamEarly() {
        return admission.openUpstreamEarly();
    }

    @Override
    public void requestSlot() {
        admission.requestSlot();
    }

    @Override
    public void serverWanted() {
        admission.serverWanted();
    }

    @Override
    public void queued() {
        admission.queued();
    }

    @Override
    public void admitted() {
        admission.admitted();
    }

    @Override
    public void rejected(Rejection why) {
        admission.rejected(why);
    }

    // ------------------------------------------------------------------ pooled listeners (ServerBorrowing)

    @Override
    public void passwordGiven(char[] given) {
        borrowing.passwordGiven(given);
    }

    @Override
    public void passwordProven() {
        borrowing.passwordProven();
    }

    @Override
    public boolean transactionPooled() {
        return lease != null;
    }

    @Override
    public void serverIdle(boolean reset) {
        borrowing.serverIdle(reset);
    }

    @Override
    public void pinned(String reason) {
        borrowing.pinned(reason);
    }

    @Override
    public void transactionServed() {
        if (series != null) {
            series.transactionServed();
        }
    }

    // ------------------------------------------------------------------ Lessee (pooled listeners)

    @Override
    public void lent(ServerConnection connection) {
        borrowing.lent(connection);
    }

    @Override
    public ProtocolSession protocolSession() {
        return protocol;
    }

    @Override
    public boolean fits(ServerConnection connection) {
        try {
            return protocol == null || protocol.serverFits(connection.protocol());
        } catch (RuntimeException e) {
            return false;
        }
    }

    @Override
    public void passwordNeeded(ServerConnection connection) {
        borrowing.passwordNeeded(connection);
    }

    @Override
    public void refused(ByteBuf clientError, String reason) {
        borrowing.refused(clientError, reason);
    }

    @Override
    public void unavailable(String reason, boolean poolFull) {
        borrowing.unavailable(reason, poolFull);
    }

    @Override
    public void serverRead(ByteBuf bytes) {
        read(false, bytes);
    }

    @Override
    public void serverReadComplete() {
        readComplete(false);
    }

    @Override
    public void serverWritabilityChanged() {
        writabilityChanged(false);
    }

    @Override
    public void serverClosed() {
        borrowing.serverClosed();
    }

    // ------------------------------------------------------------------ policy and leaks (SessionAccounting)

    /**
     * Re-reads the client key and the limits in force from the current policy (after a reload, which may
     * have changed {@code clients.identity} as well as limits). Call from any thread.
     */
    public void refresh() {
        accounting.refresh();
    }

    @Override
    public void leakSuspected(long idleNanos) {
        accounting.leakSuspected(idleNanos);
    }

    @Override
    public void underPressure(String why) {
        accounting.underPressure(why);
    }

    // ------------------------------------------------------------------ timers and kills (SessionClosing)

    @Override
    public void expired(SessionTimers.Expiry expiry) {
        closing().expired(expiry);
    }

    /** Ends the session as the admin API or a drain asks (reason ADMIN or SHUTDOWN). Call from any thread. */
    public void kill(CloseReason reason) {
        loop().execute(() -> closing().kill(reason));
    }

    /** Ends the session once (see {@link SessionClosing#close}); {@code reason} null: never admitted. */
    void close(CloseReason reason, ProxyError error) {
        closing().close(reason, error);
    }

    /** A DEBUG line about this session; with DEBUG off (per transaction on pooled listeners) no logger is made. */
    void debug(String message, Object... args) {
        if (SessionLogger.debugEnabled()) {
            debug(message, args);
        }
    }

    SessionClosing closing() {
        if (closing == null) {
            closing = new SessionClosing(this);
        }
        return closing;
    }

    /** Stops the handshake timer; the closing part, then holding nothing, is let go until the session closes. */
    void cancelHandshakeTimer() {
        if (closing != null && closing.cancelHandshakeTimer()) {
            closing = null;
        }
    }

    // ------------------------------------------------------------------ relay

    RelayHandler upstreamHandler() {
        return new RelayHandler(this, false);
    }

    /** Flushes what the read batch wrote to either side (writes during a read batch only mark the side dirty). */
    void flushDirty() {
        if (clientDirty) {
            clientDirty = false;
            client.flush();
        }
        if (upstreamDirty) {
            upstreamDirty = false;
            if (upstream != null) {
                upstream.flush();
            }
        }
    }

    static void cancel(ScheduledFuture<?> timer) {
        if (timer != null) {
            timer.cancel(false);
        }
    }

    // ------------------------------------------------------------------ views

    /** This session as {@code /sessions} shows it, or null before admission. Call on the event loop. */
    SessionSnapshot snapshot() {
        if (identity == null || phase == Phase.HANDSHAKE || phase == Phase.QUEUED || phase == Phase.PROBATION
                || phase == Phase.CLOSED) {
            return null;
        }
        long now = System.nanoTime();
        Instant wallNow = Instant.now();
        return new SessionSnapshot(id, listener.name(), identity.user(), identity.database(), identity.application(),
                address(), state.label(), wallNow.minusNanos(now - stateSince), wallNow.minusNanos(now - openedNanos),
                inTransaction, accounting.leakSuspect(), lastStatement(), bytesIn, bytesOut, key, borrowing.pooled(),
                borrowing.serverId(), pinReason());
    }

    String pinReason() {
        try {
            return protocol == null ? null : protocol.pinReason();
        } catch (RuntimeException e) {
            return null;
        }
    }

    String lastStatement() {
        if (protocol == null) {
            return "";
        }
        try {
            return protocol.lastStatement();
        } catch (RuntimeException e) {
            return "";
        }
    }

    String listenerName() {
        return listener.name();
    }

    /** The client channel and, once opened, the upstream one. */
    List<Channel> channels() {
        return upstream == null ? List.of(client) : List.of(client, upstream);
    }

    /** The client's IP address as text ("" when unknown), made at each call: log lines, admission, views. */
    String address() {
        InetSocketAddress clientAddress = clientAddress();
        return clientAddress == null || clientAddress.getAddress() == null
                ? "" : clientAddress.getAddress().getHostAddress();
    }

    ClientIdentity identity() {
        return identity;
    }

    ClientKey key() {
        return key;
    }

    Limits limits() {
        return limits;
    }

    String describeClient() {
        return key == null ? "" : key.describe(services.policy().identity());
    }

    Listener runtimeListener() {
        return listener;
    }

    Channel clientChannel() {
        return client;
    }

    boolean perUser() {
        return services.policy().perUser();
    }
}
