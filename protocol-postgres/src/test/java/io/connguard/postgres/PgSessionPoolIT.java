package io.connguard.postgres;

import com.fasterxml.jackson.databind.JsonNode;
import io.connguard.core.testing.LeakGuard;
import io.connguard.core.testing.TestProxy;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.HashMap;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static io.connguard.postgres.PgIt.backendAlive;
import static io.connguard.postgres.PgIt.execute;
import static io.connguard.postgres.PgIt.idle;
import static io.connguard.postgres.PgIt.pools;
import static io.connguard.postgres.PgIt.longValue;
import static io.connguard.postgres.PgIt.requireRole;
import static io.connguard.postgres.PgIt.stringValue;
import static io.connguard.postgres.PgIt.unique;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

/**
 * {@code pool.mode: session} against the real server with pgjdbc: a client that leaves gives its server
 * connection back, reset, to the next client; each client sees the parameters it asked for; passwords
 * are verified by the database (SCRAM) and remembered; the pool size bounds the backends; cancel
 * reaches the backend serving the client.
 */
@ExtendWith(LeakGuard.class)
class PgSessionPoolIT {

    @BeforeAll
    static void roles() throws SQLException {
        requireRole("cg_scram");
    }

    private static TestProxy proxy(String pool) {
        return TestProxy.start("""
                listeners:
                  - name: pg
                    protocol: postgres
                    listen: 127.0.0.1:0
                    upstream: %s
                    pool:
                %s
                clients:
                  defaults:
                    maxConnections: 0
                    queueTimeout: 2s
                """.formatted(PgIt.db().hostPort(), pool.indent(6)));
    }

    private static Connection login(TestProxy proxy, String user, String password, String application,
                                      String... pairs) throws SQLException {
        Properties props = new Properties();
        props.setProperty("user", user);
        props.setProperty("password", password);
        props.setProperty("ApplicationName", application);
        props.setProperty("assumeMinServerVersion", "9.0");
        for (int i = 0; i < pairs.length; i += 2) {
            props.setProperty(pairs[i], pairs[i + 1]);
        }
        return DriverManager.getConnection(PgIt.jdbcUrl(proxy), props);
    }

    private static Connection connect(TestProxy proxy, String application, String... pairs) throws SQLException {
        return login(proxy, PgIt.db().user(), PgIt.db().password(), application, pairs);
    }

    @Test
    void theNextClientGetsTheSameBackendResetWithItsOwnParameters() throws Exception {
        try (TestProxy proxy = proxy("mode: session\nsize: 2")) {
            String first = unique("first");
            String second = unique("second");
            long pid;
            try (Connection c = connect(proxy, first, "options", "-c search_path=pg_catalog,public")) {
                pid = longValue(c, "SELECT pg_backend_pid()");
                assertThat(stringValue(c, "SHOW application_name")).isEqualTo(first);
                assertThat(stringValue(c, "SHOW search_path")).isEqualTo("pg_catalog,public");
                execute(c, "CREATE TEMP TABLE cg_pool_tmp (n int)");
                execute(c, "SET statement_timeout = '7s'");
                JsonNode session = PgIt.session(proxy, first);
                assertThat(session.get("serverConnection").isNumber()).isTrue();
                assertThat(session.get("pinReason").isNull()).isTrue();
            }
            await().atMost(10, TimeUnit.SECONDS).until(() -> idle(proxy) == 1);
            try (Connection c = connect(proxy, second)) {
                assertThat(longValue(c, "SELECT pg_backend_pid()")).as("the pooled backend is reused").isEqualTo(pid);
                assertThat(stringValue(c, "SHOW application_name")).isEqualTo(second);
                assertThat(stringValue(c, "SHOW search_path")).isEqualTo("\"$user\", public");
                assertThat(stringValue(c, "SHOW statement_timeout")).isEqualTo("0");
                assertThat(longValue(c, "SELECT count(*) FROM pg_class WHERE relname = 'cg_pool_tmp'"
                        + " AND relpersistence = 't'")).as("DISCARD ALL dropped the temp table").isZero();
            }
            assertThat(proxy.scrape().value("connguard_pool_server_connections", "listener", "pg", "state", "idle"))
                    .isGreaterThanOrEqualTo(0.0);
        }
    }

