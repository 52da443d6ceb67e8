package io.connguard.core.api;

/**
 * Why core is ending a session, for the protocol to put into its own error packet.
 *
 * @param kind    what happened; each protocol maps it to its codes (README.md, "Wire behaviour")
 * @param message the primary message, naming the limit and the client key, never counts
 * @param detail  a second line naming the configuration key; may be empty
 * @param perUser for {@link Kind#TOO_MANY_CONNECTIONS}: the cap is keyed by user alone
 *                (MySQL answers 1226 instead of 1040)
 */
public record ProxyError(Kind kind, String message, String detail, boolean perUser) {

    public ProxyError(Kind kind, String message, String detail) {
        this(kind, message, detail, false);
    }

    public enum Kind {
        /** Over a client or listener cap after the queue wait, or the queue is full. */
        TOO_MANY_CONNECTIONS,
        /** Idle inside a transaction for longer than {@code idleInTransactionTimeout}. */
        IDLE_IN_TRANSACTION_TIMEOUT,
        /** Idle outside a transaction for longer than {@code idleTimeout}. */
        IDLE_TIMEOUT,
        /** Older than {@code maxSessionLifetime} and idle. */
        SESSION_LIFETIME,
        /** Killed through the admin API. */
        ADMIN_KILL,
        /** Still open when a drain ended. */
        SHUTDOWN,
        /** A new connection while the proxy is draining. */
        DRAINING,
        /** Malformed or unsupported input. */
        PROTOCOL_VIOLATION,
        /** The upstream could not be reached or refused the connection the listener requires. */
        UPSTREAM_UNAVAILABLE,
        /** A plaintext client on a listener with {@code clientTls.mode: require}. */
        TLS_REQUIRED,
        /** Pooled listeners: the client's password is wrong (checked against the users file or by the database). */
        AUTHENTICATION_FAILED
    }
}
