package io.connguard.core.api;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandler;
import io.netty.channel.EventLoop;
import io.netty.util.concurrent.Future;

import java.net.InetSocketAddress;

/**
 * What core offers one protocol session: the facts about the session, the narrow set of reports core
 * acts on, and the two byte sinks. Every method must be called on {@link #eventLoop()}.
 */
public interface SessionContext {

    /** The session id shown in logs, {@code /sessions} and kill reports. */
    long id();

    ListenerInfo listener();

    InetSocketAddress clientAddress();

    ByteBufAllocator alloc();

    EventLoop eventLoop();

    /** Log lines about this session, tagged with its id, listener and client identity. */
    SessionLog log();

    // ---------------------------------------------------------------- reports

    /**
     * The handshake named the client. The first call starts admission: core queues or rejects the
     * session, or opens the upstream connection and calls {@link ProtocolSession#onUpstreamConnected()}.
     * No upstream connection exists before that. A later call (MySQL COM_CHANGE_USER) re-keys the
     * session's accounting to the new identity without queueing.
     */
    void identified(ClientIdentity identity);

    /**
     * The session's state as the protocol sees it now. Reporting the same state again counts as client
     * activity (it restarts the idle timers).
     */
    void stateChanged(SessionState state);

    /**
     * The tracker met input it does not understand: the session becomes {@link SessionState#UNKNOWN},
     * bytes are still relayed, no timer is enforced any more. Core counts it and logs it once.
     */
    void lostSync(String reason);

    /**
     * Malformed or unsupported input from the client: core sends {@link ProxyError.Kind#PROTOCOL_VIOLATION}
     * (through {@link ProtocolSession#clientError}) and closes the session.
     */
    void violation(String reason);

    /**
     * The upstream could not be used (for example its TLS handshake failed or it refused TLS that the
     * listener requires): core counts an upstream connect error, sends
     * {@link ProxyError.Kind#UPSTREAM_UNAVAILABLE} and closes the session.
     */
    void upstreamFailed(String reason);

    /**
     * Before {@link #identified}: asks for the upstream connection now, ahead of admission, so that the
     * protocol can read what the server says first before the client has said who it is (MySQL: the
     * greeting with the real thread id and scramble). Core grants it only while the listener is under its
     * {@code maxUpstreamConnections} and not draining, holding a listener slot (never a client slot) for
     * it until that connection is closed. Returns false otherwise; the session then goes on as without.
     * When true, {@link ProtocolSession#onUpstreamConnected()} follows once the connection is open (if it
     * cannot be opened, core ends the session as for {@link #upstreamFailed}) and the server's bytes arrive
     * through {@link ProtocolSession#onUpstreamBytes}. At {@link #identified}, core tells the protocol what
     * became of the connection through {@link ProtocolSession#earlyUpstream}.
     */
    default boolean openUpstreamEarly() {
        return false;
    }

    /**
     * On probation ({@link EarlyUpstream#PROBATION}): the client sent a request that needs a slot of its
     * own. Core queues it as admission does; {@link ProtocolSession#slotGranted()} follows when it gets one,
     * or the session ends with {@link ProxyError.Kind#TOO_MANY_CONNECTIONS}. Ignored when not on probation.
     */
    default void requestSlot() {
    }

    /**
     * Pooled listeners: the password the client gave after {@link ProtocolSession#requestPassword()}. Core
     * checks it or has the database check it; the array is core's from then on.
     */
    default void passwordGiven(char[] password) {
        throw new UnsupportedOperationException("not a pooled listener");
    }

    /**
     * Pooled listeners, in place of {@link #passwordGiven} after {@link ProtocolSession#requestPassword()}: the
     * client proved, without giving it, that it knows the password a server login of its pool was last
     * accepted with (MySQL: its scramble response checks against the double hash of that password). Core
     * admits it as it admits a matching password; a new server connection for it asks for the password
     * itself ({@link ProtocolSession#requestPassword()} again).
     */
    default void passwordProven() {
        throw new UnsupportedOperationException("not a pooled listener");
    }

    // ---------------------------------------------------------------- pooled transaction mode

    /**
     * Whether server connections are lent per transaction ({@code pool.mode: transaction}): the protocol then
     * asks for one with {@link #serverWanted()} and gives it back with {@link #serverIdle(boolean)}.
     */
    default boolean transactionPooled() {
        return false;
    }

