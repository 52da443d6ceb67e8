package io.connguard.core.server;

import io.connguard.core.admission.Admission;
import io.connguard.core.admission.FleetGate;
import io.connguard.core.admission.ClientConnections;
import io.connguard.core.api.ListenerInfo;
import io.connguard.core.api.ProtocolModule;
import io.connguard.core.config.ListenerConfig;
import io.connguard.core.metrics.ListenerMeters;
import io.connguard.core.pool.Pools;
import io.netty.channel.Channel;

/**
 * One listener at run time: its configuration (replaced on reload), the protocol it speaks, its
 * admission and meters, its TLS contexts for both legs, and its bound server channel.
 */
public final class Listener {

    private final String name;
    private final ProtocolModule module;
    private final Admission admission;
    private final ClientConnections clientConnections = new ClientConnections();
    private final ListenerMeters meters;
    private volatile ListenerConfig config;
    private volatile ListenerInfo info;
    private volatile UpstreamTlsContext tls;
    private volatile ClientTlsContext clientTls;
    private final FirstSeen tlsMismatchLogged = new FirstSeen();
    private volatile Channel serverChannel;
    /** Upstreams opened before identification and closed unauthenticated since a session last authenticated. */
    private final java.util.concurrent.atomic.AtomicInteger earlyDropsInARow = new java.util.concurrent.atomic.AtomicInteger();
    private volatile Pools pools;

    Listener(ListenerConfig config, ProtocolModule module, ListenerMeters meters, UpstreamTlsContext tls,
             ClientTlsContext clientTls, FleetGate fleet) {
        this.name = config.name();
        this.module = module;
        this.meters = meters;
        this.admission = new Admission(config.maxUpstreamConnections(), fleet);
        update(config, tls, clientTls);
    }

    void update(ListenerConfig config, UpstreamTlsContext tls, ClientTlsContext clientTls) {
        // The contexts first: a session that reads the new info (its clientTls mode) finds its context.
        this.tls = tls;
        this.clientTls = clientTls;
        this.config = config;
        this.info = config.info();
        admission.updateListenerCap(config.maxUpstreamConnections());
    }

    public String name() {
        return name;
    }

    public ProtocolModule module() {
        return module;
    }

    public ListenerConfig config() {
        return config;
    }

    public ListenerInfo info() {
        return info;
    }

    /** The upstream TLS context, or null when {@code upstreamTls.mode} is disable. */
    public UpstreamTlsContext tls() {
        return tls;
    }

    /** The client-leg TLS context, or null when {@code clientTls.mode} is disable. */
    public ClientTlsContext clientTls() {
        return clientTls;
    }

    /** The clients (keys or addresses) already told in the log that their TLS wish and the listener disagree. */
    public FirstSeen tlsMismatchLogged() {
        return tlsMismatchLogged;
    }

    public Admission admission() {
        return admission;
    }

    /** The open client connections per key, against {@code maxClientConnections}. */
    public ClientConnections clientConnections() {
        return clientConnections;
    }

    /** The pools of a pooled listener ({@code pool.mode} session or transaction); null for relay. */
    public Pools pools() {
        return pools;
    }

    void pools(Pools pools) {
        this.pools = pools;
    }

    public ListenerMeters meters() {
        return meters;
    }

    /**
     * Early upstreams closed before anything was authenticated on them, since a session of this listener
     * last authenticated: servers count such connections as handshake errors of connguard's host and block
     * it after {@code max_connect_errors} in a row, so sessions stop opening early upstreams after a few.
     */
    public java.util.concurrent.atomic.AtomicInteger earlyDropsInARow() {
        return earlyDropsInARow;
    }

    public Channel serverChannel() {
        return serverChannel;
    }

    void serverChannel(Channel channel) {
        this.serverChannel = channel;
    }
}
