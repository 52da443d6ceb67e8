package io.connguard.core.metrics;

/**
 * Every connguard meter name, as Micrometer names it; the Prometheus names of README.md's metrics
 * table follow from Micrometer's naming convention (dots become underscores, counters get
 * {@code _total}, a base unit of seconds adds {@code _seconds}).
 */
public final class MeterNames {

    /** {@code connguard_client_connections{state}}: sessions open now. */
    public static final String CLIENT_CONNECTIONS = "connguard.client.connections";
    /** {@code connguard_client_queued}: connections waiting for a slot. */
    public static final String CLIENT_QUEUED = "connguard.client.queued";
    /** {@code connguard_client_max_connections}: the cap in force (absent = none). */
    public static final String CLIENT_MAX_CONNECTIONS = "connguard.client.max.connections";
    /** {@code connguard_client_admissions_total{outcome}}. */
    public static final String CLIENT_ADMISSIONS = "connguard.client.admissions";
    /** {@code connguard_client_queue_wait_seconds}: histogram of time spent waiting for a slot. */
    public static final String CLIENT_QUEUE_WAIT = "connguard.client.queue.wait";
    /** {@code connguard_client_sessions_closed_total{reason}}. */
    public static final String CLIENT_SESSIONS_CLOSED = "connguard.client.sessions.closed";
    /** {@code connguard_client_leak_suspects}: sessions idle beyond leakDetectionThreshold now. */
    public static final String CLIENT_LEAK_SUSPECTS = "connguard.client.leak.suspects";
    /** {@code connguard_client_busy_seconds_total}: time-integral of active sessions. */
    public static final String CLIENT_BUSY = "connguard.client.busy";
    /** {@code connguard_client_transaction_seconds_total}: time-integral of sessions in a transaction. */
    public static final String CLIENT_TRANSACTION = "connguard.client.transaction";
    /** {@code connguard_client_pins_total{reason}}: clients pinned to their server connection (transaction mode). */
    public static final String CLIENT_PINS = "connguard.client.pins";
    /** {@code connguard_client_transactions_total}: transactions served on lent server connections (transaction mode). */
    public static final String CLIENT_TRANSACTIONS = "connguard.client.transactions";

    /** {@code connguard_listener_upstream_connections}: upstream connections open. */
    public static final String LISTENER_UPSTREAM_CONNECTIONS = "connguard.listener.upstream.connections";
    /** {@code connguard_listener_upstream_connect_errors_total}. */
    public static final String LISTENER_UPSTREAM_CONNECT_ERRORS = "connguard.listener.upstream.connect.errors";
    /** {@code connguard_listener_upstream_connect_seconds}: histogram of upstream connect time. */
    public static final String LISTENER_UPSTREAM_CONNECT = "connguard.listener.upstream.connect";
    /** {@code connguard_listener_lost_sync_total}: sessions whose tracker lost sync (state unknown). */
    public static final String LISTENER_LOST_SYNC = "connguard.listener.lost.sync";
    /** {@code connguard_listener_rejections_total{reason}}: rejections of the listener's connections; never removed. */
    public static final String LISTENER_REJECTIONS = "connguard.listener.rejections";
    /** {@code connguard_listener_client_tls_handshakes_total{outcome}}: TLS handshakes on the client leg. */
    public static final String LISTENER_CLIENT_TLS_HANDSHAKES = "connguard.listener.client.tls.handshakes";
    /** {@code connguard_listener_client_tls_refused_total}: clients that asked for TLS under {@code clientTls: disable}. */
    public static final String LISTENER_CLIENT_TLS_REFUSED = "connguard.listener.client.tls.refused";
    /** {@code connguard_listener_client_plaintext_refused_total}: plaintext clients under {@code clientTls: require}. */
    public static final String LISTENER_CLIENT_PLAINTEXT_REFUSED = "connguard.listener.client.plaintext.refused";

    /** {@code connguard_fleet_leases{fleet}}: fleet leases this process holds, per client. */
    public static final String FLEET_LEASES = "connguard.fleet.leases";
    /** {@code connguard_fleet_max_connections{fleet}}: the client's fleet cap (an addition to the contract). */
    public static final String FLEET_MAX_CONNECTIONS = "connguard.fleet.max.connections";
    /** {@code connguard_fleet_store_up{fleet}}: 1 while the fleet store answers. */
    public static final String FLEET_STORE_UP = "connguard.fleet.store.up";
    /** {@code connguard_pool_server_connections{state}}: pooled server connections by state. */
    public static final String POOL_SERVER_CONNECTIONS = "connguard.pool.server.connections";
    /** {@code connguard_pool_wait_seconds}: histogram of the time a client waited for a server connection. */
    public static final String POOL_WAIT = "connguard.pool.wait";

    public static final String TAG_LISTENER = "listener";
    public static final String TAG_FLEET = "fleet";
    public static final String TAG_USER = "user";
    public static final String TAG_DATABASE = "database";
    public static final String TAG_APPLICATION = "application";
    public static final String TAG_STATE = "state";
    public static final String TAG_OUTCOME = "outcome";
    public static final String TAG_REASON = "reason";

    /** The application tag of the series that collects clients beyond {@code maxTrackedClients}. */
    public static final String OTHER_CLIENTS = "_other";

    private MeterNames() {
    }
}
