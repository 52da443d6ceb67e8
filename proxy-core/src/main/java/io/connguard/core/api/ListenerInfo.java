package io.connguard.core.api;

import java.net.InetSocketAddress;

/**
 * What a protocol session needs to know about the listener it was accepted on.
 *
 * @param name        the listener's unique name
 * @param upstream    the database address (unresolved; core resolves it on each connect)
 * @param upstreamTls how the proxy speaks to the database
 * @param clientTls   whether TLS from the client is refused, accepted or required on the local leg
 * @param pooled      server connections are pooled ({@code pool.mode} session or transaction): the protocol
 *                    answers the client's handshake itself and takes a logged-in server connection from core
 */
public record ListenerInfo(String name, InetSocketAddress upstream, UpstreamTlsMode upstreamTls,
                           ClientTlsMode clientTls, boolean pooled) {

    /** A relay listener: every client gets a server connection of its own. */
    public ListenerInfo(String name, InetSocketAddress upstream, UpstreamTlsMode upstreamTls, ClientTlsMode clientTls) {
        this(name, upstream, upstreamTls, clientTls, false);
    }

    /** The {@code upstreamTls.mode} values. */
    public enum UpstreamTlsMode {
        DISABLE, REQUIRE, VERIFY_CA, VERIFY_FULL;

        public boolean enabled() {
            return this != DISABLE;
        }
    }

    /**
     * The {@code clientTls.mode} values: {@code DISABLE} refuses TLS from the client (PostgreSQL answers
     * 'N', MySQL clears CLIENT_SSL), {@code ALLOW} terminates TLS when the client asks and accepts
     * plaintext too, {@code REQUIRE} refuses a client that goes on in plaintext.
     */
    public enum ClientTlsMode {
        DISABLE, ALLOW, REQUIRE;

        /** TLS is offered to the client. */
        public boolean enabled() {
            return this != DISABLE;
        }
    }
}
