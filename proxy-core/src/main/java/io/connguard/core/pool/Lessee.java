package io.connguard.core.pool;

import io.netty.buffer.ByteBuf;

/**
 * A client session that asks a pool for a server connection and, once lent one, receives what the server
 * sends. Every call arrives on the pool's event loop, which is the session's own.
 */
public interface Lessee {

    /** The session id, for logs. */
    long id();

    /**
     * The protocol half of the client session, for the protocol half of a server connection opened for it
     * (what the client negotiated shapes the login); null when there is none.
     */
    default io.connguard.core.api.ProtocolSession protocolSession() {
        return null;
    }

    /** Whether the idle server connection {@code connection} can serve this session (see {@link io.connguard.core.api.ProtocolSession#serverFits}). */
    default boolean fits(ServerConnection connection) {
        return true;
    }

    /** A logged-in server connection is now this session's, until it gives it back. */
    void lent(ServerConnection connection);

    /** A fresh login for this session needs the client's password: answer with {@link ServerConnection#password}. */
    void passwordNeeded(ServerConnection connection);

    /** The database refused this session's login; {@code clientError} (owned by the callee, may be null) says why. */
    void refused(ByteBuf clientError, String reason);

    /** No server connection: it could not be opened, or none freed up in time ({@code poolFull}). */
    void unavailable(String reason, boolean poolFull);

    // ------------------------------------------------------------ while lent

    void serverRead(ByteBuf bytes);

    void serverReadComplete();

    void serverWritabilityChanged();

    /** The lent server connection closed under the session. */
    void serverClosed();
}
