package io.connguard.mysql;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;
import io.connguard.core.testing.LeakGuard;
import io.connguard.core.testing.TestProxy;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

/**
 * {@code pool.mode: session} on a MySQL listener against the local MariaDB: server connections logged in by
 * connguard with the client's password (caching_sha2_password's RSA exchange on the plaintext client leg),
 * reused by the next client after COM_RESET_CONNECTION without any of the previous client's state, bounded
 * by {@code pool.size}, with wrong passwords refused with 1045 on every path, and KILL reaching the server
 * connection behind the id the client was greeted with. Server threads are counted for this test's own
 * account only ({@code cg_my_pool}).
 */
@ExtendWith(LeakGuard.class)
class MySqlSessionPoolIT {

    static final String USER = "cg_my_pool";
    static final String PASSWORD = "cg_my_pool_pw";
    private static final String JDBC = "sslMode=DISABLED&allowPublicKeyRetrieval=true";

    @BeforeAll
    static void account() throws SQLException {
        try (Connection admin = MySqlIt.database().connectDirect(); Statement s = admin.createStatement()) {
            s.execute("CREATE USER IF NOT EXISTS '" + USER + "'@'%' IDENTIFIED BY '" + PASSWORD + "'");
            s.execute("GRANT ALL PRIVILEGES ON `" + MySqlIt.database().database() + "`.* TO '" + USER + "'@'%'");
        }
    }

    private static TestProxy proxy(String pool) {
        return MySqlIt.proxy("    pool:\n" + pool.indent(6), """
                    maxConnections: 0
                    queueTimeout: 10s
                    idleInTransactionTimeout: 0
                    leakDetectionThreshold: 0
                """);
    }

    private static Connection connect(TestProxy proxy, String password) throws SQLException {
        return MySqlIt.connect(MySqlIt.mysqlUrl(proxy, JDBC), USER, password);
    }

    /** The thread ids of this test account's connections on the server, seen from a direct connection. */
    static Set<Long> serverThreads() throws SQLException {
        Set<Long> ids = new HashSet<>();
        try (Connection admin = MySqlIt.database().connectDirect(); Statement s = admin.createStatement();
             ResultSet rs = s.executeQuery("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = '" + USER + "'")) {
            while (rs.next()) {
                ids.add(rs.getLong(1));
            }
        }
        return ids;
    }

