package io.connguard.core.config;

import io.connguard.core.api.ListenerInfo.ClientTlsMode;
import io.connguard.core.api.ListenerInfo.UpstreamTlsMode;
import io.connguard.core.config.ClientsConfig.IdentityField;
import io.connguard.core.config.ListenerConfig.ClientTls;
import io.connguard.core.config.ListenerConfig.UpstreamTls;
import org.yaml.snakeyaml.LoaderOptions;
import org.yaml.snakeyaml.Yaml;
import org.yaml.snakeyaml.constructor.SafeConstructor;
import org.yaml.snakeyaml.error.MarkedYAMLException;
import org.yaml.snakeyaml.error.YAMLException;
import org.yaml.snakeyaml.nodes.Node;
import org.yaml.snakeyaml.nodes.ScalarNode;

import java.io.IOException;
import java.io.StringReader;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.EnumSet;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Function;
import java.util.regex.PatternSyntaxException;

/**
 * Reads a configuration file into an immutable {@link ProxyConfig}, checking every key against the
 * schema README.md documents and reporting every error at once, each with its key path and line.
 */
public final class ConfigLoader {

    private static final Set<String> TOP = keys("admin", "listeners", "clients", "shutdown", "logging", "ioThreads", "fleet");
    private static final Set<String> ADMIN = keys("listen", "token");
    private static final Set<String> LISTENER = keys("name", "protocol", "listen", "upstream",
            "maxUpstreamConnections", "connectTimeout", "handshakeTimeout", "upstreamTls", "clientTls", "pool", "auth");
    private static final Set<String> POOL = keys("mode", "size", "minIdle", "idleTimeout", "maxLifetime", "reset");
    private static final Set<String> AUTH = keys("mode", "usersFile");
    private static final Set<String> UPSTREAM_TLS = keys("mode", "caFile");
    private static final Set<String> CLIENT_TLS = keys("mode", "certFile", "keyFile");
    private static final Set<String> CLIENTS = keys("identity", "maxTrackedClients", "defaults", "rules");
    private static final Set<String> LIMITS = keys("maxConnections", "queueTimeout", "maxQueued",
            "idleInTransactionTimeout", "idleTimeout", "leakDetectionThreshold", "maxSessionLifetime",
            "fleetMaxConnections", "maxClientConnections");
    private static final Set<String> RULE = union(keys("match"), LIMITS);
    private static final Set<String> MATCH = keys("user", "database", "application", "address", "listener");
    private static final Set<String> SHUTDOWN = keys("minDrainDelay", "drainTimeout");
    private static final Set<String> LOGGING = keys("format", "level");
    private static final Set<String> FLEET = keys("store", "name", "leaseTtl", "password", "caFile");

    static final HostPort DEFAULT_ADMIN = new HostPort("127.0.0.1", 9633);
    static final Duration DEFAULT_CONNECT_TIMEOUT = Duration.ofSeconds(5);
    static final Duration DEFAULT_HANDSHAKE_TIMEOUT = Duration.ofSeconds(10);
    static final List<IdentityField> DEFAULT_IDENTITY =
            List.of(IdentityField.USER, IdentityField.DATABASE, IdentityField.APPLICATION);
    static final int DEFAULT_MAX_TRACKED_CLIENTS = 500;
    static final int MAX_IO_THREADS = 1024;
    static final Duration DEFAULT_MIN_DRAIN_DELAY = Duration.ZERO;
    static final Duration DEFAULT_DRAIN_TIMEOUT = Duration.ofSeconds(25);

    private final Function<String, String> environment;
    private final Set<String> protocols;
    private final Map<String, Set<String>> poolModes;

    /**
     * @param environment      where {@code ${NAME}} is looked up (usually {@code System::getenv})
     * @param protocols        the protocol ids that are installed (the {@code protocol} key must name one)
     * @param poolModes        per protocol, the {@code pool.mode} values besides relay it supports
     *                         (session, transaction); a protocol missing here accepts only relay
     */
    public ConfigLoader(Function<String, String> environment, Set<String> protocols,
                        Map<String, Set<String>> poolModes) {
        this.environment = environment;
        this.protocols = Set.copyOf(protocols);
        this.poolModes = Map.copyOf(poolModes);
    }

