package io.connguard.core.session;

import io.connguard.core.admission.Admission;
import io.connguard.core.admission.Admission.Rejection;
import io.connguard.core.admission.ClientPolicy;
import io.connguard.core.api.ClientIdentity;
import io.connguard.core.api.EarlyUpstream;
import io.connguard.core.api.ProxyError;
import io.connguard.core.api.SessionState;
import io.connguard.core.metrics.CloseReason;
import io.connguard.core.metrics.Outcome;
import io.connguard.core.session.Session.Phase;
import io.netty.channel.Channel;
import io.netty.util.concurrent.Future;
import io.netty.util.concurrent.ScheduledFuture;
import org.slf4j.event.Level;

import java.util.concurrent.TimeUnit;

/**
 * How a {@link Session} gets its admission slot and its upstream: the client key and limits on
 * identification, maxClientConnections, the ticket (a slot now, a place in the FIFO queue, PENDING on a
 * fleet lease, probation, or a rejection), the queue wait and its timeout, the upstream opened early
 * (MySQL) on a listener reservation and kept, put on probation or dropped, and the connect that follows a
 * grant (HANDSHAKE → QUEUED / PROBATION → CONNECTING → CONNECTED). In transaction mode it also admits each
 * transaction ({@link #serverWanted}).
 *
 * <p>Owns the reservation, the queue timer and queued-gauge bookkeeping, the client-connection count and
 * the upstream connect in flight; the ticket itself is the session's (closing and the pool give it back).
 * Runs on the session's event loop; admission's grant arrives there through the session (the
 * {@code Grantee}).
 */
final class SessionAdmission {

    /**
     * Early upstreams a listener may close unauthenticated in a row before its sessions stop opening them
     * (until a session authenticates): a MySQL server blocks a host after max_connect_errors (default 100)
     * interrupted handshakes with no successful connection in between.
     */
    static final int MAX_EARLY_DROPS_IN_A_ROW = 10;

    private final Session s;
    /** The listener slot of an upstream opened before identification (openUpstreamEarly), until admission. */
    private Admission.Reservation reservation;
    /** This connection counts against the key's maxClientConnections until it closes. */
    private boolean clientCounted;
    private long queuedAt;
    /** Whether this session counts in its client's queued gauge now (a PENDING wait does not, until queued). */
    private boolean countedQueued;
    private ScheduledFuture<?> queueTimer;
    private long connectStartedAt;
    /** The upstream connect in flight (CONNECTING), so that a session closed meanwhile can wait for its outcome. */
    private Future<Channel> connecting;

    SessionAdmission(Session session) {
        this.s = session;
    }

    // ------------------------------------------------------------------ on identification

    /** The client named itself: its key, limits and series, maxClientConnections, then a ticket. */
    void admit(ClientIdentity who) {
        s.identity = who;
        s.cancelHandshakeTimer();
        ClientPolicy policy = s.services.policy();
        String address = policy.usesAddress() ? s.address() : ""; // formatting it costs, at every connect
        s.key = policy.key(s.listener.name(), who, address);
        s.limits = policy.limits(s.listener.name(), who, address);
        s.series = s.services.metrics().acquire(s.key);
        s.series.maxConnections(s.limits.maxConnections());
        if (!s.listener.clientConnections().open(s.key, s.limits.maxClientConnections())) {
            s.listener.admission().clientConnectionRefused(s.key);
            reject(Rejection.CLIENT_CONNECTIONS);
            return;
        }
        clientCounted = true;
        if (s.lease != null) {
            // between transactions the session holds no ticket
            s.accounting.watchLeaks(s.listener.admission().hold(s.key, s.limits));
        }
        if (s.listener.pools() != null && s.borrowing.choosePool(who)) {
            return;
        }
        takeTicket();
    }