    private static String text(Connection c, String sql) throws SQLException {
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery(sql)) {
            rs.next();
            return rs.getString(1);
        }
    }

    private static JsonNode pool(TestProxy proxy) throws Exception {
        JsonNode pools = new ObjectMapper().readTree(proxy.get("/pools").body());
        for (JsonNode p : pools) {
            if (USER.equals(p.get("user").asText())) {
                return p;
            }
        }
        return null;
    }

    private static int idle(TestProxy proxy) throws Exception {
        JsonNode p = pool(proxy);
        return p == null ? 0 : p.get("serverConnections").get("idle").asInt();
    }

    @Test
    void theNextClientReusesTheServerThreadWithNoneOfThePreviousClientsState() throws Exception {
        try (TestProxy proxy = proxy("mode: session\nsize: 2")) {
            long thread;
            String globalSqlMode;
            String globalTimeZone;
            try (Connection c = connect(proxy, PASSWORD)) {
                thread = Long.parseLong(text(c, "SELECT CONNECTION_ID()"));
                globalSqlMode = text(c, "SELECT @@GLOBAL.sql_mode");
                globalTimeZone = text(c, "SELECT @@GLOBAL.time_zone");
                try (Statement s = c.createStatement()) {
                    s.execute("SET SESSION sql_mode = 'ANSI_QUOTES'");
                    s.execute("SET time_zone = '+05:00'");
                    s.execute("SET @cg_pool_secret = 42");
                    s.execute("CREATE TEMPORARY TABLE cg_pool_tmp (n INT)");
                    s.execute("SET SESSION TRANSACTION ISOLATION LEVEL SERIALIZABLE");
                }
                assertThat(text(c, "SELECT @cg_pool_secret")).isEqualTo("42");
                assertThat(serverThreads()).containsExactly(thread);
                JsonNode session = proxy.sessions().get(0);
                assertThat(session.get("serverConnection").isNumber()).as("/sessions names the server connection").isTrue();
            }
            await().atMost(Duration.ofSeconds(10)).until(() -> idle(proxy) == 1);
            try (Connection c = connect(proxy, PASSWORD)) {
                assertThat(Long.parseLong(text(c, "SELECT CONNECTION_ID()"))).as("the warm server thread is reused")
                        .isEqualTo(thread);
                assertThat(serverThreads()).containsExactly(thread);
                assertThat(text(c, "SELECT @@SESSION.sql_mode")).isEqualTo(globalSqlMode);
                assertThat(text(c, "SELECT @@SESSION.time_zone")).isEqualTo(globalTimeZone);
                assertThat(text(c, "SELECT @cg_pool_secret")).as("the user variable of client 1").isNull();
                assertThat(text(c, "SELECT @@SESSION.tx_isolation")).isEqualTo(text(c, "SELECT @@GLOBAL.tx_isolation"));
                assertThatThrownBy(() -> text(c, "SELECT COUNT(*) FROM cg_pool_tmp")).as("client 1's temporary table")
                        .isInstanceOfSatisfying(SQLException.class, e -> assertThat(e.getErrorCode()).isEqualTo(1146));
                assertThat(text(c, "SELECT DATABASE()")).isEqualTo(MySqlIt.database().database());
                assertThat(text(c, "SELECT CURRENT_USER()")).isEqualTo(USER + "@%");
            }
            assertThat(proxy.metrics()).contains("connguard_pool_server_connections{");
            JsonNode p = pool(proxy);
            assertThat(p.get("listener").asText()).isEqualTo("my");
            assertThat(p.get("database").asText()).isEqualTo(MySqlIt.database().database());
            MySqlIt.assertTrackerInSync(proxy);
        }
    }

    @Test
    void wrongPasswordsGet1045OnEveryPath() throws Exception {
        try (TestProxy proxy = proxy("mode: session\nsize: 2")) {
            assertThatThrownBy(() -> connect(proxy, "wrong").close()).as("the first login of the pool")
                    .isInstanceOfSatisfying(SQLException.class, e -> assertThat(e.getErrorCode()).isEqualTo(1045));
            try (Connection c = connect(proxy, PASSWORD)) {
                assertThat(text(c, "SELECT 1")).isEqualTo("1");
            }
            await().atMost(Duration.ofSeconds(10)).until(() -> idle(proxy) == 1);
            assertThatThrownBy(() -> connect(proxy, "wrong").close()).as("with a remembered password")
                    .isInstanceOfSatisfying(SQLException.class, e -> assertThat(e.getErrorCode()).isEqualTo(1045));
            assertThatThrownBy(() -> connect(proxy, "").close()).as("an empty password")
                    .isInstanceOfSatisfying(SQLException.class, e -> assertThat(e.getErrorCode()).isEqualTo(1045));
            try (Connection c = connect(proxy, PASSWORD)) {
                assertThat(text(c, "SELECT CURRENT_USER()")).isEqualTo(USER + "@%");
            }
        }
    }

    @Test
    void aUsersFileChecksClientsAndLogsInWithItsPassword(@TempDir Path dir) throws Exception {
        Path users = dir.resolve("users.txt");
        Files.writeString(users, "\"" + USER + "\" \"" + PASSWORD + "\"\n", StandardCharsets.UTF_8);
        try (TestProxy proxy = MySqlIt.proxy("    pool:\n      mode: session\n      size: 2\n      minIdle: 1\n"
                + "    auth:\n      usersFile: " + users + "\n", "")) {
            assertThatThrownBy(() -> connect(proxy, "wrong").close())
                    .isInstanceOfSatisfying(SQLException.class, e -> assertThat(e.getErrorCode()).isEqualTo(1045));
            try (Connection c = connect(proxy, PASSWORD)) {
                assertThat(text(c, "SELECT CURRENT_USER()")).isEqualTo(USER + "@%");
            }
        }
    }

    @Test
    void hikariWithServerPreparedStatementsHoldsAtMostThePoolsServerThreads() throws Exception {
        try (TestProxy proxy = proxy("mode: session\nsize: 4")) {
            HikariConfig config = new HikariConfig();
            config.setJdbcUrl(MySqlIt.mysqlUrl(proxy, JDBC + "&useServerPrepStmts=true&cachePrepStmts=true"));
            config.setUsername(USER);
            config.setPassword(PASSWORD);
            config.setMaximumPoolSize(4);
            config.setMinimumIdle(4);
            ExecutorService threads = Executors.newFixedThreadPool(8);
            try (HikariDataSource ds = new HikariDataSource(config)) {
                List<Future<Long>> results = new ArrayList<>();
                for (int worker = 0; worker < 8; worker++) {
                    int w = worker;
                    results.add(threads.submit(() -> {
                        long sum = 0;
                        for (int q = 0; q < 50; q++) {
                            try (Connection c = ds.getConnection();
                                 PreparedStatement p = c.prepareStatement("SELECT ? + 1")) {
                                p.setInt(1, w * 1000 + q);
                                try (ResultSet rs = p.executeQuery()) {
                                    rs.next();
                                    sum += rs.getLong(1);
                                }
                            }
                        }
                        return sum;
                    }));
                }
                long total = 0;
                for (Future<Long> r : results) {
                    total += r.get(60, TimeUnit.SECONDS);
                }
                long expected = 0;
                for (int w = 0; w < 8; w++) {
                    for (int q = 0; q < 50; q++) {
                        expected += w * 1000L + q + 1;
                    }
                }
                assertThat(total).isEqualTo(expected);
                assertThat(serverThreads()).hasSizeLessThanOrEqualTo(4);
            } finally {
                threads.shutdownNow();
            }
            MySqlIt.assertTrackerInSync(proxy);
        }
    }

    @Test
    void aConnectPerRequestLoopHoldsAtMostThePoolsServerThreads() throws Exception {
        try (TestProxy proxy = proxy("mode: session\nsize: 3")) {
            ExecutorService threads = Executors.newFixedThreadPool(6);
            Set<Long> seen = java.util.concurrent.ConcurrentHashMap.newKeySet();
            AtomicInteger most = new AtomicInteger();
            try (Connection warm = connect(proxy, PASSWORD)) {
                // The pool's first login verifies the password; the loop's clients are then admitted on it.
                seen.add(Long.parseLong(text(warm, "SELECT CONNECTION_ID()")));
            }
            try {
                List<Future<?>> loops = new ArrayList<>();
                for (int worker = 0; worker < 6; worker++) {
                    loops.add(threads.submit(() -> {
                        for (int i = 0; i < 40; i++) {
                            try (Connection c = connect(proxy, PASSWORD)) {
                                seen.add(Long.parseLong(text(c, "SELECT CONNECTION_ID()")));
                            }
                        }
                        return null;
                    }));
                }
                CompletableFuture<Void> watch = CompletableFuture.runAsync(() -> {
                    while (!loops.stream().allMatch(Future::isDone)) {
                        try {
                            most.accumulateAndGet(serverThreads().size(), Math::max);
                            Thread.sleep(20);
                        } catch (Exception e) {
                            throw new IllegalStateException(e);
                        }
                    }
                });
                for (Future<?> loop : loops) {
                    loop.get(120, TimeUnit.SECONDS);
                }
                watch.get(10, TimeUnit.SECONDS);
            } finally {
                threads.shutdownNow();
            }
            assertThat(seen).as("server threads that served 241 connections").hasSizeLessThanOrEqualTo(3);
            assertThat(most.get()).as("server threads at any time").isLessThanOrEqualTo(3);
            assertThat(serverThreads()).hasSizeLessThanOrEqualTo(3);
        }
    }

    @Test
    void aClientsCapCountsItsServerConnectionsAndTheNextOneWaitsThenIsRefused() throws Exception {
        try (TestProxy proxy = MySqlIt.proxy("    pool:\n      mode: session\n      size: 4\n", """
                    maxConnections: 1
                    queueTimeout: 1s
                    idleInTransactionTimeout: 0
                    leakDetectionThreshold: 0
                """);
             Connection first = connect(proxy, PASSWORD)) {
            assertThat(text(first, "SELECT 1")).isEqualTo("1");
            long started = System.nanoTime();
            assertThatThrownBy(() -> connect(proxy, PASSWORD).close())
                    .isInstanceOfSatisfying(SQLException.class, e -> assertThat(e.getErrorCode()).isIn(1040, 1226));
            assertThat(TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - started)).as("it waited in the queue")
                    .isGreaterThanOrEqualTo(900);
            assertThat(serverThreads()).hasSize(1);
        }
    }

    @Test
    void anIdleInTransactionKillRollsBackAndClosesTheServerConnectionInsteadOfPoolingIt() throws Exception {
        String table = "cg_my_pool_iit";
        try (Connection admin = MySqlIt.database().connectDirect(); Statement s = admin.createStatement()) {
            s.execute("CREATE TABLE IF NOT EXISTS " + table + " (n int) ENGINE=InnoDB");
            s.execute("DELETE FROM " + table);
        }
        try (TestProxy proxy = MySqlIt.proxy("    pool:\n      mode: session\n      size: 2\n", """
                    maxConnections: 0
                    queueTimeout: 10s
                    idleInTransactionTimeout: 1s
                    leakDetectionThreshold: 0
                """)) {
            long thread;
            try (Connection c = connect(proxy, PASSWORD); Statement s = c.createStatement()) {
                thread = Long.parseLong(text(c, "SELECT CONNECTION_ID()"));
                c.setAutoCommit(false);
                s.executeUpdate("INSERT INTO " + table + " VALUES (1)");
                await().atMost(20, TimeUnit.SECONDS).until(() -> !serverThreads().contains(thread));
                assertThatThrownBy(() -> text(c, "SELECT 1")).as("the killed client is told, by error or closed link")
                        .isInstanceOf(SQLException.class);
            }
            try (Connection admin = MySqlIt.database().connectDirect()) {
                assertThat(text(admin, "SELECT COUNT(*) FROM " + table)).as("the database rolled back").isEqualTo("0");
            }
            assertThat(idle(proxy)).as("the killed server connection is not pooled").isZero();
            assertThat(proxy.scrape().sum("connguard_client_sessions_closed_total", "listener", "my",
                    "reason", "idle_in_transaction")).isEqualTo(1);
            try (Connection next = connect(proxy, PASSWORD)) {
                assertThat(Long.parseLong(text(next, "SELECT CONNECTION_ID()"))).as("a new server thread").isNotEqualTo(thread);
            }
        } finally {
            try (Connection admin = MySqlIt.database().connectDirect(); Statement s = admin.createStatement()) {
                s.execute("DROP TABLE IF EXISTS " + table);
            }
        }
    }

    @Test
    void killQueryWithTheGreetingIdReachesTheServerConnectionServingTheClient() throws Exception {
        try (TestProxy proxy = proxy("mode: session\nsize: 3");
             Connection sleeper = connect(proxy, PASSWORD);
             Connection killer = connect(proxy, PASSWORD)) {
            long given = sleeper.unwrap(com.mysql.cj.jdbc.JdbcConnection.class).getId();
            long real = Long.parseLong(text(sleeper, "SELECT CONNECTION_ID()"));
            assertThat(MySqlModule.isMinted(given)).as("a pooled client is greeted with a minted id").isTrue();
            CompletableFuture<Long> slept = CompletableFuture.supplyAsync(() -> {
                long start = System.nanoTime();
                try (Statement s = sleeper.createStatement(); ResultSet rs = s.executeQuery("SELECT SLEEP(30)")) {
                    rs.next();
                } catch (SQLException interrupted) {
                    // MariaDB may answer a killed query with 1317
                }
                return TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
            });
            await().atMost(Duration.ofSeconds(10)).until(() -> {
                try (Connection admin = MySqlIt.database().connectDirect(); Statement s = admin.createStatement();
                     ResultSet rs = s.executeQuery("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = "
                             + real + " AND INFO LIKE 'SELECT SLEEP%'")) {
                    rs.next();
                    return rs.getInt(1) == 1;
                }
            });
            try (Statement s = killer.createStatement()) {
                s.execute("KILL QUERY " + given);
            }
            assertThat(slept.get(20, TimeUnit.SECONDS)).isLessThan(20_000);
            assertThat(text(sleeper, "SELECT 7")).as("the client's connection lives on").isEqualTo("7");
        }
    }
}
