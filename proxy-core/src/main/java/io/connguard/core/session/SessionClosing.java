package io.connguard.core.session;

import io.connguard.core.admission.Admission;
import io.connguard.core.api.ProxyError;
import io.connguard.core.metrics.CloseReason;
import io.connguard.core.session.Session.Phase;
import io.connguard.core.timers.SessionTimers;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFuture;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.socket.DuplexChannel;
import io.netty.util.ReferenceCountUtil;
import io.netty.util.concurrent.ScheduledFuture;
import org.slf4j.event.Level;

import java.time.Duration;
import java.util.concurrent.TimeUnit;

/**
 * How a {@link Session} ends: the handshake timer, the kills (a session timer's expiry, the admin API, a
 * drain), and the one close that gives the admission slot back, settles the metrics, tells the client why,
 * says goodbye upstream and closes both channels; and, after a kill of an idle client, the linger that
 * answers its next request with the error.
 *
 * <p>Owns the handshake timer and the pending answer; everything else it reads and settles is the
 * session's. Runs on the session's event loop ({@link Session#kill} hops onto it).
 */
final class SessionClosing {

    /** How long a closing channel may take to flush what is queued to a peer that does not read. */
    private static final long CLOSE_LINGER_SECONDS = 10;
    /** How long a killed idle client's connection stays open to answer its next request with the error. */
    static final long ANSWER_LINGER_SECONDS = 300;
    /** How long the server may take to close the connection after Terminate / COM_QUIT. */
    static final long GOODBYE_WAIT_MILLIS = 2000;

    private final Session s;
    private ScheduledFuture<?> handshakeTimer;
    /** After a kill: the error that answers the client's next request (see ProtocolSession#errorForNextRequest). */
    private ByteBuf pendingAnswer;

    SessionClosing(Session session) {
        this.s = session;
    }

    // ------------------------------------------------------------------ handshake timer

    void armHandshakeTimer() {
        long timeout = s.listener.config().handshakeTimeout().toNanos();
        if (timeout == 0) {
            return; // handshakeTimeout: 0 turns the timer off, as 0 does for every timer
        }
        handshakeTimer = s.loop().schedule(this::handshakeExpired, timeout, TimeUnit.NANOSECONDS);
    }

    /** Stops the handshake timer; true when this holds nothing any more (no answer pending either). */
    boolean cancelHandshakeTimer() {
        Session.cancel(handshakeTimer);
        handshakeTimer = null;
        return pendingAnswer == null;
    }

    private void handshakeExpired() {
        if (s.phase == Phase.PROBATION) {
            s.requestSlot(); // probation is for a cancel that comes at once; a connection that lingers waits its turn
            return;
        }
        if (s.phase == Phase.CLOSED || s.accounting.authenticated() || s.phase == Phase.QUEUED) {
            return;
        }
        Duration timeout = s.listener.config().handshakeTimeout();
        s.log().at(Level.INFO).addKeyValue("reason", "handshake_timeout")
                .log("handshake not finished within handshakeTimeout {}", Messages.duration(timeout));
        close(s.identity == null ? null : CloseReason.CLIENT, new ProxyError(ProxyError.Kind.PROTOCOL_VIOLATION,
                "handshake not completed within the proxy's handshakeTimeout", "connguard: listener "
                + s.listener.name() + " handshakeTimeout " + Messages.duration(timeout)));
    }

    // ------------------------------------------------------------------ kills

    /** A session timer ran out (SessionTimers.Actions#expired). */
    void expired(SessionTimers.Expiry expiry) {
        CloseReason reason = switch (expiry) {
            case IDLE_IN_TRANSACTION -> CloseReason.IDLE_IN_TRANSACTION;
            case IDLE -> CloseReason.IDLE;
            case LIFETIME -> CloseReason.LIFETIME;
        };
        ProxyError error = Messages.expiry(expiry, s);
        s.log().at(Level.WARN).addKeyValue("reason", reason.tag()).addKeyValue("lastStatement", s.lastStatement())
                .log("session killed: {}", Messages.why(expiry, s.limits));
        close(reason, error);
    }

    /** Ends the session as the admin API or a drain asks (reason ADMIN or SHUTDOWN); on the event loop. */
    void kill(CloseReason reason) {
        if (s.phase == Phase.CLOSED) {
            return;
        }
        ProxyError error = reason == CloseReason.SHUTDOWN
                ? new ProxyError(ProxyError.Kind.SHUTDOWN, "terminating connection due to administrator command",
                "connguard is shutting down and its drainTimeout has passed")
                : new ProxyError(ProxyError.Kind.ADMIN_KILL, "terminating connection due to administrator command",
                "connguard: session " + s.id + " was killed through the admin API");
        s.log().at(Level.INFO).addKeyValue("reason", reason.tag()).addKeyValue("lastStatement", s.lastStatement())
                .log("session killed: {}", reason == CloseReason.SHUTDOWN ? "drainTimeout passed"
                        : "killed through the admin API");
        close(s.identity == null ? null : reason, error);
    }

    // ------------------------------------------------------------------ closing