    /** Takes an admission ticket: a slot now, a place in the queue, or a rejection. */
    void takeTicket() {
        s.ticket = new Admission.Ticket(s.key, s.limits, s.loop(), s);
        boolean early = reservation != null && s.upstream != null;
        Admission.Decision decision = early
                ? s.listener.admission().request(s.ticket, reservation, true)
                : s.listener.admission().request(s.ticket);
        s.accounting.watchLeaks(s.ticket.leaks());
        switch (decision) {
            case ADMITTED -> {
                s.series.admission(Outcome.ADMITTED);
                if (early) {
                    adoptUpstream();
                    s.protocol.earlyUpstream(EarlyUpstream.KEPT);
                } else {
                    connect();
                }
            }
            case PROBATION -> {
                s.phase = Phase.PROBATION;
                s.series.admission(Outcome.PROBATION);
                // bounds the probation: then it waits for a slot like any other connection
                s.closing().armHandshakeTimer();
                s.debug("over its cap: on probation without a client slot");
                s.protocol.earlyUpstream(EarlyUpstream.PROBATION);
            }
            case QUEUED -> {
                if (early) {
                    dropEarlyUpstream();
                }
                wait(true);
                s.debug("queued for a slot");
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
                reject(s.ticket.rejection());
            }
        }
    }

    /**
     * Waits for the grant. A PENDING request (a fleet lease being asked for) waits the same way but counts as
     * queued only once admission says the fleet's budget is used up ({@link #queued}). With a queueTimeout of 0
     * the store's own command timeout bounds a PENDING wait.
     */
    private void wait(boolean queued) {
        s.phase = Phase.QUEUED;
        queuedAt = System.nanoTime();
        if (queued) {
            queued();
        }
        if (queued || !s.limits.queueTimeout().isZero()) {
            queueTimer = s.loop().schedule(this::queueExpired, s.limits.queueTimeout().toNanos(), TimeUnit.NANOSECONDS);
        }
    }

    /** Admission says this wait now counts as queued (Grantee#queued): into the client's queued gauge. */
    void queued() {
        if ((s.phase != Phase.QUEUED && (s.lease == null || !s.lease.queued())) || countedQueued) {
            return;
        }
        countedQueued = true;
        s.series.admission(Outcome.QUEUED);
        s.series.queuedDelta(1);
    }

    // ------------------------------------------------------------------ probation and the early upstream

    /** A session on probation asks for its slot after all (SessionContext#requestSlot). */
    void requestSlot() {
        if (s.phase != Phase.PROBATION) {
            return;
        }
        s.cancelHandshakeTimer();
        switch (s.listener.admission().requestAfterProbation(s.ticket)) {
            case ADMITTED -> {
                s.series.admission(Outcome.ADMITTED);
                adoptUpstream();
                s.protocol.slotGranted();
            }
            case QUEUED -> {
                wait(true);
                s.debug("queued for a slot after probation");
            }
            case REJECTED -> reject(s.ticket.rejection());
            case PROBATION, PENDING -> throw new IllegalStateException("not an answer after probation");
        }
    }