    /** A loader for which no protocol pools (every listener must be relay). */
    public ConfigLoader(Function<String, String> environment, Set<String> protocols) {
        this(environment, protocols, Map.of());
    }

    public ProxyConfig load(Path file) throws ConfigException {
        String text;
        try {
            text = Files.readString(file);
        } catch (IOException e) {
            throw new ConfigException(List.of(new ConfigError("", 0,
                    "cannot read " + file + ": " + e.getClass().getSimpleName() + " " + e.getMessage())));
        }
        return parse(text);
    }

    public ProxyConfig parse(String text) throws ConfigException {
        List<ConfigError> errors = new ArrayList<>();
        Node root;
        try {
            LoaderOptions options = new LoaderOptions();
            options.setAllowRecursiveKeys(false);
            options.setMaxAliasesForCollections(50);
            options.setCodePointLimit(4 * 1024 * 1024);
            root = new Yaml(new SafeConstructor(options)).compose(new StringReader(text));
        } catch (MarkedYAMLException e) {
            int line = e.getProblemMark() != null ? e.getProblemMark().getLine() + 1 : 0;
            throw new ConfigException(List.of(new ConfigError("", line, "not valid YAML: " + e.getProblem())));
        } catch (YAMLException e) {
            throw new ConfigException(List.of(new ConfigError("", 0, "not valid YAML: " + e.getMessage())));
        } catch (RuntimeException e) {
            // SnakeYAML's scanner lets a few errors out unwrapped (a backslash-u escape cut off by the end of the
            // text throws NumberFormatException); the text is just as unreadable.
            throw new ConfigException(List.of(new ConfigError("", 0,
                    "not valid YAML (" + e.getClass().getSimpleName() + ": " + e.getMessage() + ")")));
        }
        YamlFields top = YamlFields.of("", root, TOP, errors, environment);
        YamlFields adminFields = top.mapping("admin", ADMIN);
        AdminConfig admin = admin(adminFields);
        List<ListenerConfig> listeners = listeners(top, errors);
        for (int i = 0; i < listeners.size(); i++) {
            if (ListenAddresses.sameSocket(admin.listen(), listeners.get(i).listen())) {
                adminFields.error("listen", "admin.listen " + admin.listen() + " binds the same socket as "
                        + "listener '" + listeners.get(i).name() + "' (listen " + listeners.get(i).listen() + ")");
            }
        }
        FleetConfig fleet = FleetConfigs.parse(top.mapping("fleet", FLEET));
        ClientsConfig clients = clients(top.mapping("clients", CLIENTS), fleet.enabled());
        ShutdownConfig shutdown = shutdown(top.mapping("shutdown", SHUTDOWN));
        LoggingConfig logging = logging(top.mapping("logging", LOGGING));
        int ioThreads = top.integer("ioThreads", 0, 0, MAX_IO_THREADS);
        if (!errors.isEmpty()) {
            throw new ConfigException(errors);
        }
        return new ProxyConfig(admin, listeners, clients, shutdown, logging, ioThreads, fleet);
    }

    private AdminConfig admin(YamlFields f) {
        HostPort listen = f.hostPort("listen", DEFAULT_ADMIN);
        String token = f.string("token", "");
        if (token.isEmpty() && !listen.isLoopback()) {
            f.error(f.has("token") ? "token" : "listen",
                    "admin.listen " + listen + " is not a loopback address, so admin.token is required");
        }
        return new AdminConfig(listen, token);
    }

    private List<ListenerConfig> listeners(YamlFields top, List<ConfigError> errors) {
        List<Node> items = top.sequence("listeners");
        if (items.isEmpty()) {
            top.error("listeners", "at least one listener is required");
        }
        List<ListenerConfig> result = new ArrayList<>();
        Map<String, String> names = new HashMap<>();
        List<String> paths = new ArrayList<>();
        for (int i = 0; i < items.size(); i++) {
            String path = "listeners[" + i + "]";
            YamlFields f = YamlFields.of(path, items.get(i), LISTENER, errors, environment);
            ListenerConfig listener = listener(f);
            if (listener == null) {
                continue;
            }
            String previous = names.putIfAbsent(listener.name(), path);
            if (previous != null) {
                f.error("name", "duplicate listener name '" + listener.name() + "' (also " + previous + ")");
            }
            for (int j = 0; j < result.size(); j++) {
                HostPort other = result.get(j).listen();
                if (ListenAddresses.sameSocket(listener.listen(), other)) {
                    f.error("listen", "duplicate listen address " + listener.listen() + " (also " + paths.get(j)
                            + ".listen " + other + ListenAddresses.why(listener.listen(), other) + ")");
                }
            }
            result.add(listener);
            paths.add(path);
        }
        return result;
    }