    /**
     * Transaction mode: the client sent a request while it holds no server connection. Core takes an
     * admission ticket and a pooled server connection for it; {@link ProtocolSession#onServerLent} follows, or
     * the session ends with the error that stopped it (a queue timeout, the pool's size).
     */
    default void serverWanted() {
        throw new UnsupportedOperationException("not a transaction-mode listener");
    }

    /**
     * Transaction mode: the lent server connection stands idle outside a transaction with nothing of the
     * client's pending; the protocol no longer uses it. Core gives it back to the pool ({@code reset}: after
     * resetting what the client left on it, PostgreSQL {@code DISCARD ALL}) and the admission ticket with it.
     */
    default void serverIdle(boolean reset) {
        throw new UnsupportedOperationException("not a transaction-mode listener");
    }

    /** Transaction mode: the client is now pinned to its server connection for {@code reason} (counted). */
    default void pinned(String reason) {
    }

    /** Transaction mode: one transaction (or request outside one) was served on a lent server connection. */
    default void transactionServed() {
    }

    // ---------------------------------------------------------------- bytes

    /** Queue bytes to the client; core flushes at the end of the current read batch. */
    void toClient(ByteBuf bytes);

    /** Queue bytes to the upstream; core flushes at the end of the current read batch. */
    void toUpstream(ByteBuf bytes);

    /**
     * Start TLS on the upstream connection as the listener's {@code upstreamTls} says. Bytes already
     * queued to the upstream are flushed first, in plaintext. The future completes when the TLS
     * handshake has finished; on failure core has already ended the session as for {@link #upstreamFailed}.
     */
    Future<Channel> startUpstreamTls();

    /**
     * Start TLS on the client connection, as its server, with the listener's {@code clientTls} certificate.
     * Call it only when {@link ListenerInfo#clientTls()} is enabled, once per session, after the protocol
     * has queued its plaintext answer that accepts TLS (PostgreSQL 'S'); core flushes that answer first.
     * {@code alreadyRead} (may be null; ownership moves to core) holds client bytes the protocol read that
     * belong to the TLS stream: the start of the ClientHello when the client opened with TLS directly
     * (PostgreSQL {@code sslnegotiation=direct}). Bytes read from then on reach
     * {@link ProtocolSession#onClientBytes} decrypted, and bytes sent with {@link #toClient} are encrypted.
     *
     * <p>MySQL calls it in the middle of its handshake, right after the client's SSLRequest packet (the
     * 32-byte HandshakeResponse prefix with CLIENT_SSL): the client's next packet, its full
     * HandshakeResponse, then arrives decrypted with sequence id 2.
     *
     * <p>The future completes with what the handshake agreed on when it has finished, before any decrypted
     * byte is delivered. When the handshake fails, core has logged it, counted it and closed the session (no
     * error packet: a TLS client cannot read plaintext), and the future fails. While the handshake runs
     * {@link ProtocolSession#clientError} is not asked for.
     */
    Future<ClientTlsSession> startClientTls(ByteBuf alreadyRead);

    /**
     * The client asked for TLS that this listener does not offer ({@code clientTls: disable}) and gave up:
     * a PostgreSQL client that hung up after its SSLRequest was answered 'N', a direct TLS hello, a MySQL
     * SSLRequest. Core counts it and logs a warning naming the {@code clientTls} setting, once per client
     * and kind of request ({@code identity} when known, else the client's address); it does not close the session.
     *
     * @param request what the client sent, e.g. "SSLRequest"
     */
    void clientTlsRefused(ClientIdentity identity, String request);

    /**
     * The client went on in plaintext on a listener whose {@code clientTls.mode} is require: core counts
     * it, logs it once per client, sends {@link ProxyError.Kind#TLS_REQUIRED} and closes the session.
     */
    void plaintextRefused(ClientIdentity identity);

    /**
     * Open a connection that is not a session: not counted, not queued, not relayed (a PostgreSQL
     * CancelRequest, a probe for a server greeting). It runs on this session's event loop with the
     * given handler and is closed by whoever finishes with it; it fails after the listener's
     * {@code connectTimeout}.
     */
    Future<Channel> connectAside(InetSocketAddress target, ChannelHandler handler);

    /**
     * End the session after flushing what was queued: the exchange is complete (a forwarded
     * CancelRequest) or the client has been told why by the server or the protocol itself.
     */
    void close();
}