    /** Opens the upstream before the client is identified, on a listener reservation (MySQL); false if not. */
    boolean openUpstreamEarly() {
        if (s.phase != Phase.HANDSHAKE || s.identity != null || s.upstream != null || reservation != null
                || s.listener.earlyDropsInARow().get() >= MAX_EARLY_DROPS_IN_A_ROW) {
            return false;
        }
        Admission.Reservation held = s.listener.admission().reserve();
        if (held == null) {
            return false;
        }
        reservation = held;
        connectStartedAt = System.nanoTime();
        UpstreamConnector.connect(s, s.listener, s.services).addListener(done -> {
            if (!done.isSuccess()) {
                s.listener.admission().release(held);
                if (s.phase == Phase.HANDSHAKE) {
                    connectFailed(done.cause(), null);
                }
                return;
            }
            Channel channel = (Channel) done.getNow();
            channel.closeFuture().addListener(closed -> s.listener.admission().release(held));
            if (s.phase != Phase.HANDSHAKE || s.identity != null) {
                channel.close(); // the session ended (or went on without it) while it was opening
                return;
            }
            s.upstream = channel;
            s.upstream.read();
            try {
                s.protocol.onUpstreamConnected();
            } catch (RuntimeException e) {
                s.log().at(Level.WARN).setCause(e).log("protocol failed to open the upstream session");
                s.close(CloseReason.PROTOCOL_ERROR, null);
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
        Channel dropped = s.upstream;
        s.upstream = null;
        s.listener.earlyDropsInARow().incrementAndGet();
        DroppedUpstream.takeOver(dropped, s.listener.meters(), SessionClosing.GOODBYE_WAIT_MILLIS);
        s.protocol.earlyUpstream(EarlyUpstream.CLOSED);
    }

    // ------------------------------------------------------------------ transaction mode

    /** Transaction mode: the client starts a transaction between leases; admits it for a server connection. */
    void serverWanted() {
        if (s.lease == null || s.phase != Phase.CONNECTED || s.borrowing.lending() || !s.lease.idle()) {
            return;
        }
        s.lease.admission();
        s.ticket = new Admission.Ticket(s.key, s.limits, s.loop(), s);
        Admission.Decision decision = s.listener.admission().request(s.ticket);
        switch (decision) {
            case ADMITTED -> {
                s.series.admission(Outcome.ADMITTED);
                s.borrowing.checkoutForLease();
            }
            case QUEUED, PENDING -> {
                s.lease.waiting();
                queuedAt = System.nanoTime();
                if (decision == Admission.Decision.QUEUED) {
                    queued();
                }
                if (decision == Admission.Decision.QUEUED || !s.limits.queueTimeout().isZero()) {
                    queueTimer = s.loop().schedule(this::queueExpired, s.limits.queueTimeout().toNanos(),
                            TimeUnit.NANOSECONDS);
                }
            }
            case REJECTED -> {
                s.lease.stopWaiting();
                reject(s.ticket.rejection());
            }
            case PROBATION -> throw new IllegalStateException("probation without an early upstream");
        }
    }

    // ------------------------------------------------------------------ the grant

    /** Admission granted the slot this session waited for (Grantee#admitted). */
    void admitted() {
        if (s.lease != null && s.lease.queued()) {
            Session.cancel(queueTimer);
            leaveQueue(false);
            s.series.admission(Outcome.ADMITTED);
            s.borrowing.checkoutForLease();
            return;
        }
        if (s.phase != Phase.QUEUED) {
            return;
        }
        Session.cancel(queueTimer);
        leaveQueue();
        s.series.admission(Outcome.ADMITTED);
        if (s.upstream != null) { // it waited after probation, on the upstream it authenticated on
            adoptUpstream();
            s.protocol.slotGranted();
        } else {
            connect();
        }
    }

    /** Admission refused the slot this session waited for (Grantee#rejected). */
    void rejected(Rejection why) {
        if (s.lease != null && s.lease.queued()) {
            Session.cancel(queueTimer);
            leaveQueue(false);
            s.lease.stopWaiting();
            reject(why);
            return;
        }
        if (s.phase != Phase.QUEUED) {
            return;
        }
        Session.cancel(queueTimer);
        leaveQueue();
        reject(why);
    }

    private void queueExpired() {
        Rejection why = s.listener.admission().expire(s.ticket);
        if (why != null && s.lease != null && s.lease.queued()) {
            leaveQueue(false);
            s.lease.stopWaiting();
            reject(why);
        } else if (why != null && s.phase == Phase.QUEUED) {
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
            s.series.queuedDelta(-1);
            s.series.queueWait(System.nanoTime() - queuedAt);
        }
        if (handshake) {
            s.phase = Phase.HANDSHAKE;
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
        s.series.admission(outcome);
        s.listener.meters().rejected(outcome);
        ProxyError error = Messages.rejection(why, s);
        s.log().at(Level.INFO).addKeyValue("reason", why.name().toLowerCase(java.util.Locale.ROOT))
                .log("connection rejected: {}", Messages.why(why, s.limits));
        s.close(null, error);
    }

    // ------------------------------------------------------------------ the upstream

    /** Granted: opens the upstream (or asks the pool for a server connection) and goes CONNECTING. */
    private void connect() {
        long now = enterConnecting();
        connectStartedAt = now;
        if (s.borrowing.pooled()) {
            s.borrowing.checkout();
            return;
        }
        connecting = UpstreamConnector.connect(s, s.listener, s.services);
        connecting.addListener(done -> {
            connecting = null;
            Channel channel = (Channel) done.getNow();
            if (s.phase == Phase.CLOSED) {
                if (channel != null) {
                    // Closed while connecting: end this connection as any other, and only then give the slot back
                    // (releaseSlotWhenUpstreamCloses is waiting for it), so the database never sees cap + 1.
                    s.upstream = channel;
                    s.closing().sayGoodbye(null, false);
                }
                return;
            }
            if (!done.isSuccess()) {
                connectFailed(done.cause(), CloseReason.UPSTREAM);
                return;
            }
            s.upstream = channel;
            s.phase = Phase.CONNECTED;
            s.closing().armHandshakeTimer();
            s.upstream.read();
            try {
                s.protocol.onUpstreamConnected();
            } catch (RuntimeException e) {
                s.log().at(Level.WARN).setCause(e).log("protocol failed to open the upstream session");
                s.close(CloseReason.PROTOCOL_ERROR, null);
            }
        });
    }

    /** From admission on, the session counts in its client's connections and its timers run. */
    private long enterConnecting() {
        s.phase = Phase.CONNECTING;
        long now = System.nanoTime();
        s.stateSince = now;
        if (s.state != SessionState.UNKNOWN) {
            s.state = SessionState.ACTIVE; // the start-up is a request in flight until the first idle report
        }
        s.accounting.startCounting(now);
        return now;
    }

    /** Admitted on the upstream it already has (opened early, or authenticated on probation). */
    private void adoptUpstream() {
        s.cancelHandshakeTimer();
        enterConnecting();
        s.phase = Phase.CONNECTED;
        s.closing().armHandshakeTimer();
    }

    private void connectFailed(Throwable cause, CloseReason reason) {
        s.listener.meters().connectError();
        String why = UpstreamConnector.describeConnectFailure(cause);
        s.log().at(Level.WARN).addKeyValue("reason", "upstream")
                .log("cannot connect to upstream {}: {}", s.listener.config().upstream(), why);
        s.close(reason, new ProxyError(ProxyError.Kind.UPSTREAM_UNAVAILABLE,
                "connguard could not connect to the database server " + s.listener.config().upstream() + ": " + why,
                ""));
    }

    // ------------------------------------------------------------------ for the rest of the session

    /** When the last upstream connect started, for the connect-time metric. */
    long connectStartedAt() {
        return connectStartedAt;
    }

    /** The upstream connect in flight, or null. */
    Future<Channel> connecting() {
        return connecting;
    }

    /** Whether this connection counts against its key's maxClientConnections. */
    boolean clientCounted() {
        return clientCounted;
    }

    /** Whether this session counts in its client's queued gauge now. */
    boolean countedQueued() {
        return countedQueued;
    }

    /** The session closes: no queue timeout any more. */
    void stopQueueTimer() {
        Session.cancel(queueTimer);
    }

    /** The session closes: it no longer counts against its key's maxClientConnections (nor holds its key). */
    void uncountClient() {
        if (clientCounted) {
            clientCounted = false;
            s.listener.clientConnections().close(s.key);
            if (s.lease != null) {
                s.listener.admission().unhold(s.key);
            }
        }
    }

    /** The session closes while waiting ({@code was} its phase then): it leaves its client's queued gauge. */
    void leaveQueueOnClose(Phase was) {
        if ((was == Phase.QUEUED || s.lease != null) && countedQueued) {
            countedQueued = false;
            s.series.queuedDelta(-1);
            s.series.queueWait(System.nanoTime() - queuedAt);
        }
    }
}