    private ListenerConfig listener(YamlFields f) {
        String name = f.required("name");
        String protocol = f.required("protocol");
        if (protocol != null && !protocols.contains(protocol)) {
            f.error("protocol", "unknown protocol '" + protocol + "' (installed: "
                    + String.join(", ", protocols.stream().sorted().toList()) + ")");
        }
        HostPort listen = f.has("listen") ? f.hostPort("listen", null) : null;
        if (!f.has("listen")) {
            f.required("listen");
        }
        HostPort upstream = f.has("upstream") ? f.hostPort("upstream", null) : null;
        if (!f.has("upstream")) {
            f.required("upstream");
        } else if (upstream != null && upstream.port() == 0) {
            f.error("upstream", "upstream port must not be 0");
        }
        int maxUpstream = f.integer("maxUpstreamConnections", 0, 0, 1_000_000);
        // 0 turns either off, as for every other timer: no handshake timer, no connect timeout but the OS's own.
        Duration connectTimeout = f.duration("connectTimeout", DEFAULT_CONNECT_TIMEOUT);
        Duration handshakeTimeout = f.duration("handshakeTimeout", DEFAULT_HANDSHAKE_TIMEOUT);
        YamlFields tls = f.mapping("upstreamTls", UPSTREAM_TLS);
        UpstreamTlsMode mode = tls.enumValue("mode", UpstreamTlsMode.class, UpstreamTlsMode.DISABLE);
        String caFile = tls.string("caFile");
        Path ca = null;
        if (caFile != null) {
            ca = caFilePath(tls, caFile);
        } else if (mode == UpstreamTlsMode.VERIFY_CA || mode == UpstreamTlsMode.VERIFY_FULL) {
            tls.error("caFile", "mode " + mode.name().toLowerCase().replace('_', '-') + " needs a caFile");
        }
        ClientTls clientTls = clientTls(f.mapping("clientTls", CLIENT_TLS));
        PoolConfig pool = pool(f.mapping("pool", POOL), protocol);
        AuthConfig auth = auth(f.mapping("auth", AUTH), pool);
        if (pool.pooled() && mode.enabled()) {
            f.error("upstreamTls", "upstreamTls is not supported with pool.mode " + pool.mode().key()
                    + " yet (use relay, or disable upstream TLS)");
        }
        if (name == null || protocol == null || listen == null || upstream == null) {
            return null;
        }
        return new ListenerConfig(name, protocol, listen, upstream, maxUpstream, connectTimeout, handshakeTimeout,
                new UpstreamTls(mode, ca), clientTls, pool, auth);
    }

    /**
     * {@code clientTls}: the mode, and the certificate and key files, which go together and are read here
     * (readable, PEM, the key belongs to the certificate) when the mode offers TLS; with {@code disable}
     * they are ignored.
     */
    private static ClientTls clientTls(YamlFields tls) {
        ClientTlsMode mode = tls.enumValue("mode", ClientTlsMode.class, ClientTlsMode.DISABLE);
        String certFile = blankToNull(tls.string("certFile"));
        String keyFile = blankToNull(tls.string("keyFile"));
        if ((certFile == null) != (keyFile == null)) {
            tls.error(certFile == null ? "certFile" : "keyFile", "certFile and keyFile go together: give both "
                    + "(PEM files) or neither (a self-signed certificate is made at start)");
            return new ClientTls(mode, null, null);
        }
        if (certFile == null || !mode.enabled()) {
            return new ClientTls(mode, null, null); // with disable the files are not used, so not read
        }
        Path cert = readablePath(tls, "certFile", certFile);
        Path key = readablePath(tls, "keyFile", keyFile);
        if (cert != null && key != null) {
            try {
                TlsIdentity.read(cert, key);
            } catch (TlsIdentity.Invalid e) {
                tls.error(e.field(), e.getMessage());
            }
        }
        return new ClientTls(mode, cert, key);
    }

