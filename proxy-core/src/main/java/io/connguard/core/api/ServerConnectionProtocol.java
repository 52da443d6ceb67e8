package io.connguard.core.api;

import io.netty.buffer.ByteBuf;

/**
 * The protocol half of one pooled server connection: it logs connguard in to the database with a
 * client's credentials, resets the connection when a client gives it back, and says goodbye. While the
 * connection is lent to a client the bytes go to that client's {@link ProtocolSession} instead.
 * Every method is called on the connection's event loop.
 */
public interface ServerConnectionProtocol {

    /** The TCP connection is open: start the login. */
    void onConnected();

    /** Bytes from the server while the connection is not lent (login, reset). Ownership moves here. */
    void onServerBytes(ByteBuf bytes);

    /** The password the server asked for (after {@link ServerConnectionContext#passwordNeeded}). */
    void password(char[] password);

    /**
     * A client gave the connection back at a clean boundary: forget its state ({@code reset: auto}) and
     * report {@link ServerConnectionContext#resetDone}, or report it at once when {@code full} is false.
     */
    void reset(boolean full);

    /** The packet that ends the server session politely (PostgreSQL Terminate), or null. */
    ByteBuf goodbye();

    /** The connection has closed: release every buffer still held. Called exactly once. */
    void close();
}
