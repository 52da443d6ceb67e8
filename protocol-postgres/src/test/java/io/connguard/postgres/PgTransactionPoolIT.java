package io.connguard.postgres;

import com.fasterxml.jackson.databind.JsonNode;
import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;
import io.connguard.core.testing.LeakGuard;
import io.connguard.core.testing.TestProxy;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import static io.connguard.postgres.PgIt.direct;
import static io.connguard.postgres.PgIt.backendAlive;
import static io.connguard.postgres.PgIt.execute;
import static io.connguard.postgres.PgIt.idle;
import static io.connguard.postgres.PgIt.pools;
import static io.connguard.postgres.PgIt.longValue;
import static io.connguard.postgres.PgIt.stringValue;
import static io.connguard.postgres.PgIt.unique;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

/**
 * {@code pool.mode: transaction} against the real server: a client holds a server connection only while
 * it is in a transaction or has a request in flight; state that would leak pins the client; prepared
 * statements, COPY, errors, pipelines and cancel work as on a direct connection.
 */
@ExtendWith(LeakGuard.class)
class PgTransactionPoolIT {

    private static TestProxy proxy(int size, String clientDefaults) {
        return TestProxy.start("""
                listeners:
                  - name: pg
                    protocol: postgres
                    listen: 127.0.0.1:0
                    upstream: %s
                    pool:
                      mode: transaction
                      size: %d
                clients:
                  identity: [user, database]
                  defaults:
                    maxConnections: 0
                    queueTimeout: 20s
                %s""".formatted(PgIt.db().hostPort(), size, clientDefaults.indent(4)));
    }

    private static TestProxy proxy(int size) {
        return proxy(size, "");
    }

    private static Connection connect(TestProxy proxy, String application, String... pairs) throws SQLException {
        return DriverManager.getConnection(PgIt.jdbcUrl(proxy), PgIt.props(application, pairs));
    }

    @Test
    void aClientHoldsABackendOnlyInsideATransaction() throws Exception {
        try (TestProxy proxy = proxy(2); Connection a = connect(proxy, unique("a"));
             Connection b = connect(proxy, unique("b"))) {
            assertThat(active(proxy)).as("idle clients hold no server connection").isZero();
            a.setAutoCommit(false);
            long pid = longValue(a, "SELECT pg_backend_pid()");
            assertThat(active(proxy)).as("a transaction holds one").isEqualTo(1);
            assertThat(longValue(a, "SELECT pg_backend_pid()")).as("the same one until it ends").isEqualTo(pid);
            assertThat(PgIt.session(proxy, stringValue(a, "SHOW application_name")).get("serverConnection").isNumber())
                    .isTrue();
            a.commit();
            // The client reads ReadyForQuery as the connection goes back: /pools may lag a moment.
            await().atMost(10, TimeUnit.SECONDS).until(() -> active(proxy) == 0);
            assertThat(longValue(b, "SELECT 1")).isEqualTo(1);
            assertThat(proxy.scrape().value("connguard_client_transactions_total", "listener", "pg"))
                    .as("a's transaction and b's query; start-ups are not counted").isEqualTo(2.0);
        }
    }

    @Test
    void errorsInsideATransactionKeepTheBackendUntilRollback() throws Exception {
        try (TestProxy proxy = proxy(1); Connection a = connect(proxy, unique("err"))) {
            a.setAutoCommit(false);
            long pid = longValue(a, "SELECT pg_backend_pid()");
            assertThatThrownBy(() -> execute(a, "SELECT 1/0")).isInstanceOf(SQLException.class)
                    .satisfies(e -> assertThat(((SQLException) e).getSQLState()).isEqualTo("22012"));
            assertThat(active(proxy)).as("status E keeps the connection lent").isEqualTo(1);
            assertThatThrownBy(() -> execute(a, "SELECT 1")).isInstanceOf(SQLException.class)
                    .satisfies(e -> assertThat(((SQLException) e).getSQLState()).isEqualTo("25P02"));
            a.rollback();
            // The client reads ReadyForQuery as the connection goes back: /pools may lag a moment.
            await().atMost(10, TimeUnit.SECONDS).until(() -> active(proxy) == 0);
            assertThat(longValue(a, "SELECT pg_backend_pid()")).isEqualTo(pid);
        }
    }

