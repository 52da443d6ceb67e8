package io.connguard.postgres;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.connguard.core.testing.Database;
import io.connguard.core.testing.RealDatabases;
import io.connguard.core.testing.TestProxy;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.Properties;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.ThreadLocalRandom;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.fail;

/**
 * What the PostgreSQL integration tests share: the real server (found by {@link RealDatabases}), a proxy
 * in front of it, connections through the proxy and straight to the server, and the test roles and TLS
 * files that {@code .ci/setup-postgres.sh} prepares (a missing one fails the test with the fix to apply).
 */
final class PgIt {

    static final String SETUP = ".ci/setup-postgres.sh (as root) prepares it";

    private PgIt() {
    }

    static Database db() {
        return RealDatabases.postgres();
    }

    /** A proxy with one plaintext listener {@code pg} in front of the server, no caps, no timers. */
    static TestProxy proxy() {
        return TestProxy.start(config(""));
    }

    /** The YAML of a proxy with listener {@code pg}; {@code defaults} are extra lines under clients.defaults. */
    static String config(String defaults) {
        return """
                listeners:
                  - name: pg
                    protocol: postgres
                    listen: 127.0.0.1:0
                    upstream: %s
                clients:
                  identity: [user, database, application]
                  defaults:
                %s""".formatted(db().hostPort(),
                (defaults.contains("maxConnections") ? defaults : "maxConnections: 0\n" + defaults).indent(4));
    }

    static String jdbcUrl(TestProxy proxy) {
        return jdbcUrl(proxy, "pg");
    }

    static String jdbcUrl(TestProxy proxy, String listener) {
        return db().jdbcUrl("127.0.0.1", proxy.port(listener));
    }

    /**
     * Driver properties: the server's test user, an application name, then {@code pairs}. pgjdbc puts
     * ApplicationName into the StartupMessage (where the proxy reads it) only when told the server is
     * 9.0 or newer; otherwise it sends {@code SET application_name} after connecting.
     */
    static Properties props(String application, String... pairs) {
        Properties props = new Properties();
        props.setProperty("user", db().user());
        props.setProperty("password", db().password());
        props.setProperty("ApplicationName", application);
        props.setProperty("assumeMinServerVersion", "9.0");
        for (int i = 0; i < pairs.length; i += 2) {
            props.setProperty(pairs[i], pairs[i + 1]);
        }
        return props;
    }

    static Connection connect(TestProxy proxy, String application, String... pairs) throws SQLException {
        return DriverManager.getConnection(jdbcUrl(proxy), props(application, pairs));
    }

    static Connection direct() throws SQLException {
        return db().connectDirect();
    }

    /** A name no other test (or engineer) uses at the same time: cg_pg_{what}_{random}. */
    static String unique(String what) {
        return "cg_pg_" + what + "_" + Long.toHexString(ThreadLocalRandom.current().nextLong() & 0xFFFFFFFFFFL);
    }

    static long longValue(Connection connection, String sql) throws SQLException {
        try (Statement statement = connection.createStatement(); ResultSet rs = statement.executeQuery(sql)) {
            rs.next();
            return rs.getLong(1);
        }
    }

    static String stringValue(Connection connection, String sql) throws SQLException {
        try (Statement statement = connection.createStatement(); ResultSet rs = statement.executeQuery(sql)) {
            rs.next();
            return rs.getString(1);
        }
    }

    static void execute(Connection connection, String sql) throws SQLException {
        try (Statement statement = connection.createStatement()) {
            statement.execute(sql);
        }
    }

    /** The {@code /sessions} entry whose application is {@code application}, or null. */
    static JsonNode session(TestProxy proxy, String application) {
        for (JsonNode session : proxy.sessions()) {
            if (session.get("application").asText().equals(application)) {
                return session;
            }
        }
        return null;
    }

    static String state(TestProxy proxy, String application) {
        JsonNode session = session(proxy, application);
        return session == null ? null : session.get("state").asText();
    }

    // ---------------------------------------------------------------- pooled listeners

    /** 1 while the backend with process id {@code pid} is alive, else 0. */
    static long backendAlive(long pid) throws SQLException {
        try (Connection d = direct()) {
            return longValue(d, "SELECT count(*) FROM pg_stat_activity WHERE pid = " + pid);
        }
    }

    /** The proxy's {@code /pools}. */
    static JsonNode pools(TestProxy proxy) throws Exception {
        return new ObjectMapper().readTree(proxy.get("/pools").body());
    }

    /** Idle server connections of the proxy's first pool (0 before it has one). */
    static int idle(TestProxy proxy) throws Exception {
        JsonNode pools = pools(proxy);
        return pools.isEmpty() ? 0 : pools.get(0).get("serverConnections").get("idle").asInt();
    }

    /**
     * Runs {@code SELECT pg_sleep(30)} on {@code s} and cancels it from another thread a second later: the
     * statement must end with 57014 (query_canceled), well before the sleep would.
     */
    static void cancelASleepAfterOneSecond(Statement s) throws Exception {
        CompletableFuture<Void> cancel = CompletableFuture.runAsync(() -> {
            try {
                Thread.sleep(1000);
                s.cancel();
            } catch (Exception e) {
                throw new RuntimeException(e);
            }
        });
        assertThatThrownBy(() -> s.execute("SELECT pg_sleep(30)"))
                .isInstanceOf(SQLException.class)
                .satisfies(e -> assertThat(((SQLException) e).getSQLState()).isEqualTo("57014"));
        cancel.get(10, TimeUnit.SECONDS);
    }

    // ---------------------------------------------------------------- what .ci/setup-postgres.sh prepares

    /** Fails unless the login role exists on the server. */
    static void requireRole(String role) throws SQLException {
        try (Connection connection = direct()) {
            if (longValue(connection, "SELECT count(*) FROM pg_roles WHERE rolname = '" + role + "'") == 0) {
                fail("the test role " + role + " does not exist on " + db().source() + "; " + SETUP);
            }
        }
    }

    /** The directory with ca.crt (the server's CA) and wrong-ca.crt. */
    static Path tlsDir() {
        String dir = System.getenv().getOrDefault("CONNGUARD_IT_POSTGRES_TLS_DIR", "/etc/connguard-it/postgres");
        Path path = Path.of(dir);
        if (!Files.isReadable(path.resolve("ca.crt")) || !Files.isReadable(path.resolve("wrong-ca.crt"))) {
            fail("no CA files in " + dir + " (set CONNGUARD_IT_POSTGRES_TLS_DIR); " + SETUP);
        }
        return path;
    }

    /** The full path of a client program, failing the test with the fix when it is not installed. */
    static String program(String name) {
        for (String dir : System.getenv().getOrDefault("PATH", "").split(":")) {
            Path candidate = Path.of(dir, name);
            if (Files.isExecutable(candidate)) {
                return candidate.toString();
            }
        }
        Path debian = Path.of("/usr/lib/postgresql");
        try (var versions = Files.list(debian)) {
            for (Path version : versions.sorted(java.util.Comparator.reverseOrder()).toList()) {
                Path candidate = version.resolve("bin").resolve(name);
                if (Files.isExecutable(candidate)) {
                    return candidate.toString();
                }
            }
        } catch (IOException ignored) {
            // not a Debian layout
        }
        return fail(name + " is not installed: apt-get install postgresql-client postgresql-contrib");
    }
}