    @Test
    void passwordsAreVerifiedByTheDatabaseAndRemembered() throws Exception {
        try (TestProxy proxy = proxy("mode: session\nsize: 2")) {
            assertThatThrownBy(() -> login(proxy, "cg_scram", "wrong", unique("wrong")).close())
                    .isInstanceOf(SQLException.class)
                    .satisfies(e -> assertThat(((SQLException) e).getSQLState()).isEqualTo("28P01"));
            long pid;
            try (Connection c = login(proxy, "cg_scram", "cg_scram_pw", unique("right"))) {
                assertThat(stringValue(c, "SELECT current_user")).isEqualTo("cg_scram");
                pid = longValue(c, "SELECT pg_backend_pid()");
            }
            await().atMost(10, TimeUnit.SECONDS).until(() -> idle(proxy) == 1);
            try (Connection c = login(proxy, "cg_scram", "cg_scram_pw", unique("again"))) {
                assertThat(longValue(c, "SELECT pg_backend_pid()")).as("admitted onto the pooled connection")
                        .isEqualTo(pid);
            }
            await().atMost(10, TimeUnit.SECONDS).until(() -> idle(proxy) == 1);
            assertThatThrownBy(() -> login(proxy, "cg_scram", "wrong", unique("wrong")).close())
                    .as("a wrong password is refused on a pool that has a remembered one")
                    .isInstanceOf(SQLException.class)
                    .satisfies(e -> assertThat(((SQLException) e).getSQLState()).isEqualTo("28P01"));
        }
    }

    @Test
    void aUsersFileChecksClientsAndLogsInWithItsPassword(@org.junit.jupiter.api.io.TempDir java.nio.file.Path dir)
            throws Exception {
        requireRole("cg_md5");
        java.nio.file.Path users = dir.resolve("userlist.txt");
        java.nio.file.Files.writeString(users, "\"cg_md5\" \"cg_md5_pw\"\n");
        try (TestProxy proxy = TestProxy.start("""
                listeners:
                  - name: pg
                    protocol: postgres
                    listen: 127.0.0.1:0
                    upstream: %s
                    pool:
                      mode: session
                      size: 2
                    auth:
                      usersFile: %s
                clients:
                  defaults:
                    maxConnections: 0
                """.formatted(PgIt.db().hostPort(), users))) {
            assertThatThrownBy(() -> login(proxy, "cg_md5", "wrong", unique("file")).close())
                    .isInstanceOf(SQLException.class)
                    .satisfies(e -> assertThat(((SQLException) e).getSQLState()).isEqualTo("28P01"));
            JsonNode pool = pools(proxy).get(0).get("serverConnections");
            assertThat(pool.get("active").asInt() + pool.get("idle").asInt())
                    .as("a password the file refuses opens no server connection").isZero();
            try (Connection c = login(proxy, "cg_md5", "cg_md5_pw", unique("file"))) {
                assertThat(stringValue(c, "SELECT current_user")).isEqualTo("cg_md5");
            }
        }
    }

    @Test
    void theSizeBoundsTheBackendsAndAWaiterGetsTheNextOne() throws Exception {
        try (TestProxy proxy = proxy("mode: session\nsize: 1")) {
            String app = unique("size");
            Connection held = connect(proxy, app);
            long pid = longValue(held, "SELECT pg_backend_pid()");
            CompletableFuture<Long> waiter = CompletableFuture.supplyAsync(() -> {
                try (Connection c = connect(proxy, app)) {
                    return longValue(c, "SELECT pg_backend_pid()");
                } catch (SQLException e) {
                    throw new RuntimeException(e);
                }
            });
            await().atMost(10, TimeUnit.SECONDS).until(() -> waiting(proxy) == 1);
            held.close();
            assertThat(waiter.get(10, TimeUnit.SECONDS)).isEqualTo(pid);
            try (Connection a = connect(proxy, app)) {
                assertThatThrownBy(() -> connect(proxy, app).close())
                        .isInstanceOf(SQLException.class)
                        .satisfies(e -> assertThat(((SQLException) e).getSQLState()).isEqualTo("53300"));
            }
        }
    }

    @Test
    void cancelReachesTheBackendServingTheClient() throws Exception {
        try (TestProxy proxy = proxy("mode: session\nsize: 2"); Connection c = connect(proxy, unique("cancel"))) {
            try (Statement s = c.createStatement()) {
                PgIt.cancelASleepAfterOneSecond(s);
            }
            assertThat(longValue(c, "SELECT 1")).isEqualTo(1);
        }
    }

