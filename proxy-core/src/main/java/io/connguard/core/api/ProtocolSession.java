package io.connguard.core.api;

import io.netty.buffer.ByteBuf;

/**
 * The protocol half of one client session: it reads the handshake, scans both byte streams for message
 * boundaries and reports what it sees to core through its {@link SessionContext}. Core decides (caps,
 * timers, kills, metrics) and asks it for its protocol's error packets.
 *
 * <p>Every method is called on the session's event loop, so an implementation needs no locks.
 * Ownership of a {@link ByteBuf} passed in moves to the session: it forwards it with
 * {@link SessionContext#toUpstream} / {@link SessionContext#toClient} or releases it.
 */
public interface ProtocolSession {

    /** Bytes read from the client. */
    void onClientBytes(ByteBuf bytes);

    /** Bytes read from the upstream server (already decrypted when upstream TLS is on). */
    void onUpstreamBytes(ByteBuf bytes);

    /**
     * The client was admitted and the upstream TCP connection is open: the session now speaks to the
     * server (upstream TLS, startup or handshake response) and from then on relays.
     */
    void onUpstreamConnected();

    /**
     * Called from inside {@link SessionContext#identified} when the session had an upstream connection
     * opened early ({@link SessionContext#openUpstreamEarly()}): whether it is kept, kept on probation, or
     * closed (the client then waits, and a new connection follows with {@link #onUpstreamConnected()}).
     */
    default void earlyUpstream(EarlyUpstream outcome) {
    }

    /**
     * A session on probation got its own slot after {@link SessionContext#requestSlot()} (or after core
     * queued it because it held its probation too long): what it held back may now go upstream.
     */
    default void slotGranted() {
    }

    /**
     * The packet that tells the client why core is ending the session, in this protocol's own form.
     * Returns {@code null} when nothing can be sent safely (for example in the middle of a server
     * message, where an inserted packet would corrupt the stream); core then just closes.
     */
    ByteBuf clientError(ProxyError error);

    /**
     * For a session ended while it waited for the client: the packet that answers the client's next
     * request, or {@code null}. Some drivers throw away bytes that arrive while they are idle (MySQL
     * Connector/J skips whatever is readable before it sends a command), so they never see the error
     * {@link #clientError} sent. When this returns a packet, core closes the upstream at once (the
     * database rolls back), keeps the client connection open for a while, and answers the client's next
     * bytes with this packet before closing. Called right after {@link #clientError}.
     */
    default ByteBuf errorForNextRequest(ProxyError error) {
        return null;
    }

    /**
     * The packet that ends the session politely on the server (PostgreSQL Terminate, MySQL COM_QUIT),
     * sent before core closes the upstream connection, so the server rolls back at once.
     * Returns {@code null} when there is nothing to send or the client stream is mid-message.
     */
    ByteBuf upstreamGoodbye();

    /**
     * The client has sent its own Terminate / COM_QUIT and it has been relayed: the server ends the
     * connection by itself, so core only waits for it to close (no goodbye, no half-close of its own).
     */
    default boolean clientSaidGoodbye() {
        return false;
    }

    // ---------------------------------------------------------------- pooled listeners only

    /**
     * Pooled listeners: ask the client for its password on the local leg; the protocol answers with
     * {@link SessionContext#passwordGiven}.
     */
    default void requestPassword() {
        throw new UnsupportedOperationException("this protocol does not pool");
    }

    /**
     * Pooled listeners: a logged-in server connection (its protocol half is {@code server}) is lent to this
     * client, in place of {@link #onUpstreamConnected()}. The protocol makes the connection match what the
     * client asked for at start-up, answers the client's handshake, and relays from then on.
     */
    default void onServerLent(ServerConnectionProtocol server) {
        throw new UnsupportedOperationException("this protocol does not pool");
    }

    /**
     * Pooled listeners: whether the idle server connection {@code server} can serve this client (MySQL: it was
     * logged in with the response framing the client negotiated). The pool lends the first idle connection that
     * fits, and closes one that does not to make room when it is full.
     */
    default boolean serverFits(ServerConnectionProtocol server) {
        return true;
    }

    /**
     * Pooled listeners, when the client leaves: whether the lent server connection stands at a clean
     * message boundary with nothing of the client's in flight (core also requires the state idle), so it
     * can be reset and lent again; otherwise core closes it.
     */
    default boolean serverReusable() {
        return false;
    }

    /**
     * Transaction mode, when the client leaves while holding an idle server connection: whether what it
     * left there must be reset before another client gets the connection (a pin's state).
     */
    default boolean serverNeedsReset() {
        return true;
    }

    /**
     * Transaction mode: the protocol holds client bytes until a server connection is lent and wants no more
     * for now (core stops reading the client until {@link #onServerLent}).
     */
    default boolean holdingClientBytes() {
        return false;
    }

    /** Transaction mode: why the client is pinned to its server connection now, or null. */
    default String pinReason() {
        return null;
    }

    /** The last statement the client sent, as a fingerprint (literals replaced by {@code ?}); "" if none. */
    String lastStatement();

    /** The session has ended: release every buffer still held. Called exactly once. */
    void close();
}