    @Test
    void fiftyHikariConnectionsOverFiveBackendsRunConcurrentTransactionsCorrectly() throws Exception {
        String table = unique("accounts");
        String app = unique("hikari");
        try (TestProxy proxy = proxy(5); Connection setup = direct()) {
            execute(setup, "CREATE TABLE " + table + " (id int PRIMARY KEY, balance bigint NOT NULL)");
            execute(setup, "INSERT INTO " + table + " SELECT g, 1000 FROM generate_series(1, 20) g");
            HikariConfig config = new HikariConfig();
            config.setJdbcUrl(PgIt.jdbcUrl(proxy));
            config.setDataSourceProperties(PgIt.props(app, "prepareThreshold", "1"));
            config.setMaximumPoolSize(50);
            config.setMinimumIdle(50);
            config.setAutoCommit(false);
            config.setConnectionTimeout(60_000);
            config.setPoolName(app);
            int workers = 50;
            int transfers = 40;
            try (HikariDataSource pool = new HikariDataSource(config)) {
                ExecutorService threads = Executors.newFixedThreadPool(workers);
                List<Future<Integer>> results = new ArrayList<>();
                for (int w = 0; w < workers; w++) {
                    int worker = w;
                    results.add(threads.submit(() -> {
                        int done = 0;
                        for (int i = 0; i < transfers; i++) {
                            int from = 1 + (worker + i) % 20;
                            int to = 1 + worker % 3;
                            if (from == to) {
                                to = 1 + to % 20;
                            }
                            try (Connection c = pool.getConnection()) {
                                done += transfer(c, table, from, to);
                            }
                        }
                        return done;
                    }));
                }
                int total = 0;
                for (Future<Integer> r : results) {
                    total += r.get(240, TimeUnit.SECONDS);
                }
                threads.shutdown();
                assertThat(total).isEqualTo(workers * transfers);
                assertThat(backends(app)).as("at most pool.size backends").isBetween(1L, 5L);
                try (Connection c = pool.getConnection()) {
                    assertThat(longValue(c, "SELECT sum(balance) FROM " + table)).as("money is conserved")
                            .isEqualTo(20_000);
                    c.commit();
                }
            }
            assertThat(longValue(setup, "SELECT sum(balance) FROM " + table)).isEqualTo(20_000);
            assertThat(longValue(setup, "SELECT count(*) FROM " + table + " WHERE balance <> 1000"))
                    .as("transfers happened").isPositive();
        } finally {
            try (Connection setup = direct()) {
                execute(setup, "DROP TABLE IF EXISTS " + table);
            }
        }
    }

    /** Moves one unit from one account to another (both locked in id order), checking what the transaction sees. */
    private static int transfer(Connection c, String table, int from, int to) throws SQLException {
        try (PreparedStatement lock = c.prepareStatement("SELECT id, balance FROM " + table + " WHERE id IN (?, ?) ORDER BY id FOR UPDATE");
             PreparedStatement move = c.prepareStatement("UPDATE " + table + " SET balance = balance + ? WHERE id = ?")) {
            lock.setInt(1, from);
            lock.setInt(2, to);
            long before = 0;
            try (ResultSet rs = lock.executeQuery()) {
                while (rs.next()) {
                    if (rs.getInt(1) == to) {
                        before = rs.getLong(2);
                    }
                }
            }
            move.setInt(1, -1);
            move.setInt(2, from);
            move.executeUpdate();
            move.setInt(1, 1);
            move.setInt(2, to);
            move.executeUpdate();
            try (PreparedStatement check = c.prepareStatement("SELECT balance FROM " + table + " WHERE id = ?")) {
                check.setInt(1, to);
                try (ResultSet rs = check.executeQuery()) {
                    rs.next();
                    if (rs.getLong(1) != before + 1) {
                        throw new AssertionError("transaction saw " + rs.getLong(1) + ", expected " + (before + 1));
                    }
                }
            }
            c.commit();
            return 1;
        } catch (SQLException | AssertionError e) {
            c.rollback();
            throw e;
        }
    }

