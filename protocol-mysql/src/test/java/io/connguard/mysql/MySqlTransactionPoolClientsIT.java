package io.connguard.mysql;

import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;
import io.connguard.core.testing.LeakGuard;
import io.connguard.core.testing.TestProxy;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import static io.connguard.mysql.MySqlTransactionPoolIT.USER;
import static io.connguard.mysql.MySqlTransactionPoolIT.PASSWORD;
import static io.connguard.mysql.MySqlTransactionPoolIT.serverThreads;
import static io.connguard.mysql.MySqlTransactionPoolIT.text;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

/**
 * {@code pool.mode: transaction} on a MySQL listener with real clients against the local MariaDB: many idle
 * client connections over a few server threads, HikariCP with MySQL Connector/J and MariaDB Connector/J using
 * server-side prepared statements, the {@code mariadb} command-line client, sysbench, KILL of a client's id
 * and the idle-in-transaction kill.
 */
@ExtendWith(LeakGuard.class)
class MySqlTransactionPoolClientsIT {

    private static final String TABLE = "cg_tx_accounts";

    @BeforeAll
    static void account() throws SQLException {
        MySqlTransactionPoolIT.account();
        try (Connection admin = MySqlIt.database().connectDirect(); Statement s = admin.createStatement()) {
            s.execute("CREATE TABLE IF NOT EXISTS " + TABLE + " (id INT PRIMARY KEY, balance BIGINT) ENGINE=InnoDB");
        }
    }

    @Test
    void twoHundredIdleClientsHoldAtMostThePoolsServerThreadsAndEachStillWorks() throws Exception {
        try (TestProxy proxy = MySqlTransactionPoolIT.proxy("mode: transaction\nsize: 5")) {
            List<Connection> clients = new ArrayList<>();
            try {
                for (int i = 0; i < 200; i++) {
                    Connection c = MySqlTransactionPoolIT.connect(proxy);
                    clients.add(c);
                    assertThat(text(c, "SELECT " + i)).isEqualTo(String.valueOf(i));
                }
                assertThat(serverThreads()).as("server threads behind 200 idle clients").hasSizeLessThanOrEqualTo(5);
                for (int i = 0; i < clients.size(); i++) {
                    assertThat(text(clients.get(i), "SELECT " + i + " + 1")).isEqualTo(String.valueOf(i + 1));
                }
                assertThat(serverThreads()).hasSizeLessThanOrEqualTo(5);
            } finally {
                for (Connection c : clients) {
                    c.close();
                }
            }
            MySqlIt.assertTrackerInSync(proxy);
        }
    }

    private static void transfers(TestProxy proxy, String url, int clients, int perClient) throws Exception {
        try (Connection admin = MySqlIt.database().connectDirect(); Statement s = admin.createStatement()) {
            s.execute("DELETE FROM " + TABLE);
            for (int id = 0; id < 10; id++) {
                s.execute("INSERT INTO " + TABLE + " VALUES (" + id + ", 1000)");
            }
        }
        HikariConfig config = new HikariConfig();
        config.setJdbcUrl(url);
        config.setUsername(USER);
        config.setPassword(PASSWORD);
        config.setMaximumPoolSize(clients);
        config.setMinimumIdle(clients);
        config.setConnectionTimeout(30_000);
        ExecutorService threads = Executors.newFixedThreadPool(clients);
        AtomicInteger done = new AtomicInteger();
        try (HikariDataSource ds = new HikariDataSource(config)) {
            List<Future<?>> work = new ArrayList<>();
            for (int worker = 0; worker < clients; worker++) {
                int w = worker;
                work.add(threads.submit(() -> {
                    for (int t = 0; t < perClient; t++) {
                        int from = (w + t) % 10;
                        int to = (w + 3 * t + 1) % 10;
                        if (from == to) {
                            to = (to + 1) % 10;
                        }
                        try (Connection c = ds.getConnection()) {
                            c.setAutoCommit(false);
                            try (PreparedStatement debit = c.prepareStatement(
                                    "UPDATE " + TABLE + " SET balance = balance - ? WHERE id = ?");
                                 PreparedStatement credit = c.prepareStatement(
                                         "UPDATE " + TABLE + " SET balance = balance + ? WHERE id = ?");
                                 PreparedStatement read = c.prepareStatement(
                                         "SELECT balance FROM " + TABLE + " WHERE id = ?")) {
                                int first = Math.min(from, to);
                                int second = Math.max(from, to); // same lock order everywhere: no deadlocks
                                long amount = first == from ? 7 : -7;
                                debit.setLong(1, amount);
                                debit.setInt(2, first);
                                assertThat(debit.executeUpdate()).isEqualTo(1);
                                credit.setLong(1, amount);
                                credit.setInt(2, second);
                                assertThat(credit.executeUpdate()).isEqualTo(1);
                                read.setInt(1, second);
                                try (ResultSet rs = read.executeQuery()) {
                                    assertThat(rs.next()).isTrue();
                                }
                                c.commit();
                                done.incrementAndGet();
                            }
                        }
                    }
                    return null;
                }));
            }
            for (Future<?> f : work) {
                f.get(120, TimeUnit.SECONDS);
            }
            assertThat(serverThreads()).as("server threads behind " + clients + " clients").hasSizeLessThanOrEqualTo(5);
        } finally {
            threads.shutdownNow();
        }
        assertThat(done.get()).isEqualTo(clients * perClient);
        try (Connection admin = MySqlIt.database().connectDirect()) {
            assertThat(text(admin, "SELECT SUM(balance) FROM " + TABLE)).as("money is conserved").isEqualTo("10000");
            assertThat(text(admin, "SELECT COUNT(*) FROM " + TABLE)).isEqualTo("10");
        }
        MySqlIt.assertTrackerInSync(proxy);
    }

