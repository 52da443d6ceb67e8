package io.connguard.core.session;

import io.connguard.core.admission.Admission;
import io.connguard.core.admission.Admission.Rejection;
import io.connguard.core.admission.ClientKey;
import io.connguard.core.admission.ClientPolicy;
import io.connguard.core.api.ClientIdentity;
import io.connguard.core.api.EarlyUpstream;
import io.connguard.core.api.ClientTlsSession;
import io.connguard.core.api.ListenerInfo;
import io.connguard.core.api.ProtocolSession;
import io.connguard.core.api.ProxyError;
import io.connguard.core.api.SessionContext;
import io.connguard.core.api.SessionLog;
import io.connguard.core.api.SessionState;
import io.connguard.core.config.Durations;
import io.connguard.core.config.Limits;
import io.connguard.core.config.PoolConfig;
import io.connguard.core.metrics.ClientSeries;
import io.connguard.core.metrics.CloseReason;
import io.connguard.core.metrics.Outcome;
import io.connguard.core.server.ClientTlsContext;
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
import io.netty.handler.ssl.SslHandler;
import io.netty.util.ReferenceCountUtil;
import io.netty.util.concurrent.Future;
import io.netty.util.concurrent.Promise;
import io.netty.util.concurrent.ScheduledFuture;
import org.slf4j.event.Level;