    @Test
    void twoHundredIdleClientsHoldAtMostFiveBackends() throws Exception {
        String app = unique("idle200");
        List<Connection> clients = new ArrayList<>();
        try (TestProxy proxy = proxy(5)) {
            for (int i = 0; i < 200; i++) {
                Connection c = connect(proxy, app);
                clients.add(c);
                if (i % 10 == 0) {
                    assertThat(longValue(c, "SELECT 1")).isEqualTo(1);
                }
            }
            assertThat(proxy.sessions().size()).isEqualTo(200);
            assertThat(backends(app)).as("backends of 200 idle clients").isBetween(1L, 5L);
            // The client reads ReadyForQuery as the connection goes back: /pools may lag a moment.
            await().atMost(10, TimeUnit.SECONDS).until(() -> active(proxy) == 0);
            for (Connection c : clients) {
                assertThat(longValue(c, "SELECT 2")).isEqualTo(2);
            }
            assertThat(backends(app)).isBetween(1L, 5L);
        } finally {
            for (Connection c : clients) {
                c.close();
            }
        }
    }

    @Test
    void twoInterleavingClientsNeverSeeEachOthersState() throws Exception {
        try (TestProxy proxy = proxy(2); Connection a = connect(proxy, unique("state_a"));
             Connection b = connect(proxy, unique("state_b"))) {
            String appB = stringValue(b, "SHOW application_name");
            execute(a, "SET search_path = pg_catalog");
            execute(a, "SET statement_timeout = '7s'");
            execute(a, "CREATE TEMP TABLE cg_txn_tmp (n int)");
            long pinnedPid = longValue(a, "SELECT pg_backend_pid()");
            JsonNode session = PgIt.session(proxy, stringValue(a, "SHOW application_name"));
            assertThat(session.get("pinReason").asText()).contains("set").contains("temp_table");
            assertThat(session.get("serverConnection").isNumber()).as("a pinned client keeps its connection").isTrue();
            for (int i = 0; i < 5; i++) {
                assertThat(longValue(b, "SELECT pg_backend_pid()")).isNotEqualTo(pinnedPid);
                assertThat(stringValue(b, "SHOW search_path")).isEqualTo("\"$user\", public");
                assertThat(stringValue(b, "SHOW statement_timeout")).isEqualTo("0");
                assertThat(longValue(b, "SELECT count(*) FROM pg_class WHERE relname = 'cg_txn_tmp'"
                        + " AND relnamespace = pg_my_temp_schema()")).isZero();
                assertThat(stringValue(b, "SHOW application_name")).isEqualTo(appB);
                assertThat(stringValue(a, "SHOW search_path")).isEqualTo("pg_catalog");
                assertThat(longValue(a, "SELECT count(*) FROM cg_txn_tmp")).isZero();
            }
            assertThat(proxy.scrape().value("connguard_client_pins_total", "listener", "pg", "reason", "temp_table"))
                    .isEqualTo(1.0);
            assertThat(proxy.scrape().value("connguard_pool_server_connections", "listener", "pg", "state", "pinned"))
                    .isEqualTo(1.0);
            JsonNode pins = pools(proxy).get(0).get("pins");
            assertThat(pins.get("set").asInt()).isEqualTo(1);
            assertThat(pins.get("temp_table").asInt()).isEqualTo(1);
            a.close();
            await().atMost(10, TimeUnit.SECONDS).until(() -> idle(proxy) == 2);
            try (Connection c = connect(proxy, unique("after"))) {
                c.setAutoCommit(false);
                long first = longValue(c, "SELECT pg_backend_pid()");
                c.commit();
                // Whichever backend it gets, the pinned one was reset (DISCARD ALL) when its client left.
                for (int i = 0; i < 4; i++) {
                    assertThat(stringValue(c, "SHOW search_path")).isEqualTo("\"$user\", public");
                    assertThat(stringValue(c, "SHOW statement_timeout")).isEqualTo("0");
                    assertThat(longValue(c, "SELECT count(*) FROM pg_class WHERE relname = 'cg_txn_tmp'"
                        + " AND relnamespace = pg_my_temp_schema()")).isZero();
                    c.commit();
                }
                assertThat(first).isPositive();
            }
        }
    }

