package io.connguard.core.api;

import java.net.InetSocketAddress;

/**
 * What a protocol session needs to know about the listener it was accepted on.
 *
 * @param name       the listener's unique name
 * @param upstream   the database address (unresolved; core resolves it on each connect)
 * @param upstreamTls how the proxy speaks to the database
 * @param clientTls  whether TLS from the client is accepted; {@code false} means refuse it
 *                   (PostgreSQL answers 'N', MySQL clears CLIENT_SSL)
 */
public record ListenerInfo(String name, InetSocketAddress upstream, UpstreamTlsMode upstreamTls, boolean clientTls) {

    /** The {@code upstreamTls.mode} values. */
    public enum UpstreamTlsMode {
        DISABLE, REQUIRE, VERIFY_CA, VERIFY_FULL;

        public boolean enabled() {
            return this != DISABLE;
        }
    }
}