    @Test
    void hikariWithConnectorJServerPreparedStatementsRunsFiftyClientsOverFiveServerThreads() throws Exception {
        try (TestProxy proxy = MySqlTransactionPoolIT.proxy("mode: transaction\nsize: 5")) {
            transfers(proxy, MySqlIt.mysqlUrl(proxy, MySqlTransactionPoolIT.JDBC
                    + "&useServerPrepStmts=true&cachePrepStmts=true"), 50, 20);
        }
    }

    @Test
    void hikariWithMariadbConnectorJServerPreparedStatements() throws Exception {
        try (TestProxy proxy = MySqlTransactionPoolIT.proxy("mode: transaction\nsize: 5")) {
            transfers(proxy, MySqlIt.mariadbUrl(proxy, "sslMode=disable&allowPublicKeyRetrieval=true"
                    + "&useServerPrepStmts=true&cachePrepStmts=true"), 20, 20);
        }
    }

    private record Run(int exit, String output) {
    }

    private static Run exec(List<String> command) throws Exception {
        Process process;
        try {
            process = new ProcessBuilder(command).redirectErrorStream(true).start();
        } catch (java.io.IOException notInstalled) {
            throw new AssertionError(command.get(0) + " is not installed", notInstalled);
        }
        process.getOutputStream().close();
        byte[] output = process.getInputStream().readAllBytes();
        assertThat(process.waitFor(120, TimeUnit.SECONDS)).isTrue();
        return new Run(process.exitValue(), new String(output, StandardCharsets.UTF_8));
    }

    @Test
    void theMariadbClientKeepsItsUserVariableAndSessionState() throws Exception {
        try (TestProxy proxy = MySqlTransactionPoolIT.proxy("mode: transaction\nsize: 2")) {
            Run run = exec(List.of("mariadb", "-h", "127.0.0.1", "-P", String.valueOf(proxy.port("my")), "-u", USER,
                    "-p" + PASSWORD, MySqlIt.database().database(), "--batch", "--skip-ssl", "-e",
                    "SET time_zone = '+02:00'; SELECT @@time_zone; SET @v = 5; SELECT @v + 1; SELECT CURRENT_USER()"));
            assertThat(run.exit()).as(run.output()).isZero();
            assertThat(run.output()).contains("+02:00").contains("@v + 1\n6").contains(USER + "@%");
        }
    }

    @Test
    void sysbenchReadWriteAndPointSelectRunWithoutErrors() throws Exception {
        try (TestProxy proxy = MySqlTransactionPoolIT.proxy("mode: transaction\nsize: 4")) {
            List<String> common = List.of("--db-driver=mysql", "--mysql-host=127.0.0.1",
                    "--mysql-port=" + proxy.port("my"), "--mysql-user=" + USER, "--mysql-password=" + PASSWORD,
                    "--mysql-db=" + MySqlIt.database().database(), "--mysql-ssl=off", "--tables=1", "--table-size=200",
                    "--threads=8");
            List<String> cleanup = new ArrayList<>(List.of("sysbench", "oltp_read_write"));
            cleanup.addAll(common);
            cleanup.add("cleanup");
            exec(cleanup);
            List<String> prepare = new ArrayList<>(List.of("sysbench", "oltp_read_write"));
            prepare.addAll(common);
            prepare.add("prepare");
            Run prepared = exec(prepare);
            assertThat(prepared.exit()).as(prepared.output()).isZero();
            try {
                for (String test : List.of("oltp_read_write", "oltp_point_select")) {
                    List<String> run = new ArrayList<>(List.of("sysbench", test));
                    run.addAll(common);
                    run.addAll(List.of("--time=5", "--report-interval=0", "run"));
                    Run result = exec(run);
                    assertThat(result.exit()).as(result.output()).isZero();
                    // sysbench ignores deadlocks (1213) by design; they happen on a 200-row table directly too
                    assertThat(result.output()).contains("transactions:").doesNotContain("FATAL")
                            .containsPattern("reconnects:\\s+0 ");
                }
                assertThat(serverThreads()).hasSizeLessThanOrEqualTo(4);
            } finally {
                exec(cleanup);
            }
            MySqlIt.assertTrackerInSync(proxy);
        }
    }