    @org.junit.jupiter.params.ParameterizedTest
    @org.junit.jupiter.params.provider.ValueSource(strings = {"simple", "extended", "prepared"})
    void pgbenchConnectingPerTransactionRunsOnAtMostSizeBackends(String mode) throws Exception {
        // One thread per client: pgbench connects synchronously, so a thread whose next client waits for the
        // pool could not finish the transaction of another of its clients that holds a server connection.
        java.nio.file.Path script = java.nio.file.Files.createTempFile("cg-pool", ".sql");
        java.nio.file.Files.writeString(script, "\\set x random(1, 1000)\nSELECT :x::int + 1;\n");
        try (TestProxy proxy = proxy("mode: session\nsize: 3")) {
            PgTool.Result result = PgTool.run(PgTool.env(proxy, unique("pgbench")), 300, "pgbench", "-n", "-C",
                    "-M", mode, "-c", "6", "-j", "6", "-t", "20", "-f", script.toString());
            assertThat(result.exitCode()).as(result.toString()).isZero();
            assertThat(result.out()).as(result.toString())
                    .contains("number of transactions actually processed: 120/120")
                    .contains("number of failed transactions: 0 (0.000%)");
            JsonNode pool = pools(proxy).get(0).get("serverConnections");
            assertThat(pool.get("active").asInt() + pool.get("idle").asInt()).as("at most pool.size backends")
                    .isBetween(1, 3);
            assertThat(proxy.scrape().value("connguard_pool_wait_seconds_count", "listener", "pg"))
                    .as("every connection checked out once (pgbench also opens one of its own first)")
                    .isBetween(120.0, 121.0);
        } finally {
            java.nio.file.Files.deleteIfExists(script);
        }
    }

    @Test
    void psqlConnectingTwiceReusesTheBackendAndIsNotAskedForAPassword() throws Exception {
        try (TestProxy proxy = proxy("mode: session\nsize: 2")) {
            java.util.Map<String, String> env = new java.util.HashMap<>(PgTool.env(proxy, unique("psql")));
            env.remove("PGPASSWORD"); // a trust user: psql must not be asked for one
            PgTool.Result first = PgTool.run(env, 60, "psql", "-w", "-X", "-A", "-t", "-c", "SELECT pg_backend_pid()");
            await().atMost(10, TimeUnit.SECONDS).until(() -> idle(proxy) == 1);
            PgTool.Result second = PgTool.run(env, 60, "psql", "-w", "-X", "-A", "-t", "-c", "SELECT pg_backend_pid()");
            assertThat(first.exitCode()).as(first.toString()).isZero();
            assertThat(second.exitCode()).as(second.toString()).isZero();
            assertThat(second.out().strip()).as("the same pooled backend").isEqualTo(first.out().strip());
        }
    }

    @Test
    void anIdleConnectionIsClosedAfterIdleTimeout() throws Exception {
        try (TestProxy proxy = proxy("mode: session\nsize: 2\nidleTimeout: 1s")) {
            long pid;
            try (Connection c = connect(proxy, unique("idle"))) {
                pid = longValue(c, "SELECT pg_backend_pid()");
            }
            await().atMost(20, TimeUnit.SECONDS).until(() -> backendAlive(pid) == 0);
            assertThat(idle(proxy)).isZero();
        }
    }

    @Test
    void minIdleKeepsWarmBackendsThatIdleTimeoutDoesNotClose() throws Exception {
        try (TestProxy proxy = proxy("mode: session\nsize: 4\nminIdle: 2\nidleTimeout: 1s")) {
            try (Connection c = connect(proxy, unique("warm"))) {
                assertThat(longValue(c, "SELECT 1")).isEqualTo(1);
                // The database asks this user no password, so the pool logs in a warm one without a client.
                await().atMost(20, TimeUnit.SECONDS).until(() -> idle(proxy) == 2);
            }
            await().atMost(20, TimeUnit.SECONDS).until(() -> idle(proxy) == 3);
            // Past idleTimeout the pool closes what is beyond minIdle, and keeps two.
            await().atMost(20, TimeUnit.SECONDS).until(() -> idle(proxy) == 2);
            Thread.sleep(2500); // more than two idleTimeouts and reaper passes: still two, none reopened in between
            assertThat(idle(proxy)).isEqualTo(2);
            JsonNode pool = pools(proxy).get(0);
            assertThat(pool.get("serverConnections").get("active").asInt()).isZero();
            try (Connection c = connect(proxy, unique("warm2"))) {
                assertThat(longValue(c, "SELECT 1")).isEqualTo(1);
                assertThat(idle(proxy)).as("the next client took a warm one").isEqualTo(1);
            }
        }
    }