    @Test
    void reportedParametersFollowTheClientToAnyBackend() throws Exception {
        try (TestProxy proxy = proxy(1); Connection a = connect(proxy, unique("follow_a"));
             Connection b = connect(proxy, unique("follow_b"), "options", "-c search_path=pg_catalog,public")) {
            execute(a, "SET application_name = 'cg_txn_renamed'");
            execute(a, "SET TimeZone = 'Asia/Tokyo'");
            assertThat(PgIt.session(proxy, "cg_txn_renamed").get("pinReason").isNull()).as("no pin").isTrue();
            long pid = longValue(a, "SELECT pg_backend_pid()");
            assertThat(longValue(b, "SELECT pg_backend_pid()")).as("size 1: the same backend").isEqualTo(pid);
            assertThat(stringValue(b, "SHOW TimeZone")).isNotEqualTo("Asia/Tokyo");
            assertThat(stringValue(b, "SHOW application_name")).startsWith("cg_pg_follow_b");
            assertThat(stringValue(b, "SHOW search_path")).isEqualTo("pg_catalog,public");
            assertThat(stringValue(a, "SHOW TimeZone")).isEqualTo("Asia/Tokyo");
            assertThat(stringValue(a, "SHOW application_name")).isEqualTo("cg_txn_renamed");
            assertThat(stringValue(a, "SHOW search_path")).isEqualTo("\"$user\", public");
        }
    }

    @Test
    void startUpParametersComeBackAfterTheClientsOwnDiscardAll() throws Exception {
        try (TestProxy proxy = proxy(1);
             Connection a = connect(proxy, unique("discard"), "options", "-c search_path=pg_catalog")) {
            assertThat(stringValue(a, "SHOW search_path")).isEqualTo("pg_catalog");
            execute(a, "DISCARD ALL");
            // Directly, DISCARD ALL goes back to the session's start-up values; the pooled backend's are the
            // server's defaults, so connguard sets the client's again before its next transaction.
            assertThat(stringValue(a, "SHOW search_path")).isEqualTo("pg_catalog");
            execute(a, "RESET search_path");
            assertThat(stringValue(a, "SHOW search_path")).isEqualTo("pg_catalog");
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"1", "5"})
    void pgjdbcPreparedStatementsFollowTheClient(String threshold) throws Exception {
        String table = unique("prep");
        try (TestProxy proxy = proxy(2); Connection setup = direct()) {
            execute(setup, "CREATE TABLE " + table + " (n int)");
            List<Connection> clients = new ArrayList<>();
            try {
                for (int i = 0; i < 4; i++) {
                    clients.add(connect(proxy, unique("prep"), "prepareThreshold", threshold));
                }
                for (int round = 0; round < 12; round++) {
                    for (int i = 0; i < clients.size(); i++) {
                        Connection c = clients.get(i);
                        try (PreparedStatement insert = c.prepareStatement("INSERT INTO " + table + " VALUES (?)")) {
                            insert.setInt(1, i);
                            insert.executeUpdate();
                        }
                        try (PreparedStatement count = c.prepareStatement("SELECT count(*) FROM " + table + " WHERE n = ?")) {
                            count.setInt(1, i);
                            try (ResultSet rs = count.executeQuery()) {
                                rs.next();
                                assertThat(rs.getLong(1)).isEqualTo(round + 1);
                            }
                        }
                    }
                }
            } finally {
                for (Connection c : clients) {
                    c.close();
                }
                execute(setup, "DROP TABLE " + table);
            }
        }
    }

