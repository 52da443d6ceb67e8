package io.connguard.core.config;

import io.connguard.core.api.ListenerInfo;
import io.connguard.core.api.ListenerInfo.ClientTlsMode;

import java.nio.file.Path;
import java.time.Duration;

/**
 * One listener: where clients connect, which protocol they speak and which database it guards.
 *
 * @param maxUpstreamConnections cap for all clients of this listener together; 0 = none. In pooled modes it
 *                               bounds the listener's open server connections, idle ones included
 * @param pool                   relay (one server connection per client) or how server connections are pooled
 * @param auth                   how clients are verified when server connections are pooled
 */
public record ListenerConfig(String name, String protocol, HostPort listen, HostPort upstream,
                             int maxUpstreamConnections, Duration connectTimeout, Duration handshakeTimeout,
                             UpstreamTls upstreamTls, ClientTls clientTls, PoolConfig pool, AuthConfig auth) {

    /** A relay listener (the shape every listener had before pooling). */
    public ListenerConfig(String name, String protocol, HostPort listen, HostPort upstream,
                          int maxUpstreamConnections, Duration connectTimeout, Duration handshakeTimeout,
                          UpstreamTls upstreamTls, ClientTls clientTls) {
        this(name, protocol, listen, upstream, maxUpstreamConnections, connectTimeout, handshakeTimeout, upstreamTls,
                clientTls, PoolConfig.DEFAULTS, AuthConfig.DEFAULTS);
    }

    /** {@code upstreamTls}: how the proxy speaks to the database. */
    public record UpstreamTls(ListenerInfo.UpstreamTlsMode mode, Path caFile) {
    }

    /**
     * {@code clientTls}: TLS on the local leg. {@code certFile} and {@code keyFile} are PEM files, both
     * given or both null; null with {@code allow} / {@code require} means a self-signed certificate made at
     * start.
     */
    public record ClientTls(ClientTlsMode mode, Path certFile, Path keyFile) {

        public static final ClientTls DISABLED = new ClientTls(ClientTlsMode.DISABLE, null, null);

        /** The certificate comes from files (re-read when they change) rather than being made at start. */
        public boolean fromFiles() {
            return certFile != null;
        }
    }

    /** The view of this listener a protocol module gets. */
    public ListenerInfo info() {
        return new ListenerInfo(name, upstream.unresolved(), upstreamTls.mode(), clientTls.mode(), pool.pooled());
    }
}
