package io.connguard.core.api;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.channel.EventLoop;

/**
 * What core offers the protocol half of one pooled server connection: the bytes sink towards the server
 * and the reports core's pool acts on. Every method must be called on {@link #eventLoop()}.
 */
public interface ServerConnectionContext {

    /** The pooled server connection's id, shown in {@code /sessions} and logs. */
    long id();

    ListenerInfo listener();

    ByteBufAllocator alloc();

    EventLoop eventLoop();

    /** Log lines about this server connection, tagged with its id and pool. */
    SessionLog log();

    /**
     * Whether the connection's pool lends per transaction ({@code pool.mode: transaction}): a protocol may then
     * prepare it to follow each client's session state (MySQL: session-state tracking).
     */
    default boolean transactionPooled() {
        return false;
    }

    /** Queue bytes to the server and flush. */
    void toServer(ByteBuf bytes);

    /** The login is complete; {@code passwordAsked}: the server asked for a password (not trust). */
    void loggedIn(boolean passwordAsked);

    /** The server asks for a password the login was not given; core resumes with {@link ServerConnectionProtocol#password}. */
    void passwordNeeded();

    /**
     * The server refused the login. {@code clientError} (ownership moves to core; may be null) is the
     * packet that tells the client why, in the server's own words; {@code credentials}: the refusal was
     * about the password (a remembered password is then forgotten).
     */
    void loginRefused(ByteBuf clientError, boolean credentials, String reason);

    /** A returned connection has forgotten its last client's state and may serve another. */
    void resetDone();

    /** The connection cannot be used any more (a protocol error, an unexpected message): core closes it. */
    void failed(String reason);
}
