package io.connguard.mysql;

import io.connguard.core.testing.Database;
import io.connguard.core.testing.RealDatabases;
import io.connguard.core.testing.TestProxy;

import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.Properties;

/**
 * What the MySQL integration tests share: the real server (found by {@link RealDatabases}), the test
 * accounts (prefix {@code cg_my_}, created here through the server's admin account so that a server
 * from the environment or Testcontainers works too; {@code .ci/setup-mariadb.sh} creates the same), and
 * proxies in front of it.
 */
final class MySqlIt {

    static final String NATIVE_USER = "cg_my_native";
    static final String NATIVE_PASSWORD = "cg_my_native_pw";
    static final String OTHER_USER = "cg_my_other";
    static final String OTHER_PASSWORD = "cg_my_other_pw";
    static final String ED25519_USER = "cg_my_ed25519";
    static final String ED25519_PASSWORD = "cg_my_ed25519_pw";
    /** The CA that {@code .ci/setup-mariadb.sh} made the local server's certificate with. */
    static final Path LOCAL_CA = Path.of("/etc/mysql/cg-tls/ca.pem");

    private static boolean prepared;
    private static boolean ed25519;

    private MySqlIt() {
    }

    static Database database() {
        Database db = RealDatabases.mysql();
        prepare(db);
        return db;
    }

    /** True when the server has the ed25519 plugin and the ed25519 test account exists. */
    static boolean hasEd25519() {
        database();
        return ed25519;
    }

    private static synchronized void prepare(Database db) {
        if (prepared) {
            return;
        }
        try (Connection admin = db.connectDirect(); Statement s = admin.createStatement()) {
            for (String[] account : new String[][] {{NATIVE_USER, NATIVE_PASSWORD}, {OTHER_USER, OTHER_PASSWORD}}) {
                s.execute("CREATE USER IF NOT EXISTS '" + account[0] + "'@'%' IDENTIFIED BY '" + account[1] + "'");
                s.execute("GRANT ALL PRIVILEGES ON `" + db.database() + "`.* TO '" + account[0] + "'@'%'");
            }
            s.execute("GRANT PROCESS ON *.* TO '" + NATIVE_USER + "'@'%'");
            try (ResultSet rs = s.executeQuery("SELECT PLUGIN_STATUS FROM information_schema.PLUGINS WHERE PLUGIN_NAME = 'ed25519'")) {
                ed25519 = rs.next() && "ACTIVE".equals(rs.getString(1));
            }
            if (!ed25519) {
                try {
                    s.execute("INSTALL SONAME 'auth_ed25519'");
                    ed25519 = true;
                } catch (SQLException notAvailable) {
                    ed25519 = false;
                }
            }
            if (ed25519) {
                s.execute("CREATE USER IF NOT EXISTS '" + ED25519_USER + "'@'%' IDENTIFIED VIA ed25519 USING PASSWORD('"
                        + ED25519_PASSWORD + "')");
                s.execute("GRANT ALL PRIVILEGES ON `" + db.database() + "`.* TO '" + ED25519_USER + "'@'%'");
            }
            s.execute("SET GLOBAL local_infile = 1");
            s.execute("SET GLOBAL max_connections = GREATEST(@@max_connections, 600)");
            s.execute("SET GLOBAL max_allowed_packet = GREATEST(@@max_allowed_packet, 268435456)");
        } catch (SQLException e) {
            throw new IllegalStateException("cannot prepare the test accounts on " + db.source() + ": " + e.getMessage(), e);
        }
        prepared = true;
    }

    /** A proxy with one listener "my" in front of the server, no caps, no timers. */
    static TestProxy proxy() {
        return proxy("", "");
    }

    /**
     * A proxy with one listener "my"; {@code listenerExtra} are listener lines (indented 4), {@code defaults}
     * replace the client defaults (indented 4; empty: no caps, no timers).
     */
    static TestProxy proxy(String listenerExtra, String defaults) {
        return proxyTo(database().hostPort(), listenerExtra, defaults);
    }

    /** As {@link #proxy(String, String)}, with the listener's upstream at {@code upstream} (host:port). */
    static TestProxy proxyTo(String upstream, String listenerExtra, String defaults) {
        String clientDefaults = defaults.isEmpty()
                ? "    maxConnections: 0\n    idleInTransactionTimeout: 0\n    leakDetectionThreshold: 0\n" : defaults;
        return TestProxy.start("""
                listeners:
                  - name: my
                    protocol: mysql
                    listen: 127.0.0.1:0
                    upstream: %s
                    handshakeTimeout: 30s
                %s
                clients:
                  defaults:
                %s
                """.formatted(upstream, listenerExtra, clientDefaults));
    }

    static String mysqlUrl(TestProxy proxy, String parameters) {
        return database().jdbcUrl("127.0.0.1", proxy.port("my")) + "?" + parameters;
    }

    static String mariadbUrl(TestProxy proxy, String parameters) {
        return database().mariadbUrl("127.0.0.1", proxy.port("my")) + "?" + parameters;
    }

    static Connection connect(String url, String user, String password) throws SQLException {
        Properties properties = new Properties();
        properties.setProperty("user", user);
        properties.setProperty("password", password);
        return DriverManager.getConnection(url, properties);
    }

    /**
     * The tracker followed every response of the traffic so far: no session of the proxy lost sync
     * (which would show it as {@code unknown} and stop enforcing its limits).
     */
    static void assertTrackerInSync(TestProxy proxy) {
        java.util.regex.Matcher lost = java.util.regex.Pattern
                .compile("(?m)^connguard_listener_lost_sync_total\\{[^}]*\\} (\\S+)$").matcher(proxy.metrics());
        org.assertj.core.api.Assertions.assertThat(lost.find()).as("the lost-sync counter in /metrics").isTrue();
        org.assertj.core.api.Assertions.assertThat(Double.parseDouble(lost.group(1))).as("sessions that lost sync").isZero();
    }

    static boolean localCaReadable() {
        return Files.isReadable(LOCAL_CA);
    }
}