    @Test
    void aBackendOlderThanMaxLifetimeIsClosedWhenReturnedNeverWhileInUse() throws Exception {
        try (TestProxy proxy = proxy("mode: session\nsize: 2\nmaxLifetime: 2s")) {
            long pid;
            try (Connection c = connect(proxy, unique("lifetime"))) {
                pid = longValue(c, "SELECT pg_backend_pid()");
                Thread.sleep(3000); // older than maxLifetime while the client uses it
                assertThat(longValue(c, "SELECT pg_backend_pid()")).as("not closed under its client").isEqualTo(pid);
            }
            await().atMost(10, TimeUnit.SECONDS).until(() -> backendAlive(pid) == 0);
            try (Connection c = connect(proxy, unique("lifetime2"))) {
                assertThat(longValue(c, "SELECT pg_backend_pid()")).as("a new backend").isNotEqualTo(pid);
            }
        }
    }

    @Test
    void aProtocol32ClientIsAnswered30AndItsCancelReachesTheBackendServingIt() throws Exception {
        Map<String, String> libpq = PgTool.libpq(18);
        try (TestProxy proxy = proxy("mode: transaction\nsize: 2")) {
            String app = unique("proto32");
            Map<String, String> env = new HashMap<>(PgTool.env(proxy, app));
            env.putAll(libpq);
            // libpq 18 asks for 3.2 only when told to; one that insists on it learns the pool speaks 3.0.
            Map<String, String> insists = new HashMap<>(env);
            insists.put("PGMINPROTOCOLVERSION", "3.2");
            insists.put("PGMAXPROTOCOLVERSION", "3.2");
            PgTool.Result refused = PgTool.run(insists, 60, "psql", "-X", "-At", "-c", "SELECT 1");
            assertThat(refused.exitCode()).as(refused.toString()).isNotZero();
            assertThat(refused.err()).contains("protocol version");

            env.put("PGMAXPROTOCOLVERSION", "3.2");
            Process psql = PgTool.start(env, "psql", "-X", "-c", "SELECT pg_sleep(60)");
            try (Connection d = PgIt.direct()) {
                await().atMost(20, TimeUnit.SECONDS).until(() -> longValue(d, "SELECT count(*) FROM pg_stat_activity"
                        + " WHERE application_name = '" + app + "' AND state = 'active'") == 1);
            }
            PgTool.signal(psql, "INT");
            PgTool.Result result = PgTool.finish(psql, 30);
            assertThat(result.exitCode()).as(result.toString()).isEqualTo(1);
            assertThat(result.err()).contains("Cancel request sent").contains("canceling statement due to user request");

            try (Connection c = connect(proxy, unique("proto32jdbc"), "protocolVersion", "3.2")) {
                assertThat(longValue(c, "SELECT 32")).as("pgjdbc asking for 3.2 goes on with 3.0").isEqualTo(32);
            }
        }
    }

    @Test
    void anIdleInTransactionKillClosesTheServerConnectionAndRollsBack() throws Exception {
        String table = unique("iit");
        try (TestProxy proxy = TestProxy.start("""
                listeners:
                  - name: pg
                    protocol: postgres
                    listen: 127.0.0.1:0
                    upstream: %s
                    pool:
                      mode: session
                      size: 2
                clients:
                  defaults:
                    maxConnections: 0
                    idleInTransactionTimeout: 1s
                """.formatted(PgIt.db().hostPort()));
             Connection setup = PgIt.direct()) {
            execute(setup, "CREATE TABLE " + table + " (n int)");
            try (Connection c = connect(proxy, unique("iit"))) {
                long pid = longValue(c, "SELECT pg_backend_pid()");
                c.setAutoCommit(false);
                execute(c, "INSERT INTO " + table + " VALUES (1)");
                await().atMost(20, TimeUnit.SECONDS).until(() -> backendAlive(pid) == 0);
                assertThatThrownBy(() -> execute(c, "SELECT 1")).isInstanceOf(SQLException.class)
                        .satisfies(e -> assertThat(((SQLException) e).getSQLState()).isEqualTo("25P03"));
                assertThat(longValue(setup, "SELECT count(*) FROM " + table)).as("rolled back").isZero();
            } finally {
                execute(setup, "DROP TABLE " + table);
            }
        }
    }



    private static int waiting(TestProxy proxy) throws Exception {
        JsonNode pools = pools(proxy);
        return pools.isEmpty() ? 0 : pools.get(0).get("waiting").asInt();
    }

}