import java.net.InetSocketAddress;
import java.nio.channels.ClosedChannelException;
import java.time.Instant;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * One client connection and, once admitted, its upstream connection: the protocol-neutral state machine
 * HANDSHAKE → (QUEUED) → CONNECTING → CONNECTED → CLOSED that turns the protocol's reports into
 * admission, timers, metrics and kills, and moves bytes between the two channels with read-after-write
 * backpressure (a side is read only while the other side's outbound buffer is under its high water
 * mark; writes are flushed once per read batch).
 *
 * <p>Everything here runs on the client channel's event loop, which the upstream channel shares; only
 * {@link #kill}, {@link #refresh} and the admission grant arrive from elsewhere, and they hop onto the loop.
 */
public final class Session implements SessionContext, SessionTimers.Actions, Admission.Grantee, LeakWatch.Candidate,
        Lessee {

    /** PROBATION: over its cap, authenticating or running a cancel on an early upstream without a client slot. */
    enum Phase { HANDSHAKE, QUEUED, CONNECTING, CONNECTED, PROBATION, CLOSED }

    /**
     * Early upstreams a listener may close unauthenticated in a row before its sessions stop opening them
     * (until a session authenticates): a MySQL server blocks a host after max_connect_errors (default 100)
     * interrupted handshakes with no successful connection in between.
     */
    static final int MAX_EARLY_DROPS_IN_A_ROW = 10;

    final long id;
    final Listener listener;
    final ProxyServices services;
    final Channel client;
    final EventLoop loop;
    final InetSocketAddress clientAddress;
    final String address;
    private final long openedNanos = System.nanoTime();
    private final Instant openedAt = Instant.now();
    final SessionLogger log = new SessionLogger(this);
    final SessionClosing closing = new SessionClosing(this);
    final ServerBorrowing borrowing = new ServerBorrowing(this);

    ProtocolSession protocol;
    Phase phase = Phase.HANDSHAKE;
    Channel upstream;
    ClientIdentity identity;
    ClientKey key;
    Limits limits;
    Admission.Ticket ticket;
    /** The listener slot of an upstream opened before identification (openUpstreamEarly), until admission. */
    Admission.Reservation reservation;
    ClientSeries series;
    ClientSeries.Shard counts; // this loop's share of series' state counts, from connect() on
    SessionTimers timers;
    SessionState state = SessionState.ACTIVE;
    long stateSince;
    boolean inTransaction;
    boolean authenticated;
    boolean leakSuspect;
    /** Idle past leakDetectionThreshold and registered with {@link #leaks}, waiting for a sign of pressure. */
    boolean leakCandidate;
    /** The leak watch of this session's client key (from its admission ticket). */
    LeakWatch leaks;
    /** This connection counts against the key's maxClientConnections until it closes. */
    boolean clientCounted;
    /** Transaction mode: the lease of a server connection per transaction (null in other modes). */
    final TransactionLease lease;
    boolean reading;
    boolean clientDirty;
    boolean upstreamDirty;
    long bytesIn;
    long bytesOut;
    long queuedAt;
    /** Whether this session counts in its client's queued gauge now (a PENDING wait does not, until queued). */
    boolean countedQueued;
    long connectStartedAt;
    /** The upstream connect in flight (CONNECTING), so that a session closed meanwhile can wait for its outcome. */
    Future<Channel> connecting;
    ScheduledFuture<?> queueTimer;
    boolean clientTlsStarted;
    boolean clientTlsHandshaking;

    Session(Listener listener, ProxyServices services, Channel client) {
        this.id = services.registry().nextId();
        this.listener = listener;
        this.services = services;
        this.client = client;
        this.loop = client.eventLoop();
        this.clientAddress = (InetSocketAddress) client.remoteAddress();
        this.address = clientAddress == null || clientAddress.getAddress() == null
                ? "" : clientAddress.getAddress().getHostAddress();
        this.lease = listener.pools() != null && listener.config().pool().mode() == PoolConfig.Mode.TRANSACTION
                ? new TransactionLease() : null;
    }

    // ------------------------------------------------------------------ channel events (RelayHandler)

    void start() {
        services.registry().add(this);
        protocol = listener.module().newSession(this);
        closing.armHandshakeTimer();
        client.read();
    }

    void upstreamActive() {
        listener.meters().upstreamOpened(System.nanoTime() - connectStartedAt);
    }

    void read(boolean fromClient, ByteBuf bytes) {
        if (phase == Phase.CLOSED) {
            bytes.release();
            if (fromClient) {
                closing.answerNextRequest();
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
            log.at(Level.WARN).setCause(e).log("protocol tracker failed; closing the session");
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
            if (fromClient && closing.answering()) {
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
            closing.dropAnswer();
        }
        close(clientSide ? CloseReason.CLIENT : CloseReason.UPSTREAM, null);
    }

    void channelFailed(boolean clientSide, Throwable cause) {
        if (cause instanceof OutOfMemoryError) {
            // A buffer the capped direct memory could not give (a full heap exits the JVM before this): this
            // session ends, the others keep theirs.
            log.at(Level.WARN).addKeyValue("reason", "out_of_memory")
                    .log("out of buffer memory, closing the session: {}", cause.getMessage());
        } else {
            log.debug("{} connection failed: {}", clientSide ? "client" : "upstream", cause.toString());
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
        return clientAddress;
    }

    @Override
    public ByteBufAllocator alloc() {
        return client.alloc();
    }

    @Override
    public EventLoop eventLoop() {
        return loop;
    }

    @Override
    public SessionLog log() {
        return log;
    }

    @Override
    public void identified(ClientIdentity who) {
        if (phase == Phase.CLOSED) {
            return;
        }
        if (identity == null) {
            admit(who);
        } else if (phase == Phase.CONNECTED && !who.equals(identity)) {
            rekey(who);
        }
    }

    @Override
    public void stateChanged(SessionState reported) {
        if (phase != Phase.CONNECTED || state == SessionState.UNKNOWN) {
            return;
        }
        long now = System.nanoTime();
        if (!authenticated && reported != SessionState.ACTIVE) {
            authenticated = true;
            listener.earlyDropsInARow().set(0); // the server saw a successful login: its host error count is reset
            closing.cancelHandshakeTimer();
        }
        boolean tx = switch (reported) {
            case IDLE -> false;
            case IDLE_IN_TRANSACTION -> true;
            case ACTIVE, UNKNOWN -> inTransaction;
        };
        if (reported != state || tx != inTransaction) {
            counts.change(state, inTransaction, reported, tx);
        }
        if (reported != state || reported != SessionState.ACTIVE) {
            stateSince = now;
        }
        if (reported == SessionState.ACTIVE && leakSuspect) {
            leakSuspect = false;
            series.leakSuspectDelta(-1);
            log.debug("leak suspect in use again");
        }
        if (reported == SessionState.ACTIVE && leakCandidate) {
            leakCandidate = false;
            leaks.remove(this);
        }
        boolean busier = reported == SessionState.ACTIVE && state != SessionState.ACTIVE;
        state = reported;
        inTransaction = tx;
        timers.state(reported, now);
        if (busier && leaks.watching()) {
            checkAllBusy();
        }
    }

    /**
     * Another session of this client idles past its leak threshold: if this one just made every connection
     * of the client but that one busy, the client needs more connections than it uses.
     */
    private void checkAllBusy() {
        if (series.shared()) {
            return; // counted together with other clients: the counts say nothing about this one
        }
        int open = series.open();
        if (open >= 2 && series.active() >= open - 1) {
            leaks.pressure("all " + (open - 1) + " other connections of the same client were busy at once");
        }
    }

    @Override
    public void lostSync(String reason) {
        if (phase == Phase.CLOSED || state == SessionState.UNKNOWN) {
            return;
        }
        listener.meters().lostSync();
        log.at(Level.WARN).addKeyValue("reason", reason)
                .log("protocol tracker lost sync; relaying on without enforcing limits: {}", reason);
        if (phase == Phase.CONNECTED) {
            stateChanged(SessionState.UNKNOWN);
        } else {
            state = SessionState.UNKNOWN;
        }
    }

    @Override
    public void violation(String reason) {
        log.at(Level.INFO).addKeyValue("reason", "protocol_error").log("protocol violation: {}", reason);
        close(CloseReason.PROTOCOL_ERROR, new ProxyError(ProxyError.Kind.PROTOCOL_VIOLATION,
                "protocol violation: " + reason, ""));
    }

    @Override
    public void upstreamFailed(String reason) {
        if (phase == Phase.CLOSED) {
            return;
        }
        listener.meters().connectError();
        log.at(Level.WARN).addKeyValue("reason", "upstream").log("cannot use upstream {}: {}",
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

    @Override
    public Future<Channel> startUpstreamTls() {
        if (upstream == null) {
            return loop.newFailedFuture(new IllegalStateException("no upstream connection yet"));
        }
        upstream.flush();
        return UpstreamConnector.startTls(upstream, listener).addListener(done -> {
            if (!done.isSuccess()) {
                upstreamFailed(UpstreamConnector.describeTlsFailure(done.cause(), listener));
            } else if (phase == Phase.CONNECTED) {
                upstream.read();
            }
        });
    }

    @Override
    public Future<ClientTlsSession> startClientTls(ByteBuf alreadyRead) {
        ClientTlsContext tls = listener.clientTls();
        if (phase == Phase.CLOSED || clientTlsStarted || tls == null) {
            ReferenceCountUtil.release(alreadyRead);
            String why = clientTlsStarted ? "client TLS started twice"
                    : "listener " + listener.name() + " does not offer TLS to clients";
            if (phase != Phase.CLOSED) {
                log.at(Level.WARN).log("cannot start TLS with the client: {}", why);
                close(identity == null ? null : CloseReason.PROTOCOL_ERROR, null);
            }
            return loop.newFailedFuture(new IllegalStateException(why));
        }
        client.flush(); // the protocol's plaintext answer ('S') goes out before the handshake
        clientTlsStarted = true;
        clientTlsHandshaking = true;
        Promise<ClientTlsSession> result = loop.newPromise();
        SslHandler handler = ClientTlsLeg.start(client, tls, alreadyRead);
        handler.handshakeFuture().addListener(done -> {
            clientTlsHandshaking = false;
            listener.meters().clientTlsHandshake(done.isSuccess());
            if (done.isSuccess()) {
                ClientTlsSession agreed = ClientTlsLeg.describe(handler);
                log.debug("client TLS established: {}", agreed);
                result.trySuccess(agreed);
                return;
            }
            if (!(phase == Phase.CLOSED && done.cause() instanceof ClosedChannelException)) {
                // (else the session closed the connection itself, handshakeTimeout or a kill, and said why)
                log.at(Level.INFO).addKeyValue("reason", "client_tls")
                        .log("TLS handshake with the client failed: {}", ClientTlsLeg.describeFailure(done.cause()));
            }
            close(identity == null ? null : CloseReason.CLIENT, null);
            result.tryFailure(done.cause());
        });
        return result;
    }

    @Override
    public void clientTlsRefused(ClientIdentity who, String request) {
        listener.meters().clientTlsRefused();
        String client = describeForLog(who);
        if (listener.tlsMismatchLogged().first("tls " + request + " " + client)) {
            log.at(Level.WARN).addKeyValue("reason", "client_tls_refused").log("client {} asked for TLS ({}) but "
                    + "listener {} does not offer TLS to clients (clientTls.mode: disable); set clientTls.mode to "
                    + "allow or require on this listener, or connect without requiring TLS", client, request,
                    listener.name());
        }
    }

    @Override
    public void plaintextRefused(ClientIdentity who) {
        if (phase == Phase.CLOSED) {
            return;
        }
        listener.meters().clientPlaintextRefused();
        String client = describeForLog(who);
        if (listener.tlsMismatchLogged().first("plaintext " + client)) {
            log.at(Level.WARN).addKeyValue("reason", "client_plaintext_refused").log("client {} connected without "
                    + "TLS but listener {} requires it (clientTls.mode: require); refused", client, listener.name());
        }
        close(null, new ProxyError(ProxyError.Kind.TLS_REQUIRED, "connection without TLS refused: connguard listener "
                + listener.name() + " accepts only TLS connections (clientTls.mode: require)",
                "Connect with TLS (PostgreSQL sslmode=require, MySQL sslMode=REQUIRED)."));
    }

    /** The client key for a once-per-client log line, or its address before it is named. */
    private String describeForLog(ClientIdentity who) {
        if (who == null) {
            return "at " + address;
        }
        ClientPolicy policy = services.policy();
        return policy.key(listener.name(), who, address).describe(policy.identity());
    }

    @Override
    public Future<Channel> connectAside(InetSocketAddress target, ChannelHandler handler) {
        return UpstreamConnector.connectAside(loop, target, handler, listener, services);
    }

    @Override
    public void close() {
        close(CloseReason.CLIENT, null);
    }

    // ------------------------------------------------------------------ admission

    private void admit(ClientIdentity who) {
        identity = who;
        closing.cancelHandshakeTimer();
        ClientPolicy policy = services.policy();
        key = policy.key(listener.name(), who, address);
        limits = policy.limits(listener.name(), who, address);
        series = services.metrics().acquire(key);
        series.maxConnections(limits.maxConnections());
        if (!listener.clientConnections().open(key, limits.maxClientConnections())) {
            listener.admission().clientConnectionRefused(key);
            reject(Rejection.CLIENT_CONNECTIONS);
            return;
        }
        clientCounted = true;
        if (lease != null) {
            leaks = listener.admission().hold(key, limits); // between transactions the session holds no ticket
        }
        if (listener.pools() != null && borrowing.choosePool(who)) {
            return;
        }
        takeTicket();
    }

    /** Takes an admission ticket: a slot now, a place in the queue, or a rejection. */
    void takeTicket() {
        ticket = new Admission.Ticket(key, limits, loop, this);
        boolean early = reservation != null && upstream != null;
        Admission.Decision decision = early
                ? listener.admission().request(ticket, reservation, true) : listener.admission().request(ticket);
        leaks = ticket.leaks();
        switch (decision) {
            case ADMITTED -> {
                series.admission(Outcome.ADMITTED);
                if (early) {
                    adoptUpstream();
                    protocol.earlyUpstream(EarlyUpstream.KEPT);
                } else {
                    connect();
                }
            }
            case PROBATION -> {
                phase = Phase.PROBATION;
                series.admission(Outcome.PROBATION);
                closing.armHandshakeTimer(); // bounds the probation: then it waits for a slot like any other connection
                log.debug("over its cap: on probation without a client slot");
                protocol.earlyUpstream(EarlyUpstream.PROBATION);
            }
            case QUEUED -> {
                if (early) {
                    dropEarlyUpstream();
                }
                wait(true);
                log.debug("queued for a slot");
            }
            case PENDING -> {
                if (early) {
                    dropEarlyUpstream(); // a fleet lease is asked for: the early connection cannot wait for it
                }
                wait(false);
            }
            case REJECTED -> {
                if (early) {
                    dropEarlyUpstream();
                }
                reject(ticket.rejection());
            }
        }
    }

    /**
     * Waits for the grant. A PENDING request (a fleet lease being asked for) waits the same way but counts as
     * queued only once admission says the fleet's budget is used up ({@link #queued}). With a queueTimeout of 0
     * the store's own command timeout bounds a PENDING wait.
     */
    private void wait(boolean queued) {
        phase = Phase.QUEUED;
        queuedAt = System.nanoTime();
        if (queued) {
            queued();
        }
        if (queued || !limits.queueTimeout().isZero()) {
            queueTimer = loop.schedule(this::queueExpired, limits.queueTimeout().toNanos(), TimeUnit.NANOSECONDS);
        }
    }

    @Override
    public void queued() {
        if ((phase != Phase.QUEUED && (lease == null || !lease.queued())) || countedQueued) {
            return;
        }
        countedQueued = true;
        series.admission(Outcome.QUEUED);
        series.queuedDelta(1);
    }

    @Override
    public void requestSlot() {
        if (phase != Phase.PROBATION) {
            return;
        }
        closing.cancelHandshakeTimer();
        switch (listener.admission().requestAfterProbation(ticket)) {
            case ADMITTED -> {
                series.admission(Outcome.ADMITTED);
                adoptUpstream();
                protocol.slotGranted();
            }
            case QUEUED -> {
                wait(true);
                log.debug("queued for a slot after probation");
            }
            case REJECTED -> reject(ticket.rejection());
            case PROBATION, PENDING -> throw new IllegalStateException("not an answer after probation");
        }
    }

    @Override
    public boolean openUpstreamEarly() {
        if (phase != Phase.HANDSHAKE || identity != null || upstream != null || reservation != null
                || listener.earlyDropsInARow().get() >= MAX_EARLY_DROPS_IN_A_ROW) {
            return false;
        }
        Admission.Reservation held = listener.admission().reserve();
        if (held == null) {
            return false;
        }
        reservation = held;
        connectStartedAt = System.nanoTime();
        UpstreamConnector.connect(this, listener, services).addListener(done -> {
            if (!done.isSuccess()) {
                listener.admission().release(held);
                if (phase == Phase.HANDSHAKE) {
                    connectFailed(done.cause(), null);
                }
                return;
            }
            Channel channel = (Channel) done.getNow();
            channel.closeFuture().addListener(closed -> listener.admission().release(held));
            if (phase != Phase.HANDSHAKE || identity != null) {
                channel.close(); // the session ended (or went on without it) while it was opening
                return;
            }
            upstream = channel;
            upstream.read();
            try {
                protocol.onUpstreamConnected();
            } catch (RuntimeException e) {
                log.at(Level.WARN).setCause(e).log("protocol failed to open the upstream session");
                close(CloseReason.PROTOCOL_ERROR, null);
            }
        });
        return true;
    }

    /**
     * The client of an early upstream must wait or is refused: the connection, on which nothing was
     * authenticated, is closed and its bytes from now on discarded; its listener slot comes back when the
     * server has closed it.
     */
    private void dropEarlyUpstream() {
        Channel dropped = upstream;
        upstream = null;
        listener.earlyDropsInARow().incrementAndGet();
        DroppedUpstream.takeOver(dropped, listener.meters(), SessionClosing.GOODBYE_WAIT_MILLIS);
        protocol.earlyUpstream(EarlyUpstream.CLOSED);
    }

    // ------------------------------------------------------------------ pooled listeners (ServerBorrowing)

    @Override
    public void passwordGiven(char[] given) {
        borrowing.passwordGiven(given);
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

    @Override
    public void serverWanted() {
        if (lease == null || phase != Phase.CONNECTED || borrowing.lending() || !lease.idle()) {
            return;
        }
        lease.admission();
        ticket = new Admission.Ticket(key, limits, loop, this);
        Admission.Decision decision = listener.admission().request(ticket);
        switch (decision) {
            case ADMITTED -> {
                series.admission(Outcome.ADMITTED);
                borrowing.checkoutForLease();
            }
            case QUEUED, PENDING -> {
                lease.waiting();
                queuedAt = System.nanoTime();
                if (decision == Admission.Decision.QUEUED) {
                    queued();
                }
                if (decision == Admission.Decision.QUEUED || !limits.queueTimeout().isZero()) {
                    queueTimer = loop.schedule(this::queueExpired, limits.queueTimeout().toNanos(),
                            TimeUnit.NANOSECONDS);
                }
            }
            case REJECTED -> {
                lease.stopWaiting();
                reject(ticket.rejection());
            }
            case PROBATION -> throw new IllegalStateException("probation without an early upstream");
        }
    }

    // ------------------------------------------------------------------ Lessee (pooled listeners)

    @Override
    public void lent(ServerConnection connection) {
        borrowing.lent(connection);
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

    @Override
    public void admitted() {
        if (lease != null && lease.queued()) {
            cancel(queueTimer);
            leaveQueue(false);
            series.admission(Outcome.ADMITTED);
            borrowing.checkoutForLease();
            return;
        }
        if (phase != Phase.QUEUED) {
            return;
        }
        cancel(queueTimer);
        leaveQueue();
        series.admission(Outcome.ADMITTED);
        if (upstream != null) { // it waited after probation, on the upstream it authenticated on
            adoptUpstream();
            protocol.slotGranted();
        } else {
            connect();
        }
    }

    @Override
    public void rejected(Rejection why) {
        if (lease != null && lease.queued()) {
            cancel(queueTimer);
            leaveQueue(false);
            lease.stopWaiting();
            reject(why);
            return;
        }
        if (phase != Phase.QUEUED) {
            return;
        }
        cancel(queueTimer);
        leaveQueue();
        reject(why);
    }

    private void queueExpired() {
        Rejection why = listener.admission().expire(ticket);
        if (why != null && lease != null && lease.queued()) {
            leaveQueue(false);
            lease.stopWaiting();
            reject(why);
        } else if (why != null && phase == Phase.QUEUED) {
            leaveQueue();
            reject(why);
        }
    }

    private void leaveQueue() {
        leaveQueue(true);
    }

    private void leaveQueue(boolean handshake) {
        if (countedQueued) {
            countedQueued = false;
            series.queuedDelta(-1);
            series.queueWait(System.nanoTime() - queuedAt);
        }
        if (handshake) {
            phase = Phase.HANDSHAKE;
        }
    }

    private void reject(Rejection why) {
        Outcome outcome = switch (why) {
            case QUEUE_TIMEOUT -> Outcome.REJECTED_QUEUE_TIMEOUT;
            case QUEUE_FULL -> Outcome.REJECTED_QUEUE_FULL;
            case LISTENER_CAP -> Outcome.REJECTED_LISTENER_CAP;
            case DRAINING -> Outcome.REJECTED_DRAINING;
            case CLIENT_CONNECTIONS -> Outcome.REJECTED_CLIENT_CONNECTIONS;
        };
        series.admission(outcome);
        listener.meters().rejected(outcome);
        ProxyError error = Messages.rejection(why, this);
        log.at(Level.INFO).addKeyValue("reason", why.name().toLowerCase(java.util.Locale.ROOT))
                .log("connection rejected: {}", Messages.why(why, limits));
        close(null, error);
    }

    private void rekey(ClientIdentity who) {
        identity = who;
        applyPolicy();
        log.info("client identity changed; accounting moved to the new client");
    }

    /**
     * Re-reads the client key and the limits in force from the current policy (after a reload, which may
     * have changed {@code clients.identity} as well as limits). Call from any thread.
     */
    public void refresh() {
        loop.execute(() -> {
            if (identity == null || phase == Phase.CLOSED) {
                return;
            }
            ClientKey before = key;
            applyPolicy();
            if (!key.equals(before)) {
                log.info("client key changed with the reloaded clients.identity; accounting moved to the new client");
            }
        });
    }

    /**
     * Applies the policy in force to this session's identity: new limits, and when the key changed, its
     * admission slot (or place in the queue), metric series and leak candidacy move to the new key, so old
     * and new keys never each get a full cap.
     */
    private void applyPolicy() {
        ClientPolicy policy = services.policy();
        ClientKey newKey = policy.key(listener.name(), identity, address);
        Limits newLimits = policy.limits(listener.name(), identity, address);
        limits = newLimits;
        if (timers != null) {
            timers.limits(newLimits, System.nanoTime());
        }
        if (newKey.equals(key)) {
            if (ticket != null) {
                listener.admission().update(ticket, newLimits);
            }
        } else {
            if (ticket != null) {
                listener.admission().rekey(ticket, newKey, newLimits);
            }
            if (clientCounted) {
                listener.clientConnections().move(key, newKey);
            }
            ClientSeries next = services.metrics().acquire(newKey);
            if (counts != null) {
                counts.leave(state, inTransaction);
                counts = next.shard();
                counts.enter(state, inTransaction);
            }
            if ((phase == Phase.QUEUED || lease != null) && countedQueued) {
                series.queuedDelta(-1);
                next.queuedDelta(1);
            }
            if (leakSuspect) {
                series.leakSuspectDelta(-1);
                next.leakSuspectDelta(1);
            }
            services.metrics().release(series);
            series = next;
            ClientKey oldKey = key;
            key = newKey;
            LeakWatch before = leaks;
            if (lease != null && clientCounted) {
                leaks = listener.admission().hold(newKey, newLimits);
                listener.admission().unhold(oldKey);
            } else {
                leaks = ticket.leaks();
            }
            if (leakCandidate && leaks != before) {
                before.remove(this);
                String why = leaks.add(this, stateSince);
                if (why != null) {
                    leakCandidate = false;
                    suspect(why);
                }
            }
        }
        series.maxConnections(newLimits.maxConnections());
    }

    // ------------------------------------------------------------------ upstream

    private void connect() {
        long now = enterConnecting();
        connectStartedAt = now;
        if (borrowing.pooled()) {
            borrowing.checkout();
            return;
        }
        connecting = UpstreamConnector.connect(this, listener, services);
        connecting.addListener(done -> {
            connecting = null;
            Channel channel = (Channel) done.getNow();
            if (phase == Phase.CLOSED) {
                if (channel != null) {
                    // Closed while connecting: end this connection as any other, and only then give the slot back
                    // (releaseSlotWhenUpstreamCloses is waiting for it), so the database never sees cap + 1.
                    upstream = channel;
                    closing.sayGoodbye(null, false);
                }
                return;
            }
            if (!done.isSuccess()) {
                connectFailed(done.cause(), CloseReason.UPSTREAM);
                return;
            }
            upstream = channel;
            phase = Phase.CONNECTED;
            closing.armHandshakeTimer();
            upstream.read();
            try {
                protocol.onUpstreamConnected();
            } catch (RuntimeException e) {
                log.at(Level.WARN).setCause(e).log("protocol failed to open the upstream session");
                close(CloseReason.PROTOCOL_ERROR, null);
            }
        });
    }

    /** From admission on, the session counts in its client's connections and its timers run. */
    private long enterConnecting() {
        phase = Phase.CONNECTING;
        long now = System.nanoTime();
        stateSince = now;
        if (state != SessionState.UNKNOWN) {
            state = SessionState.ACTIVE; // the start-up is a request in flight until the first idle report
        }
        counts = series.shard();
        counts.enter(state, false);
        timers = new SessionTimers(System::nanoTime,
                (task, delay) -> {
                    ScheduledFuture<?> f = loop.schedule(task, delay, TimeUnit.NANOSECONDS);
                    return () -> f.cancel(false);
                },
                this, now, limits, identity.replication());
        return now;
    }

    /** Admitted on the upstream it already has (opened early, or authenticated on probation). */
    private void adoptUpstream() {
        closing.cancelHandshakeTimer();
        enterConnecting();
        phase = Phase.CONNECTED;
        closing.armHandshakeTimer();
    }

    private void connectFailed(Throwable cause, CloseReason reason) {
        listener.meters().connectError();
        String why = UpstreamConnector.describeConnectFailure(cause);
        log.at(Level.WARN).addKeyValue("reason", "upstream")
                .log("cannot connect to upstream {}: {}", listener.config().upstream(), why);
        close(reason, new ProxyError(ProxyError.Kind.UPSTREAM_UNAVAILABLE,
                "connguard could not connect to the database server " + listener.config().upstream() + ": " + why, ""));
    }

    RelayHandler upstreamHandler() {
        return new RelayHandler(this, false);
    }

    // ------------------------------------------------------------------ timers and kills (SessionClosing)

    @Override
    public void expired(SessionTimers.Expiry expiry) {
        closing.expired(expiry);
    }

    /** Ends the session as the admin API or a drain asks (reason ADMIN or SHUTDOWN). Call from any thread. */
    public void kill(CloseReason reason) {
        closing.kill(reason);
    }

    /** Ends the session once (see {@link SessionClosing#close}); {@code reason} null: never admitted. */
    void close(CloseReason reason, ProxyError error) {
        closing.close(reason, error);
    }

    @Override
    public void leakSuspected(long idleNanos) {
        if (phase != Phase.CONNECTED || leakSuspect || leakCandidate) {
            return;
        }
        String why = leaks.add(this, stateSince);
        if (why != null) {
            suspect(why);
        } else {
            leakCandidate = true;
            log.debug("idle beyond leakDetectionThreshold; a leak suspect if its client needs more connections");
        }
    }

    @Override
    public void underPressure(String why) {
        loop.execute(() -> {
            if (leakCandidate && phase == Phase.CONNECTED) {
                leakCandidate = false;
                leaks.remove(this);
                suspect(why);
            }
        });
    }

    /** Flags this idle session as a leak suspect, once per idle period, with the sign of need that made it one. */
    private void suspect(String why) {
        if (leakSuspect) {
            return;
        }
        leakSuspect = true;
        series.leakSuspectDelta(1);
        long now = System.nanoTime();
        // The session, address and client are the line's fields; the message does not repeat them.
        String idle = Durations.measured(now - stateSince);
        String age = Durations.measured(now - openedNanos);
        String last = lastStatement();
        String statement = last.isEmpty() ? "(none)" : last;
        log.at(Level.WARN).addKeyValue("reason", "leak_suspect")
                .addKeyValue("idle", idle)
                .addKeyValue("age", age)
                .addKeyValue("lastStatement", statement)
                .addKeyValue("evidence", why)
                .log("connection leak suspected: idle for {} (open {}) while {}; last statement: {}",
                        idle, age, why, statement);
    }

    // ------------------------------------------------------------------ closing

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
                address, state.label(), wallNow.minusNanos(now - stateSince), openedAt, inTransaction, leakSuspect,
                lastStatement(), bytesIn, bytesOut, key, borrowing.pooled(), borrowing.serverId(), pinReason());
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

    String address() {
        return address;
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
