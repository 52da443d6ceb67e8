package io.connguard.core.config;

import java.net.URI;
import java.nio.file.Path;
import java.time.Duration;

/**
 * Where connection budgets shared by every replica live ({@code fleet}): off when {@code store} is null.
 *
 * @param store    the Redis address, {@code redis://[user:password@]host:port/db} or {@code rediss://} for TLS;
 *                 null = fleet budgets off, every cap is per process
 * @param name     replicas with the same name share budgets
 * @param leaseTtl a replica that stops renewing its leases loses them after this
 * @param password the Redis AUTH password when it is not in the address (a mounted Secret); may be empty
 * @param caFile   PEM CA bundle the Redis server's certificate is verified against with {@code rediss://};
 *                 null = the JVM's default trust store
 */
public record FleetConfig(URI store, String name, Duration leaseTtl, String password, Path caFile) {

    public static final Duration DEFAULT_LEASE_TTL = Duration.ofSeconds(15);
    public static final String DEFAULT_NAME = "default";
    public static final FleetConfig OFF = new FleetConfig(null, DEFAULT_NAME, DEFAULT_LEASE_TTL, "");

    /** A store verified (with {@code rediss://}) against the JVM's default trust store. */
    public FleetConfig(URI store, String name, Duration leaseTtl, String password) {
        this(store, name, leaseTtl, password, null);
    }

    public boolean enabled() {
        return store != null;
    }

    /** The address without its password, for logs and {@code /readyz}. */
    public String redactedStore() {
        if (store == null) {
            return "";
        }
        String user = store.getUserInfo() == null ? "" : store.getUserInfo().replaceAll(":.*", ":***") + "@";
        return store.getScheme() + "://" + user + store.getHost() + (store.getPort() < 0 ? "" : ":" + store.getPort())
                + (store.getPath() == null ? "" : store.getPath());
    }

    @Override
    public String toString() {
        return "FleetConfig[store=" + redactedStore() + ", name=" + name + ", leaseTtl=" + leaseTtl
                + (caFile == null ? "" : ", caFile=" + caFile) + "]";
    }
}
