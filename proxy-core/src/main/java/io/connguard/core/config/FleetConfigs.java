package io.connguard.core.config;

import io.connguard.core.fleet.RedisFleetStore;

import java.io.IOException;
import java.net.URI;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.time.Duration;
import java.util.regex.Pattern;

/** Reads and checks the {@code fleet} section and the {@code fleetMaxConnections} limits that depend on it. */
final class FleetConfigs {

    private static final Pattern NAME = Pattern.compile("[A-Za-z0-9._-]{1,100}");
    private static final Duration MIN_TTL = Duration.ofSeconds(1);
    private static final Duration MAX_TTL = Duration.ofHours(1);

    private FleetConfigs() {
    }

    static FleetConfig parse(YamlFields f) {
        String text = f.string("store", "");
        URI store = text.isBlank() ? null : store(f, text.strip());
        String name = f.string("name", FleetConfig.DEFAULT_NAME);
        if (!NAME.matcher(name).matches()) {
            f.error("name", "must be 1 to 100 letters, digits, '.', '_' or '-', got '" + name + "'");
        }
        Duration ttl = f.duration("leaseTtl", FleetConfig.DEFAULT_LEASE_TTL);
        if (ttl.compareTo(MIN_TTL) < 0 || ttl.compareTo(MAX_TTL) > 0) {
            f.error("leaseTtl", "must be between 1s and 1h (leases are renewed every leaseTtl/3)");
            ttl = FleetConfig.DEFAULT_LEASE_TTL;
        }
        String password = f.string("password", "");
        Path caFile = caFile(f, store);
        return new FleetConfig(store, name, ttl, password, caFile);
    }

    /**
     * {@code caFile}: a readable PEM bundle, for a {@code rediss://} store only (a plain {@code redis://} store
     * has no certificate to verify, and a CA given for it is a mistake rather than something to ignore).
     */
    private static Path caFile(YamlFields f, URI store) {
        String text = f.string("caFile", "");
        if (text.isBlank()) {
            return null;
        }
        if (store != null && !"rediss".equals(store.getScheme())) {
            f.error("caFile", "a CA file needs a TLS store (rediss://host:port/db), but fleet.store is "
                    + store.getScheme() + "://");
            return null;
        }
        Path path = ConfigLoader.caFilePath(f, text);
        if (path == null || !Files.isReadable(path)) {
            return path;
        }
        try {
            RedisFleetStore.trustManagers(path);
        } catch (IOException | GeneralSecurityException e) {
            f.error("caFile", "not a PEM CA bundle: " + e.getMessage());
        }
        return path;
    }

    /** A {@code fleetMaxConnections} value; a cap without a store is an error naming both keys. */
    static Integer cap(YamlFields f, Integer fallback, boolean fleet) {
        Integer cap = f.integer("fleetMaxConnections", fallback, 0, 1_000_000);
        if (!fleet && f.has("fleetMaxConnections") && cap != null && cap > 0) {
            f.error("fleetMaxConnections", "a fleet cap needs fleet.store (the Redis that replicas share); "
                    + "set fleet.store or remove fleetMaxConnections");
        }
        return cap;
    }

    private static URI store(YamlFields f, String text) {
        URI uri;
        try {
            uri = new URI(text);
        } catch (URISyntaxException e) {
            f.error("store", "not a valid address (redis://[user:password@]host:port/db): " + e.getReason());
            return null;
        }
        String scheme = uri.getScheme();
        if (!"redis".equals(scheme) && !"rediss".equals(scheme)) {
            f.error("store", "expected redis://[user:password@]host:port/db or rediss://... for TLS, got '"
                    + redact(uri, text) + "'");
            return null;
        }
        if (uri.getHost() == null || uri.getHost().isEmpty()) {
            f.error("store", "the address names no host: '" + redact(uri, text) + "'");
            return null;
        }
        String path = uri.getPath() == null ? "" : uri.getPath();
        if (!path.isEmpty() && !path.equals("/") && !path.matches("/\\d{1,5}")) {
            f.error("store", "the database must be a number (redis://host:6379/0), got '" + path + "'");
            return null;
        }
        if (uri.getQuery() != null || uri.getFragment() != null) {
            f.error("store", "the address takes no query or fragment: '" + redact(uri, text) + "'");
            return null;
        }
        return uri;
    }

    private static String redact(URI uri, String text) {
        return uri.getUserInfo() == null ? text : text.replace(uri.getUserInfo(), "***");
    }
}