    @Test
    void killQueryOfAClientsIdStopsItsSleepOnWhicheverThreadServesIt() throws Exception {
        try (TestProxy proxy = MySqlTransactionPoolIT.proxy("mode: transaction\nsize: 3");
             Connection sleeper = MySqlTransactionPoolIT.connect(proxy);
             Connection killer = MySqlTransactionPoolIT.connect(proxy)) {
            long given = sleeper.unwrap(com.mysql.cj.jdbc.JdbcConnection.class).getId();
            assertThat(MySqlModule.isMinted(given)).isTrue();
            try (Statement s = killer.createStatement()) {
                assertThatThrownBy(() -> s.execute("KILL QUERY " + given)).as("between transactions it reaches nothing")
                        .isInstanceOf(SQLException.class);
            }
            assertThat(text(sleeper, "SELECT 1")).isEqualTo("1");
            CompletableFuture<Long> slept = CompletableFuture.supplyAsync(() -> {
                long start = System.nanoTime();
                try (Statement s = sleeper.createStatement(); ResultSet rs = s.executeQuery("SELECT SLEEP(10)")) {
                    rs.next();
                } catch (SQLException interrupted) {
                    // MariaDB may answer a killed query with 1317
                }
                return TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
            });
            await().atMost(Duration.ofSeconds(10)).until(() -> {
                try (Connection admin = MySqlIt.database().connectDirect(); Statement s = admin.createStatement();
                     ResultSet rs = s.executeQuery("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = '"
                             + USER + "' AND INFO LIKE 'SELECT SLEEP%'")) {
                    rs.next();
                    return rs.getInt(1) == 1;
                }
            });
            try (Statement s = killer.createStatement()) {
                s.execute("KILL QUERY " + given);
            }
            assertThat(slept.get(10, TimeUnit.SECONDS)).as("the sleep was cut short").isLessThan(8_000);
            assertThat(text(sleeper, "SELECT 2")).isEqualTo("2");
        }
    }

    @Test
    void anIdleInTransactionKillRollsBack() throws Exception {
        String table = "cg_tx_iit";
        try (Connection admin = MySqlIt.database().connectDirect(); Statement s = admin.createStatement()) {
            s.execute("CREATE TABLE IF NOT EXISTS " + table + " (n int) ENGINE=InnoDB");
            s.execute("DELETE FROM " + table);
        }
        try (TestProxy proxy = MySqlIt.proxy("    pool:\n      mode: transaction\n      size: 2\n", """
                    maxConnections: 0
                    queueTimeout: 10s
                    idleInTransactionTimeout: 1s
                    leakDetectionThreshold: 0
                """)) {
            try (Connection c = MySqlTransactionPoolIT.connect(proxy); Statement s = c.createStatement()) {
                c.setAutoCommit(false);
                s.executeUpdate("INSERT INTO " + table + " VALUES (1)");
                await().atMost(20, TimeUnit.SECONDS).until(() -> proxy.scrape().sum(
                        "connguard_client_sessions_closed_total", "listener", "my", "reason", "idle_in_transaction") == 1);
                assertThatThrownBy(() -> text(c, "SELECT 1")).isInstanceOf(SQLException.class);
            }
            await().atMost(10, TimeUnit.SECONDS).until(() -> {
                try (Connection admin = MySqlIt.database().connectDirect()) {
                    return text(admin, "SELECT COUNT(*) FROM " + table).equals("0");
                }
            });
            try (Connection next = MySqlTransactionPoolIT.connect(proxy)) {
                assertThat(text(next, "SELECT COUNT(*) FROM " + table)).as("the row was rolled back").isEqualTo("0");
            }
        } finally {
            try (Connection admin = MySqlIt.database().connectDirect(); Statement s = admin.createStatement()) {
                s.execute("DROP TABLE IF EXISTS " + table);
            }
        }
    }
}
