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
import io.connguard.core.auth.PoolAuth;
import io.connguard.core.pool.Lessee;
import io.connguard.core.pool.ServerConnection;
import io.connguard.core.pool.ServerPool;
import io.connguard.core.server.Listener;
import io.connguard.core.timers.LeakWatch;
import io.connguard.core.timers.SessionTimers;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFuture;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandler;
import io.netty.channel.EventLoop;
import io.netty.channel.socket.DuplexChannel;
import io.netty.handler.ssl.SslHandler;
import io.netty.util.ReferenceCountUtil;
import io.netty.util.concurrent.Future;
import io.netty.util.concurrent.Promise;
import io.netty.util.concurrent.ScheduledFuture;
import org.slf4j.event.Level;

import java.net.InetSocketAddress;
import java.nio.channels.ClosedChannelException;
import java.time.Duration;
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
    private enum Phase { HANDSHAKE, QUEUED, CONNECTING, CONNECTED, PROBATION, CLOSED }

    /** How long a closing channel may take to flush what is queued to a peer that does not read. */
    private static final long CLOSE_LINGER_SECONDS = 10;
    /** How long a killed idle client's connection stays open to answer its next request with the error. */
    static final long ANSWER_LINGER_SECONDS = 300;
    /** How long the server may take to close the connection after Terminate / COM_QUIT. */
    static final long GOODBYE_WAIT_MILLIS = 2000;
    /**
     * Early upstreams a listener may close unauthenticated in a row before its sessions stop opening them
     * (until a session authenticates): a MySQL server blocks a host after max_connect_errors (default 100)
     * interrupted handshakes with no successful connection in between.
     */
    static final int MAX_EARLY_DROPS_IN_A_ROW = 10;

    private final long id;
    private final Listener listener;
    private final ProxyServices services;
    private final Channel client;
    private final EventLoop loop;
    private final InetSocketAddress clientAddress;
    private final String address;
    private final long openedNanos = System.nanoTime();
    private final Instant openedAt = Instant.now();
    private final SessionLogger log = new SessionLogger(this);

    private ProtocolSession protocol;
    private Phase phase = Phase.HANDSHAKE;
    private Channel upstream;
    private ClientIdentity identity;
    private ClientKey key;
    private Limits limits;
    private Admission.Ticket ticket;
    /** The listener slot of an upstream opened before identification (openUpstreamEarly), until admission. */
    private Admission.Reservation reservation;
    private ClientSeries series;
    private ClientSeries.Shard counts; // this loop's share of series' state counts, from connect() on
    private SessionTimers timers;
    private SessionState state = SessionState.ACTIVE;
    private long stateSince;
    private boolean inTransaction;
    private boolean authenticated;
    private boolean leakSuspect;
    /** Idle past leakDetectionThreshold and registered with {@link #leaks}, waiting for a sign of pressure. */
    private boolean leakCandidate;
    /** The leak watch of this session's client key (from its admission ticket). */
    private LeakWatch leaks;
    /** This connection counts against the key's maxClientConnections until it closes. */
    private boolean clientCounted;
    /** Pooled listeners: the client's pool, the server connection lent to it, the password it gave. */
    private ServerPool pool;
    private ServerConnection server;
    private char[] password;
    /** Pooled: the client's password must be verified by a server login of its own. */
    private boolean freshLogin;
    /** Pooled: asked the client for its password before admission. */
    private boolean awaitingPassword;
    /** Pooled: a fresh login paused until the client gives its password. */
    private ServerConnection loginWaiting;
    /** Pooled: the server's own refusal, sent to the client instead of a packet of connguard's. */
    private ByteBuf serverRefusal;
    /** Transaction mode: the lease of a server connection per transaction (null in other modes). */
    private final TransactionLease lease;
    private boolean reading;
    private boolean clientDirty;
    private boolean upstreamDirty;
    private long bytesIn;
    private long bytesOut;
    private long queuedAt;
    /** Whether this session counts in its client's queued gauge now (a PENDING wait does not, until queued). */
    private boolean countedQueued;
    private long connectStartedAt;
    /** The upstream connect in flight (CONNECTING), so that a session closed meanwhile can wait for its outcome. */
    private Future<Channel> connecting;
    private ScheduledFuture<?> handshakeTimer;
    private ScheduledFuture<?> queueTimer;
    private boolean clientTlsStarted;
    private boolean clientTlsHandshaking;
    /** After a kill: the error that answers the client's next request (see ProtocolSession#errorForNextRequest). */
    private ByteBuf pendingAnswer;

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
        armHandshakeTimer();
        client.read();
    }

    void upstreamActive() {
        listener.meters().upstreamOpened(System.nanoTime() - connectStartedAt);
    }

    void read(boolean fromClient, ByteBuf bytes) {
        if (phase == Phase.CLOSED) {
            bytes.release();
            if (fromClient && pendingAnswer != null) {
                ByteBuf answer = pendingAnswer;
                pendingAnswer = null;
                finish(client, answer);
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
            releaseServer(lease.takeReset());
        }
        if (phase == Phase.CLOSED) {
            if (fromClient && pendingAnswer != null) {
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
        } else if (pendingAnswer != null) {
            pendingAnswer.release();
            pendingAnswer = null;
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
            cancel(handshakeTimer);
            handshakeTimer = null; // not kept by every idle session
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
        cancel(handshakeTimer);
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
        if (listener.pools() != null) {
            pool = listener.pools().pool(who);
            if (pool.auth().askClient()) {
                awaitingPassword = true;
                armHandshakeTimer();
                protocol.requestPassword();
                return;
            }
            freshLogin = pool.auth().unknown();
        }
        takeTicket();
    }

    /** Takes an admission ticket: a slot now, a place in the queue, or a rejection. */
    private void takeTicket() {
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
                armHandshakeTimer(); // bounds the probation: then it waits for a slot like any other connection
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
        cancel(handshakeTimer);
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
        DroppedUpstream.takeOver(dropped, listener.meters(), GOODBYE_WAIT_MILLIS);
        protocol.earlyUpstream(EarlyUpstream.CLOSED);
    }

    @Override
    public void passwordGiven(char[] given) {
        if (phase == Phase.CLOSED) {
            java.util.Arrays.fill(given, '\0');
            return;
        }
        if (loginWaiting != null) {
            ServerConnection c = loginWaiting;
            loginWaiting = null;
            c.password(given);
            java.util.Arrays.fill(given, '\0');
            return;
        }
        if (!awaitingPassword) {
            java.util.Arrays.fill(given, '\0');
            return;
        }
        awaitingPassword = false;
        cancel(handshakeTimer);
        PoolAuth.Verdict verdict = pool.auth().check(given);
        if (verdict == PoolAuth.Verdict.REJECTED) {
            java.util.Arrays.fill(given, '\0');
            log.at(Level.INFO).addKeyValue("reason", "authentication").log("password refused (auth.usersFile)");
            close(null, new ProxyError(ProxyError.Kind.AUTHENTICATION_FAILED,
                    "password authentication failed for user \"" + identity.user() + "\"", ""));
            return;
        }
        password = given;
        freshLogin = verdict == PoolAuth.Verdict.VERIFY_WITH_SERVER;
        takeTicket();
    }

    @Override
    public void passwordProven() {
        if (phase == Phase.CLOSED || !awaitingPassword) {
            return;
        }
        awaitingPassword = false;
        cancel(handshakeTimer);
        freshLogin = false;
        takeTicket();
    }

    // ------------------------------------------------------------------ transaction mode

    @Override
    public boolean transactionPooled() {
        return lease != null;
    }

    @Override
    public void serverWanted() {
        if (lease == null || phase != Phase.CONNECTED || server != null || !lease.idle()) {
            return;
        }
        lease.admission();
        ticket = new Admission.Ticket(key, limits, loop, this);
        Admission.Decision decision = listener.admission().request(ticket);
        switch (decision) {
            case ADMITTED -> {
                series.admission(Outcome.ADMITTED);
                checkoutForLease();
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

    private void checkoutForLease() {
        lease.checkout();
        pool.checkout(this, identity, lease.password(), false, limits.queueTimeout().toNanos());
    }

    /** A server connection lent for the client's next transaction; the client's held bytes may go. */
    private void lendNow(ServerConnection connection) {
        server = connection;
        upstream = connection.channel();
        try {
            protocol.onServerLent(connection.protocol());
        } catch (RuntimeException e) {
            log.at(Level.WARN).setCause(e).log("protocol failed to take the server connection");
            close(CloseReason.PROTOCOL_ERROR, null);
            return;
        }
        flushDirty();
        if (phase == Phase.CONNECTED) {
            if (upstream != null && client.isWritable()) {
                upstream.read();
            }
            client.read();
        }
    }

    @Override
    public void serverIdle(boolean reset) {
        if (lease == null || server == null || phase != Phase.CONNECTED) {
            return;
        }
        if (reading) {
            lease.releaseLater(reset); // given back once this read batch is flushed
        } else {
            releaseServer(reset);
        }
    }

    /** Gives the server connection back to the pool (reset first when asked) and the ticket to admission. */
    private void releaseServer(boolean reset) {
        if (server == null) {
            return;
        }
        flushDirty();
        ServerConnection c = server;
        server = null;
        upstream = null;
        pool.giveBack(c, true, reset);
        Admission.Ticket held = ticket;
        ticket = null;
        if (held != null) {
            listener.admission().release(held);
        }
    }

    @Override
    public void pinned(String reason) {
        if (series != null) {
            series.pinned(reason);
        }
        if (server != null) {
            pool.pinned(server, pinReason());
        }
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
        if (lease != null && phase == Phase.CONNECTED && server == null && lease.lent()) {
            lendNow(connection);
            return;
        }
        if (phase != Phase.CONNECTING) {
            pool.giveBack(connection, phase != Phase.CLOSED);
            return;
        }
        server = connection;
        upstream = connection.channel();
        phase = Phase.CONNECTED;
        armHandshakeTimer();
        try {
            protocol.onServerLent(connection.protocol());
        } catch (RuntimeException e) {
            log.at(Level.WARN).setCause(e).log("protocol failed to take the server connection");
            close(CloseReason.PROTOCOL_ERROR, null);
            return;
        }
        flushDirty();
        if (upstream != null && client.isWritable()) {
            upstream.read();
        }
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
        if (phase == Phase.CLOSED) {
            return;
        }
        loginWaiting = connection;
        protocol.requestPassword();
    }

    @Override
    public void refused(ByteBuf clientError, String reason) {
        loginWaiting = null;
        if (phase == Phase.CLOSED) {
            ReferenceCountUtil.release(clientError);
            return;
        }
        serverRefusal = clientError;
        log.at(Level.INFO).addKeyValue("reason", "authentication").log("the database refused the login: {}", reason);
        close(CloseReason.UPSTREAM, new ProxyError(ProxyError.Kind.AUTHENTICATION_FAILED, reason, ""));
    }

    @Override
    public void unavailable(String reason, boolean poolFull) {
        loginWaiting = null;
        if (phase == Phase.CLOSED) {
            return;
        }
        log.at(poolFull ? Level.INFO : Level.WARN).addKeyValue("reason", poolFull ? "pool_full" : "upstream")
                .log("no server connection: {}", reason);
        close(CloseReason.UPSTREAM, poolFull
                ? new ProxyError(ProxyError.Kind.TOO_MANY_CONNECTIONS, "too many connections for client "
                + describeClient(), "connguard: " + reason, perUser())
                : new ProxyError(ProxyError.Kind.UPSTREAM_UNAVAILABLE, "connguard " + reason, ""));
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
        server = null;
        upstream = null;
        close(CloseReason.UPSTREAM, null);
    }

    @Override
    public void admitted() {
        if (lease != null && lease.queued()) {
            cancel(queueTimer);
            leaveQueue(false);
            series.admission(Outcome.ADMITTED);
            checkoutForLease();
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
        if (pool != null) {
            char[] given = password;
            password = null;
            if (lease != null) {
                lease.keepPassword(given);
            }
            pool.checkout(this, identity, given, freshLogin, limits.queueTimeout().toNanos());
            if (given != null) {
                java.util.Arrays.fill(given, '\0');
            }
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
                    sayGoodbye(null, false);
                }
                return;
            }
            if (!done.isSuccess()) {
                connectFailed(done.cause(), CloseReason.UPSTREAM);
                return;
            }
            upstream = channel;
            phase = Phase.CONNECTED;
            armHandshakeTimer();
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
        cancel(handshakeTimer);
        enterConnecting();
        phase = Phase.CONNECTED;
        armHandshakeTimer();
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

    // ------------------------------------------------------------------ timers

    private void armHandshakeTimer() {
        long timeout = listener.config().handshakeTimeout().toNanos();
        if (timeout == 0) {
            return; // handshakeTimeout: 0 turns the timer off, as 0 does for every timer
        }
        handshakeTimer = loop.schedule(this::handshakeExpired, timeout, TimeUnit.NANOSECONDS);
    }

    private void handshakeExpired() {
        if (phase == Phase.PROBATION) {
            requestSlot(); // probation is for a cancel that comes at once; a connection that lingers waits its turn
            return;
        }
        if (phase == Phase.CLOSED || authenticated || phase == Phase.QUEUED) {
            return;
        }
        Duration timeout = listener.config().handshakeTimeout();
        log.at(Level.INFO).addKeyValue("reason", "handshake_timeout")
                .log("handshake not finished within handshakeTimeout {}", Messages.duration(timeout));
        close(identity == null ? null : CloseReason.CLIENT, new ProxyError(ProxyError.Kind.PROTOCOL_VIOLATION,
                "handshake not completed within the proxy's handshakeTimeout", "connguard: listener "
                + listener.name() + " handshakeTimeout " + Messages.duration(timeout)));
    }

    @Override
    public void expired(SessionTimers.Expiry expiry) {
        CloseReason reason = switch (expiry) {
            case IDLE_IN_TRANSACTION -> CloseReason.IDLE_IN_TRANSACTION;
            case IDLE -> CloseReason.IDLE;
            case LIFETIME -> CloseReason.LIFETIME;
        };
        ProxyError error = Messages.expiry(expiry, this);
        log.at(Level.WARN).addKeyValue("reason", reason.tag()).addKeyValue("lastStatement", lastStatement())
                .log("session killed: {}", Messages.why(expiry, limits));
        close(reason, error);
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

    /** Ends the session as the admin API or a drain asks (reason ADMIN or SHUTDOWN). Call from any thread. */
    public void kill(CloseReason reason) {
        loop.execute(() -> {
            if (phase == Phase.CLOSED) {
                return;
            }
            ProxyError error = reason == CloseReason.SHUTDOWN
                    ? new ProxyError(ProxyError.Kind.SHUTDOWN, "terminating connection due to administrator command",
                    "connguard is shutting down and its drainTimeout has passed")
                    : new ProxyError(ProxyError.Kind.ADMIN_KILL, "terminating connection due to administrator command",
                    "connguard: session " + id + " was killed through the admin API");
            log.at(Level.INFO).addKeyValue("reason", reason.tag()).addKeyValue("lastStatement", lastStatement())
                    .log("session killed: {}", reason == CloseReason.SHUTDOWN ? "drainTimeout passed"
                            : "killed through the admin API");
            close(identity == null ? null : reason, error);
        });
    }

    // ------------------------------------------------------------------ closing

    /**
     * Ends the session once: gives the permit back, settles the metrics, tells the client why (when
     * {@code error} is set and the protocol can), says goodbye upstream, and closes both channels after
     * flushing what was queued. {@code reason} null: the session was never admitted, nothing is counted.
     */
    private void close(CloseReason reason, ProxyError error) {
        if (phase == Phase.CLOSED) {
            return;
        }
        Phase was = phase;
        phase = Phase.CLOSED;
        cancel(handshakeTimer);
        cancel(queueTimer);
        if (timers != null) {
            timers.stop();
        }
        if (pool != null) {
            giveServerBack(was);
        }
        releaseSlotWhenUpstreamCloses();
        if (clientCounted) {
            clientCounted = false;
            listener.clientConnections().close(key);
            if (lease != null) {
                listener.admission().unhold(key);
            }
        }
        if (series != null) {
            if ((was == Phase.QUEUED || lease != null) && countedQueued) {
                countedQueued = false;
                series.queuedDelta(-1);
                series.queueWait(System.nanoTime() - queuedAt);
            }
            if (was == Phase.CONNECTING || was == Phase.CONNECTED) {
                counts.leave(state, inTransaction);
                if (leakSuspect) {
                    series.leakSuspectDelta(-1);
                }
                if (leakCandidate) {
                    leakCandidate = false;
                    leaks.remove(this);
                }
                if (reason != null) {
                    series.closed(reason);
                }
            }
            services.metrics().release(series);
        }
        ByteBuf packet = null;
        ByteBuf goodbye = null;
        ByteBuf answer = null;
        boolean clientSaidGoodbye = false;
        if (protocol != null) {
            try {
                if (serverRefusal != null) {
                    packet = serverRefusal;
                    serverRefusal = null;
                } else if (error != null && client.isActive() && !clientTlsHandshaking) {
                    packet = protocol.clientError(error);
                    if (packet != null) {
                        answer = protocol.errorForNextRequest(error);
                    }
                }
                if (upstream != null && upstream.isActive() && reason != CloseReason.UPSTREAM) {
                    goodbye = protocol.upstreamGoodbye();
                    clientSaidGoodbye = goodbye == null && protocol.clientSaidGoodbye();
                }
            } catch (RuntimeException e) {
                log.at(Level.WARN).setCause(e).log("protocol failed to write its closing packets");
            }
            try {
                protocol.close();
            } catch (RuntimeException e) {
                log.at(Level.WARN).setCause(e).log("protocol failed to release its buffers");
            }
        }
        if (answer != null) {
            lingerForNextRequest(packet, answer);
        } else {
            finish(client, packet);
        }
        if (upstream != null) {
            sayGoodbye(goodbye, clientSaidGoodbye);
        }
        services.registry().remove(this);
        if (reason == CloseReason.CLIENT || reason == CloseReason.UPSTREAM) {
            log.debug("session closed by the {}", reason.tag());
        }
    }

    /**
     * Pooled listeners: the lent server connection goes back to its pool, to be reset and lent again when
     * the client left it idle at a clean boundary, else closed (the database rolls back what was open).
     * The admission slot is then given back at once: the connection is the pool's again.
     */
    private void giveServerBack(Phase was) {
        if (password != null) {
            java.util.Arrays.fill(password, '\0');
            password = null;
        }
        loginWaiting = null;
        if (lease != null) {
            lease.close();
        }
        if (server == null) {
            if (was == Phase.CONNECTING || lease != null) {
                pool.cancel(this);
            }
            return;
        }
        boolean reusable = was == Phase.CONNECTED && state == SessionState.IDLE && !inTransaction;
        try {
            reusable = reusable && protocol.serverReusable();
        } catch (RuntimeException e) {
            reusable = false;
        }
        ServerConnection c = server;
        server = null;
        upstream = null;
        log.debug("server connection {} given back ({})", c.id(), reusable ? "reusable" : "closed: state " + state.label());
        if (lease != null) {
            boolean reset;
            try {
                reset = protocol.serverNeedsReset();
            } catch (RuntimeException e) {
                reset = true;
            }
            pool.giveBack(c, reusable, reset);
        } else {
            pool.giveBack(c, reusable);
        }
    }

    /**
     * Gives the admission slot back once the upstream connection is closed, not before: the cap guards
     * the database's own connection count, and a backend that is still exiting counts there.
     */
    private void releaseSlotWhenUpstreamCloses() {
        if (ticket == null) {
            return;
        }
        Admission.Ticket held = ticket;
        Admission admission = listener.admission();
        if (upstream != null && upstream.isOpen()) {
            upstream.closeFuture().addListener(closed -> admission.release(held));
        } else if (upstream == null && connecting != null) {
            // The connect may still succeed: the slot is the database's until that connection is closed too.
            connecting.addListener(done -> {
                Channel opened = (Channel) done.getNow();
                if (done.isSuccess() && opened != null && opened.isOpen()) {
                    opened.closeFuture().addListener(closed -> admission.release(held));
                } else {
                    admission.release(held);
                }
            });
        } else {
            admission.release(held);
        }
    }

    /**
     * Ends the upstream politely: sends Terminate / COM_QUIT and waits, reading, for the server to close
     * the connection (it does once the session is gone on its side), at most {@link #GOODBYE_WAIT_MILLIS}.
     * When the client has already sent its own, relayed, the proxy flushes and waits the same way. When it
     * stopped mid-message (no goodbye can be added) the proxy ends its half of the stream once what is
     * queued is written, and waits. Closing at once would give the admission slot back while the server's
     * session is still exiting, and a queued client admitted into that slot would have the database see one
     * connection more than the cap.
     */
    private void sayGoodbye(ByteBuf goodbye, boolean clientSaidGoodbye) {
        if (!upstream.isActive()) {
            finish(upstream, goodbye);
            return;
        }
        Channel channel = upstream;
        if (goodbye != null) {
            channel.writeAndFlush(goodbye);
        } else if (clientSaidGoodbye) {
            channel.flush();
        } else {
            channel.writeAndFlush(Unpooled.EMPTY_BUFFER).addListener(written -> {
                if (channel instanceof DuplexChannel duplex && channel.isActive()) {
                    duplex.shutdownOutput();
                } else {
                    channel.close();
                }
            });
        }
        channel.read();
        loop.schedule(() -> channel.close(), GOODBYE_WAIT_MILLIS, TimeUnit.MILLISECONDS);
    }

    /**
     * Sends the error now and keeps the client connection open, reading, so that its next request can be
     * answered with {@code answer}; closes after {@link #ANSWER_LINGER_SECONDS} if none comes.
     */
    private void lingerForNextRequest(ByteBuf packet, ByteBuf answer) {
        pendingAnswer = answer;
        client.writeAndFlush(packet);
        client.read();
        loop.schedule(() -> {
            if (pendingAnswer != null) {
                pendingAnswer.release();
                pendingAnswer = null;
                client.close();
            }
        }, ANSWER_LINGER_SECONDS, TimeUnit.SECONDS);
    }

    /** Writes the last packet (if any), flushes, and closes; a peer that will not read is cut after a linger. */
    private void finish(Channel channel, ByteBuf last) {
        if (!channel.isActive()) {
            ReferenceCountUtil.release(last);
            channel.close();
            return;
        }
        ChannelFuture written = channel.writeAndFlush(last != null ? last : Unpooled.EMPTY_BUFFER);
        written.addListener(ChannelFutureListener.CLOSE);
        if (!written.isDone()) {
            loop.schedule(() -> channel.close(), CLOSE_LINGER_SECONDS, TimeUnit.SECONDS);
        }
    }

    private void flushDirty() {
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

    private static void cancel(ScheduledFuture<?> timer) {
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
                lastStatement(), bytesIn, bytesOut, key, pool != null, server == null ? null : server.id(), pinReason());
    }

    private String pinReason() {
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