    private static String blankToNull(String value) {
        return value == null || value.isBlank() ? null : value;
    }

    /** The file as a path, or null after an error (not a path, or not readable). */
    private static Path readablePath(YamlFields fields, String key, String file) {
        Path path;
        try {
            path = Path.of(file);
        } catch (InvalidPathException e) {
            fields.error(key, "not a valid file path: " + e.getReason());
            return null;
        }
        if (!Files.isReadable(path)) {
            fields.error(key, "cannot read " + file);
            return null;
        }
        return path;
    }

    private PoolConfig pool(YamlFields f, String protocol) {
        PoolConfig d = PoolConfig.DEFAULTS;
        PoolConfig.Mode mode = f.enumValue("mode", PoolConfig.Mode.class, d.mode());
        int size = f.integer("size", d.size(), 1, 100_000);
        int minIdle = f.integer("minIdle", d.minIdle(), 0, 100_000);
        if (minIdle > size) {
            f.error("minIdle", "must not be greater than pool.size " + size + ", got " + minIdle);
            minIdle = size;
        }
        Duration idleTimeout = f.duration("idleTimeout", d.idleTimeout());
        Duration maxLifetime = f.duration("maxLifetime", d.maxLifetime());
        PoolConfig.Reset reset = f.enumValue("reset", PoolConfig.Reset.class, d.reset());
        if (mode != PoolConfig.Mode.RELAY && protocol != null && protocols.contains(protocol)
                && !poolModes.getOrDefault(protocol, Set.of()).contains(mode.key())) {
            f.error("mode", "pool.mode " + mode.key() + " is not supported for protocol " + protocol
                    + " yet (use relay)");
        }
        return new PoolConfig(mode, size, minIdle, idleTimeout, maxLifetime, reset);
    }

    private static AuthConfig auth(YamlFields f, PoolConfig pool) {
        AuthConfig.Mode mode = f.enumValue("mode", AuthConfig.Mode.class, AuthConfig.Mode.PASSTHROUGH);
        String file = f.string("usersFile", "");
        Path usersFile = null;
        if (!file.isEmpty()) {
            if (!pool.pooled()) {
                f.error("usersFile", "auth.usersFile applies only to pooled listeners (pool.mode session or "
                        + "transaction); in relay mode the database verifies every client itself");
            }
            try {
                usersFile = Path.of(file);
                io.connguard.core.auth.UsersFile.read(usersFile);
            } catch (InvalidPathException e) {
                f.error("usersFile", "not a valid file path: " + e.getReason());
            } catch (io.connguard.core.auth.UsersFile.Invalid e) {
                f.error("usersFile", e.getMessage());
            }
        }
        return new AuthConfig(mode, usersFile);
    }

    /**
     * The CA file ({@code caFile} of {@code tls}) as a path, or null after an error (a NUL or another
     * character no path may hold); an unreadable file is an error too.
     */
    static Path caFilePath(YamlFields tls, String caFile) {
        Path ca;
        try {
            ca = Path.of(caFile);
        } catch (InvalidPathException e) {
            tls.error("caFile", "not a valid file path: " + e.getReason());
            return null;
        }
        if (!Files.isReadable(ca)) {
            tls.error("caFile", "cannot read CA file " + caFile);
        }
        return ca;
    }

    private ClientsConfig clients(YamlFields f, boolean fleet) {
        List<IdentityField> identity = DEFAULT_IDENTITY;
        if (f.has("identity")) {
            List<IdentityField> fields = new ArrayList<>();
            List<Node> items = f.sequence("identity");
            for (int i = 0; i < items.size(); i++) {
                Node item = items.get(i);
                String path = f.child("identity") + "[" + i + "]";
                IdentityField field = item instanceof ScalarNode s ? identityField(s.getValue()) : null;
                if (field == null) {
                    f.error(path, item, "expected one of user, database, application, address");
                } else if (fields.contains(field)) {
                    f.error(path, item, "duplicate identity field " + field.key());
                } else {
                    fields.add(field);
                }
            }
            if (fields.isEmpty() && items.size() > 0) {
                fields = DEFAULT_IDENTITY;
            } else if (items.isEmpty() && f.node("identity") != null) {
                f.error("identity", "must name at least one of user, database, application, address");
            }
            identity = fields.isEmpty() ? DEFAULT_IDENTITY : EnumSet.copyOf(fields).stream().toList();
        }
        int maxTracked = f.integer("maxTrackedClients", DEFAULT_MAX_TRACKED_CLIENTS, 1, 1_000_000);
        Limits defaults = limits(f.mapping("defaults", LIMITS), Limits.DEFAULTS, fleet);
        List<Rule> rules = new ArrayList<>();
        List<Node> items = f.sequence("rules");
        for (int i = 0; i < items.size(); i++) {
            YamlFields r = YamlFields.of(f.child("rules") + "[" + i + "]", items.get(i), RULE, f.errors(), environment);
            Rule rule = rule(r, fleet);
            if (rule != null) {
                rules.add(rule);
            }
        }
        return new ClientsConfig(identity, maxTracked, defaults, rules);
    }

