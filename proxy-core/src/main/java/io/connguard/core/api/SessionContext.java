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