    /**
     * Ends the session once: gives the permit back, settles the metrics, tells the client why (when
     * {@code error} is set and the protocol can), says goodbye upstream, and closes both channels after
     * flushing what was queued. {@code reason} null: the session was never admitted, nothing is counted.
     */
    void close(CloseReason reason, ProxyError error) {
        if (s.phase == Phase.CLOSED) {
            return;
        }
        Phase was = s.phase;
        s.phase = Phase.CLOSED;
        Session.cancel(handshakeTimer);
        s.admission.stopQueueTimer();
        s.accounting.stopTimers();
        if (s.borrowing.pooled()) {
            s.borrowing.giveServerBack(was);
        }
        releaseSlotWhenUpstreamCloses();
        s.admission.uncountClient();
        if (s.series != null) {
            s.admission.leaveQueueOnClose(was);
            if (was == Phase.CONNECTING || was == Phase.CONNECTED) {
                s.accounting.closed(reason);
            }
            s.services.metrics().release(s.series);
        }
        ByteBuf packet = null;
        ByteBuf goodbye = null;
        ByteBuf answer = null;
        boolean clientSaidGoodbye = false;
        if (s.protocol != null) {
            try {
                ByteBuf refusal = s.borrowing.takeRefusal();
                if (refusal != null) {
                    packet = refusal;
                } else if (error != null && s.client.isActive() && (s.tls == null || !s.tls.clientHandshaking())) {
                    packet = s.protocol.clientError(error);
                    if (packet != null) {
                        answer = s.protocol.errorForNextRequest(error);
                    }
                }
                if (s.upstream != null && s.upstream.isActive() && reason != CloseReason.UPSTREAM) {
                    goodbye = s.protocol.upstreamGoodbye();
                    clientSaidGoodbye = goodbye == null && s.protocol.clientSaidGoodbye();
                }
            } catch (RuntimeException e) {
                s.log().at(Level.WARN).setCause(e).log("protocol failed to write its closing packets");
            }
            try {
                s.protocol.close();
            } catch (RuntimeException e) {
                s.log().at(Level.WARN).setCause(e).log("protocol failed to release its buffers");
            }
        }
        if (answer != null) {
            lingerForNextRequest(packet, answer);
        } else {
            finish(s.client, packet);
        }
        if (s.upstream != null) {
            sayGoodbye(goodbye, clientSaidGoodbye);
        }
        s.services.registry().remove(s);
        if (reason == CloseReason.CLIENT || reason == CloseReason.UPSTREAM) {
            s.debug("session closed by the {}", reason.tag());
        }
    }

    /**
     * Gives the admission slot back once the upstream connection is closed, not before: the cap guards
     * the database's own connection count, and a backend that is still exiting counts there.
     */
    private void releaseSlotWhenUpstreamCloses() {
        if (s.ticket == null) {
            return;
        }
        Admission.Ticket held = s.ticket;
        Admission admission = s.listener.admission();
        Channel upstream = s.upstream;
        if (upstream != null && upstream.isOpen()) {
            upstream.closeFuture().addListener(closed -> admission.release(held));
        } else if (upstream == null && s.admission.connecting() != null) {
            // The connect may still succeed: the slot is the database's until that connection is closed too.
            s.admission.connecting().addListener(done -> {
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
    void sayGoodbye(ByteBuf goodbye, boolean clientSaidGoodbye) {
        if (!s.upstream.isActive()) {
            finish(s.upstream, goodbye);
            return;
        }
        Channel channel = s.upstream;
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
        s.loop().schedule(() -> channel.close(), GOODBYE_WAIT_MILLIS, TimeUnit.MILLISECONDS);
    }

    // ------------------------------------------------------------------ the answer to the next request

    /**
     * Sends the error now and keeps the client connection open, reading, so that its next request can be
     * answered with {@code answer}; closes after {@link #ANSWER_LINGER_SECONDS} if none comes.
     */
    private void lingerForNextRequest(ByteBuf packet, ByteBuf answer) {
        pendingAnswer = answer;
        s.client.writeAndFlush(packet);
        s.client.read();
        s.loop().schedule(() -> {
            if (pendingAnswer != null) {
                pendingAnswer.release();
                pendingAnswer = null;
                s.client.close();
            }
        }, ANSWER_LINGER_SECONDS, TimeUnit.SECONDS);
    }

    /** Whether the closed session still waits for the client's next request, to answer it. */
    boolean answering() {
        return pendingAnswer != null;
    }

    /** The client's next request came after the close: answers it with the pending error, and closes. */
    void answerNextRequest() {
        if (pendingAnswer != null) {
            ByteBuf answer = pendingAnswer;
            pendingAnswer = null;
            finish(s.client, answer);
        }
    }

    /** The client went away before its next request: the pending answer is not needed. */
    void dropAnswer() {
        if (pendingAnswer != null) {
            pendingAnswer.release();
            pendingAnswer = null;
        }
    }

    /** Writes the last packet (if any), flushes, and closes; a peer that will not read is cut after a linger. */
    void finish(Channel channel, ByteBuf last) {
        if (!channel.isActive()) {
            ReferenceCountUtil.release(last);
            channel.close();
            return;
        }
        ChannelFuture written = channel.writeAndFlush(last != null ? last : Unpooled.EMPTY_BUFFER);
        written.addListener(ChannelFutureListener.CLOSE);
        if (!written.isDone()) {
            s.loop().schedule(() -> channel.close(), CLOSE_LINGER_SECONDS, TimeUnit.SECONDS);
        }
    }
}
