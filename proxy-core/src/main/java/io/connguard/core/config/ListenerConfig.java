package io.connguard.core.config;

import io.connguard.core.api.ListenerInfo;

import java.nio.file.Path;
import java.time.Duration;

/**
 * One listener: where clients connect, which protocol they speak and which database it guards.
 *
 * @param maxUpstreamConnections cap for all clients of this listener together; 0 = none
 */
public record ListenerConfig(String name, String protocol, HostPort listen, HostPort upstream,
                             int maxUpstreamConnections, Duration connectTimeout, Duration handshakeTimeout,
                             UpstreamTls upstreamTls, ClientTls clientTls) {

    /** {@code upstreamTls}: how the proxy speaks to the database. */
    public record UpstreamTls(ListenerInfo.UpstreamTlsMode mode, Path caFile) {
    }

    /** {@code clientTls}: only {@code disable} exists; TLS from the client is refused. */
    public record ClientTls(ClientTlsMode mode) {
    }

    public enum ClientTlsMode { DISABLE }

    /** The view of this listener a protocol module gets. */
    public ListenerInfo info() {
        return new ListenerInfo(name, upstream.unresolved(), upstreamTls.mode(), false);
    }
}
