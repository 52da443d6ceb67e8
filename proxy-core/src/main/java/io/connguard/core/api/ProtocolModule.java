package io.connguard.core.api;

/**
 * A wire protocol connguard can guard, found through {@link java.util.ServiceLoader}.
 *
 * <p>One instance exists per running proxy; state it shares between its sessions (cancel-key routes,
 * connection-id maps, a cached server greeting) lives in its fields and must be thread-safe, because
 * sessions run on different event loops. Everything else a session owns is confined to its event loop.
 */
public interface ProtocolModule {

    /** The value of a listener's {@code protocol} key, e.g. {@code postgres}. */
    String id();

    /**
     * The protocol half of a new client session. Called on the session's event loop right after the
     * client connected, before any byte was read.
     */
    ProtocolSession newSession(SessionContext context);

    /**
     * Whether this protocol's sessions terminate TLS from clients ({@link SessionContext#startClientTls}).
     * A listener whose {@code clientTls.mode} is allow or require is refused at start (and on reload)
     * for a protocol that does not.
     */
    default boolean terminatesClientTls() {
        return false;
    }

    /**
     * The ALPN protocol names a client may ask for in a TLS handshake on the client leg (PostgreSQL:
     * {@code postgresql}); a client that offers only other names is refused. Empty: no ALPN.
     */
    default java.util.List<String> tlsApplicationProtocols() {
        return java.util.List.of();
    }

    /**
     * Whether listeners of this protocol may pool server connections ({@code pool.mode} session or
     * transaction). A module that cannot has its pooled listeners refused by configuration validation.
     */
    default boolean pools() {
        return false;
    }
}