    private static IdentityField identityField(String text) {
        for (IdentityField field : IdentityField.values()) {
            if (field.key().equals(text)) {
                return field;
            }
        }
        return null;
    }

    private Limits limits(YamlFields f, Limits base, boolean fleet) {
        return new Limits(
                f.integer("maxConnections", base.maxConnections(), 0, 1_000_000),
                f.duration("queueTimeout", base.queueTimeout()),
                f.integer("maxQueued", base.maxQueued(), 0, 1_000_000),
                f.duration("idleInTransactionTimeout", base.idleInTransactionTimeout()),
                f.duration("idleTimeout", base.idleTimeout()),
                f.duration("leakDetectionThreshold", base.leakDetectionThreshold()),
                f.duration("maxSessionLifetime", base.maxSessionLifetime()),
                FleetConfigs.cap(f, base.fleetMaxConnections(), fleet),
                f.integer("maxClientConnections", base.maxClientConnections(), 0, 1_000_000));
    }

    private Rule rule(YamlFields f, boolean fleet) {
        if (!f.has("match")) {
            f.required("match");
        }
        YamlFields m = f.mapping("match", MATCH);
        Match match = new Match(glob(m, "user"), glob(m, "database"), glob(m, "application"), address(m),
                glob(m, "listener"));
        return new Rule(match,
                f.integer("maxConnections", null, 0, 1_000_000),
                f.duration("queueTimeout", null),
                f.integer("maxQueued", null, 0, 1_000_000),
                f.duration("idleInTransactionTimeout", null),
                f.duration("idleTimeout", null),
                f.duration("leakDetectionThreshold", null),
                f.duration("maxSessionLifetime", null),
                FleetConfigs.cap(f, null, fleet),
                f.integer("maxClientConnections", null, 0, 1_000_000));
    }

    private static Match.Pattern glob(YamlFields f, String key) {
        String text = f.string(key);
        if (text == null) {
            return null;
        }
        try {
            return Glob.compile(text);
        } catch (PatternSyntaxException e) {
            f.error(key, "not a valid pattern: " + e.getDescription());
            return null;
        }
    }

    private static Match.Pattern address(YamlFields f) {
        String text = f.string("address");
        if (text == null || text.indexOf('/') < 0) {
            return glob(f, "address");
        }
        try {
            return Cidr.parse(text);
        } catch (IllegalArgumentException e) {
            f.error("address", e.getMessage());
            return null;
        }
    }

    private ShutdownConfig shutdown(YamlFields f) {
        return new ShutdownConfig(f.duration("minDrainDelay", DEFAULT_MIN_DRAIN_DELAY),
                f.duration("drainTimeout", DEFAULT_DRAIN_TIMEOUT));
    }

    private LoggingConfig logging(YamlFields f) {
        return new LoggingConfig(f.enumValue("format", LoggingConfig.Format.class, LoggingConfig.Format.TEXT),
                f.enumValue("level", LoggingConfig.Level.class, LoggingConfig.Level.INFO));
    }

    /** The keys of a mapping in the order README.md documents them (error messages list them so). */
    private static Set<String> keys(String... keys) {
        return java.util.Collections.unmodifiableSet(new java.util.LinkedHashSet<>(List.of(keys)));
    }

    private static Set<String> union(Set<String> a, Set<String> b) {
        Set<String> all = new java.util.LinkedHashSet<>(a);
        all.addAll(b);
        return java.util.Collections.unmodifiableSet(all);
    }
}