    @Test
    void aServerErrorOfAPreparedStatementReachesTheClientAsAnError() throws Exception {
        String table = unique("stale");
        try (TestProxy proxy = proxy(1); Connection setup = direct();
             Connection c = connect(proxy, unique("stale"), "prepareThreshold", "1")) {
            execute(setup, "CREATE TABLE " + table + " (n int)");
            try (PreparedStatement select = c.prepareStatement("SELECT * FROM " + table + " WHERE n = ?")) {
                select.setInt(1, 1);
                select.executeQuery().close();
                execute(setup, "DROP TABLE " + table);
                assertThatThrownBy(() -> select.executeQuery().close()).isInstanceOf(SQLException.class)
                        .satisfies(e -> assertThat(((SQLException) e).getSQLState()).isEqualTo("42P01"));
            }
            assertThat(longValue(c, "SELECT 3")).as("the connection lives on").isEqualTo(3);
        }
    }

    @Test
    void psqlRunsMultiStatementQueriesCopyAndErrors() throws Exception {
        String table = unique("copy");
        try (TestProxy proxy = proxy(1); Connection setup = direct()) {
            execute(setup, "CREATE TABLE " + table + " (n int, s text)");
            Path data = Files.createTempFile("cg-txn", ".csv");
            Files.writeString(data, "1,one\n2,two\n3,three\n");
            try {
                PgTool.Result result = PgTool.run(PgTool.env(proxy, unique("psql")), 60, "psql", "-X", "-A", "-t",
                        "-v", "ON_ERROR_STOP=0",
                        "-c", "SELECT 1; SELECT 2",
                        "-c", "\\copy " + table + " FROM '" + data + "' WITH (FORMAT csv)",
                        "-c", "BEGIN; INSERT INTO " + table + " VALUES (4, 'four'); SELECT 1/0; COMMIT",
                        "-c", "ROLLBACK",
                        "-c", "SELECT count(*) FROM " + table,
                        "-c", "COPY (SELECT n FROM " + table + " ORDER BY n) TO STDOUT",
                        "-c", "SELECT 'done'");
                assertThat(result.out()).as(result.toString()).contains("1\n2\nCOPY 3\nBEGIN\nINSERT 0 1\nROLLBACK\n3\n1\n2\n3\ndone");
                assertThat(result.err()).contains("division by zero").doesNotContain("transaction is aborted");
                assertThat(longValue(setup, "SELECT count(*) FROM " + table)).isEqualTo(3);
            } finally {
                Files.deleteIfExists(data);
                execute(setup, "DROP TABLE " + table);
            }
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"simple", "extended", "prepared"})
    void pgbenchRunsOnAtMostSizeBackends(String mode) throws Exception {
        Path script = Files.createTempFile("cg-txn", ".sql");
        String table = unique("bench");
        Files.writeString(script, """
                \\set x random(1, 1000)
                BEGIN;
                INSERT INTO %s VALUES (:x);
                SELECT count(*) FROM %s WHERE n = :x;
                END;
                SELECT :x::int + 1;
                """.formatted(table, table));
        String app = unique("pgbench");
        try (TestProxy proxy = proxy(3); Connection setup = direct()) {
            execute(setup, "CREATE TABLE " + table + " (n int)");
            // One thread per client: pgbench prepares synchronously at a client's first transaction, so a
            // thread whose next client waits for the pool could not finish another of its clients' transaction.
            PgTool.Result result = PgTool.run(PgTool.env(proxy, app), 300, "pgbench", "-n",
                    "-M", mode, "-c", "8", "-j", "8", "-t", "50", "-f", script.toString());
            assertThat(result.exitCode()).as(result.toString()).isZero();
            assertThat(result.out()).as(result.toString())
                    .contains("number of transactions actually processed: 400/400")
                    .contains("number of failed transactions: 0 (0.000%)");
            assertThat(longValue(setup, "SELECT count(*) FROM " + table)).isEqualTo(400);
            assertThat(backends(app)).isBetween(1L, 3L);
        } finally {
            Files.deleteIfExists(script);
            try (Connection setup = direct()) {
                execute(setup, "DROP TABLE IF EXISTS " + table);
            }
        }
    }

