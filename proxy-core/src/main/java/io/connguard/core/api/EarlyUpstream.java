package io.connguard.core.api;

/**
 * What became of an upstream connection opened before the client was identified
 * ({@link SessionContext#openUpstreamEarly()}), told to the protocol through
 * {@link ProtocolSession#earlyUpstream} while it reports {@link SessionContext#identified}.
 */
public enum EarlyUpstream {
    /** The client was admitted: the connection is its upstream; authenticate on it. */
    KEPT,
    /**
     * The client is over its cap, but may authenticate on the connection without a slot of its own (at most
     * one such connection per client key, holding only a listener slot): the protocol lets through only
     * requests that may run without a slot (MySQL: KILL of a thread of the same listener) and asks for a slot
     * with {@link SessionContext#requestSlot()} before anything else.
     */
    PROBATION,
    /**
     * The client must wait (or is refused): the connection was closed before anything was authenticated on
     * it. When the client gets its slot, a new upstream connection opens and
     * {@link ProtocolSession#onUpstreamConnected()} is called again.
     */
    CLOSED
}
