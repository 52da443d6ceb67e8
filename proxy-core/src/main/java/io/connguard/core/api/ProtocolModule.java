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
     * The {@code pool.mode} values besides {@code relay} this protocol supports ({@code session},
     * {@code transaction}); listeners asking for another are refused by configuration validation.
     */
    default java.util.Set<String> poolModes() {
        return java.util.Set.of();
    }

    /**
     * The protocol half of a new pooled server connection that logs in as {@code who} to
     * {@code who.database()}, with {@code password} (null: none known yet; the login pauses if one is asked).
     * Only called for listeners whose {@code pool.mode} is one of {@link #poolModes()}.
     */
    default ServerConnectionProtocol newServerConnection(ServerConnectionContext context, ClientIdentity who,
                                                         char[] password) {
        throw new UnsupportedOperationException(id() + " does not pool server connections");
    }

    /**
     * As {@link #newServerConnection(ServerConnectionContext, ClientIdentity, char[])}, for the client session
     * {@code client} (null when the pool opens the connection on its own, for {@code minIdle}): a protocol whose
     * login depends on what the client negotiated (MySQL capabilities and collation) reads it from there.
     */
    default ServerConnectionProtocol newServerConnection(ServerConnectionContext context, ClientIdentity who,
                                                         char[] password, ProtocolSession client) {
        return newServerConnection(context, who, password);
    }
}