    @Test
    void nodePostgresNamedQueriesFollowTheClient() throws Exception {
        Path dir = Path.of("src/test/node").toAbsolutePath();
        if (!Files.isDirectory(dir.resolve("node_modules/pg"))) {
            org.junit.jupiter.api.Assertions.fail("npm package pg is not installed in " + dir
                    + "; run `npm ci` there (.ci/run does)");
        }
        String table = unique("node");
        String app = unique("node");
        try (TestProxy proxy = proxy(2); Connection setup = direct()) {
            execute(setup, "CREATE TABLE " + table + " (n int)");
            PgTool.Result result = PgTool.run(PgTool.env(proxy, app), 120, "node",
                    dir.resolve("named-queries.js").toString(), table);
            assertThat(result.exitCode()).as(result.toString()).isZero();
            assertThat(result.out().strip()).as(result.toString()).isEqualTo("ok 200");
            assertThat(backends(app)).isBetween(1L, 2L);
        } finally {
            try (Connection setup = direct()) {
                execute(setup, "DROP TABLE IF EXISTS " + table);
            }
        }
    }

    @Test
    void aPasswordUserIsVerifiedAndLaterBorrowsOpenConnectionsWithItsPassword() throws Exception {
        PgIt.requireRole("cg_scram");
        try (TestProxy proxy = proxy(3)) {
            Properties wrong = PgIt.props(unique("scram"));
            wrong.setProperty("user", "cg_scram");
            wrong.setProperty("password", "wrong");
            assertThatThrownBy(() -> DriverManager.getConnection(PgIt.jdbcUrl(proxy), wrong).close())
                    .isInstanceOf(SQLException.class)
                    .satisfies(e -> assertThat(((SQLException) e).getSQLState()).isEqualTo("28P01"));
            Properties right = PgIt.props(unique("scram"));
            right.setProperty("user", "cg_scram");
            right.setProperty("password", "cg_scram_pw");
            try (Connection a = DriverManager.getConnection(PgIt.jdbcUrl(proxy), right);
                 Connection b = DriverManager.getConnection(PgIt.jdbcUrl(proxy), right);
                 Connection c = DriverManager.getConnection(PgIt.jdbcUrl(proxy), right)) {
                a.setAutoCommit(false);
                b.setAutoCommit(false);
                c.setAutoCommit(false);
                // Three transactions at once need three server connections: the later ones are opened with
                // the password the clients gave at start-up.
                long pa = longValue(a, "SELECT pg_backend_pid()");
                long pb = longValue(b, "SELECT pg_backend_pid()");
                long pc = longValue(c, "SELECT pg_backend_pid()");
                assertThat(java.util.Set.of(pa, pb, pc)).hasSize(3);
                assertThat(stringValue(c, "SELECT current_user")).isEqualTo("cg_scram");
                a.commit();
                b.commit();
                c.commit();
            }
        }
    }

    @Test
    void cancelReachesTheBackendServingTheClientAndNothingBetweenTransactions() throws Exception {
        try (TestProxy proxy = proxy(2); Connection c = connect(proxy, unique("cancel"))) {
            try (Statement s = c.createStatement()) {
                s.cancel(); // between transactions: nothing to cancel, nothing breaks
                assertThat(longValue(c, "SELECT 5")).isEqualTo(5);
                PgIt.cancelASleepAfterOneSecond(s);
            }
            assertThat(longValue(c, "SELECT 1")).isEqualTo(1);
        }
    }

    @Test
    void anIdleInTransactionKillRollsBackAndClosesTheServerConnection() throws Exception {
        String table = unique("iit");
        try (TestProxy proxy = proxy(2, "idleInTransactionTimeout: 1s"); Connection setup = direct()) {
            execute(setup, "CREATE TABLE " + table + " (n int)");
            try (Connection c = connect(proxy, unique("iit"))) {
                c.setAutoCommit(false);
                long pid = longValue(c, "SELECT pg_backend_pid()");
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

    @Test
    void aPipelinedBatchWithSeveralSyncsKeepsItsBackendUntilTheLastReadyForQuery() throws Exception {
        try (TestProxy proxy = proxy(1); Connection other = connect(proxy, unique("other"));
             java.net.Socket raw = rawLogin(proxy, unique("pipeline"))) {
            java.io.DataInputStream in = new java.io.DataInputStream(raw.getInputStream());
            byte[] batch = PgMessages.concat(
                    PgMessages.extended("SELECT pg_backend_pid()::text"),
                    PgMessages.extended("SELECT pg_sleep(0.3)::text"),
                    PgMessages.query("SELECT pg_backend_pid()::text; SELECT 'two'"),
                    PgMessages.extended("SELECT pg_backend_pid()::text"));
            raw.getOutputStream().write(batch);
            raw.getOutputStream().flush();
            CompletableFuture<Long> meanwhile = CompletableFuture.supplyAsync(() -> {
                try {
                    return longValue(other, "SELECT 42");
                } catch (SQLException e) {
                    throw new RuntimeException(e);
                }
            });
            List<String> values = new ArrayList<>();
            int ready = 0;
            while (ready < 4) {
                byte[] message = readMessage(in);
                if (message[0] == 'D') {
                    int length = java.nio.ByteBuffer.wrap(message, 7, 4).getInt();
                    values.add(new String(message, 11, length, java.nio.charset.StandardCharsets.UTF_8));
                } else if (message[0] == 'Z') {
                    ready++;
                } else if (message[0] == 'E') {
                    throw new AssertionError("error: " + new String(message, java.nio.charset.StandardCharsets.UTF_8));
                }
            }
            assertThat(values).hasSize(5);
            assertThat(values.get(1)).isEmpty();
            assertThat(values.get(3)).isEqualTo("two");
            assertThat(List.of(values.get(2), values.get(4))).as("one backend for the whole batch")
                    .containsOnly(values.get(0));
            assertThat(meanwhile.get(20, TimeUnit.SECONDS)).isEqualTo(42);
        }
    }

    @Test
    void aPinEndsOnlyWhenItsStateIsGoneOutsideATransaction() throws Exception {
        try (TestProxy proxy = proxy(2); Connection a = connect(proxy, unique("unpin"))) {
            String app = stringValue(a, "SHOW application_name");
            execute(a, "LISTEN cg_txn_channel");
            assertThat(PgIt.session(proxy, app).get("pinReason").asText()).isEqualTo("listen");
            a.setAutoCommit(false);
            execute(a, "UNLISTEN *");
            a.rollback();
            assertThat(PgIt.session(proxy, app).get("pinReason").asText()).as("rolled back: still listening")
                    .isEqualTo("listen");
            a.setAutoCommit(true);
            execute(a, "UNLISTEN *");
            JsonNode session = PgIt.session(proxy, app);
            assertThat(session.get("pinReason").isNull()).isTrue();
            assertThat(session.get("serverConnection").isNull()).as("given back").isTrue();
            execute(a, "SELECT pg_advisory_lock(4711)");
            assertThat(PgIt.session(proxy, app).get("pinReason").asText()).isEqualTo("advisory_lock");
            execute(a, "SELECT pg_advisory_unlock_all()");
            assertThat(PgIt.session(proxy, app).get("serverConnection").isNull()).isTrue();
            assertThat(proxy.scrape().value("connguard_client_pins_total", "listener", "pg", "reason", "listen"))
                    .isEqualTo(1.0);
        }
    }

    @Test
    void idleClientConnectionsOfAClientThatNeedsMoreAreNamedAsLeaks() throws Exception {
        String app = unique("leak");
        try (TestProxy proxy = TestProxy.start("""
                listeners:
                  - name: pg
                    protocol: postgres
                    listen: 127.0.0.1:0
                    upstream: %s
                    pool:
                      mode: transaction
                      size: 2
                clients:
                  identity: [user, database, application]
                  defaults:
                    maxConnections: 0
                    maxClientConnections: 2
                    leakDetectionThreshold: 1s
                """.formatted(PgIt.db().hostPort()));
             Connection used = connect(proxy, app);
             Connection leaked = connect(proxy, app)) {
            assertThat(longValue(leaked, "SELECT 1")).isEqualTo(1);
            assertThat(longValue(used, "SELECT 1")).isEqualTo(1);
            assertThatThrownBy(() -> connect(proxy, app).close()).isInstanceOf(SQLException.class)
                    .satisfies(e -> assertThat(((SQLException) e).getSQLState()).isEqualTo("53300"));
            await().atMost(15, TimeUnit.SECONDS).until(() -> proxy.scrape()
                    .value("connguard_client_leak_suspects", "listener", "pg", "application", app) == 2.0);
            assertThat(PgIt.session(proxy, app).get("leakSuspect").asBoolean()).isTrue();
            assertThat(longValue(used, "SELECT 2")).isEqualTo(2);
            assertThat(proxy.scrape().value("connguard_client_leak_suspects", "listener", "pg", "application", app))
                    .as("used again: no longer a suspect").isEqualTo(1.0);
        }
    }

    @Test
    void aClientThatRenamesItselfIsCountedUnderItsNewName() throws Exception {
        String renamed = unique("renamed");
        try (TestProxy proxy = TestProxy.start(PgIt.config("").replace("    upstream:", "    pool:\n      mode: transaction\n      size: 2\n    upstream:"));
             Connection c = connect(proxy, unique("before"))) {
            execute(c, "SET application_name = '" + renamed + "'");
            c.setAutoCommit(false);
            assertThat(longValue(c, "SELECT 7")).isEqualTo(7);
            assertThat(PgIt.session(proxy, renamed).get("serverConnection").isNumber()).isTrue();
            c.commit();
            assertThat(stringValue(c, "SHOW application_name")).isEqualTo(renamed);
            c.commit();
            assertThat(proxy.scrape().value("connguard_client_connections", "listener", "pg", "application", renamed,
                    "state", "idle")).isEqualTo(1.0);
        }
    }

    // ---------------------------------------------------------------- helpers

    /** A raw client logged in through the proxy (trust), after its first ReadyForQuery. */
    private static java.net.Socket rawLogin(TestProxy proxy, String application) throws Exception {
        java.net.Socket socket = new java.net.Socket("127.0.0.1", proxy.port("pg"));
        socket.setSoTimeout(20_000);
        socket.getOutputStream().write(PgMessages.startup("user", PgIt.db().user(), "database", PgIt.db().database(),
                "application_name", application));
        java.io.DataInputStream in = new java.io.DataInputStream(socket.getInputStream());
        while (readMessage(in)[0] != 'Z') {
            // the login answer
        }
        return socket;
    }

    private static byte[] readMessage(java.io.DataInputStream in) throws java.io.IOException {
        byte type = in.readByte();
        int length = in.readInt();
        byte[] message = new byte[1 + length];
        message[0] = type;
        java.nio.ByteBuffer.wrap(message, 1, 4).putInt(length);
        in.readFully(message, 5, length - 4);
        return message;
    }

    /** Backends on the server whose application_name is {@code app} (the last client that used them). */
    private static long backends(String app) throws SQLException {
        try (Connection d = direct()) {
            return longValue(d, "SELECT count(*) FROM pg_stat_activity WHERE application_name = '" + app + "'");
        }
    }


    private static int active(TestProxy proxy) throws Exception {
        JsonNode pools = pools(proxy);
        int n = 0;
        for (JsonNode pool : pools) {
            n += pool.get("serverConnections").get("active").asInt() + pool.get("serverConnections").get("pinned").asInt();
        }
        return n;
    }


}
