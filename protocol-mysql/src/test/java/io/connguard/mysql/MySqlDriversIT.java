package io.connguard.mysql;

import io.connguard.core.testing.TestProxy;
import io.connguard.core.testing.LeakGuard;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.time.Duration;
import java.io.BufferedWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

/**
 * MySQL Connector/J and MariaDB Connector/J through the proxy, each feature the way an application turns
 * it on, against the real server: the driver must not notice the proxy.
 */
@ExtendWith(LeakGuard.class)
class MySqlDriversIT {

    /** The two drivers and how each spells the options under test. */
    enum Driver {
        MYSQL("sslMode=DISABLED", "useServerPrepStmts=true&cachePrepStmts=true", "rewriteBatchedStatements=true",
                "allowLoadLocalInfile=true"),
        MARIADB("", "useServerPrepStmts=true&cachePrepStmts=true", "useBulkStmts=true", "allowLocalInfile=true");

        final String base;
        final String serverPrepared;
        final String batch;
        final String localInfile;

        Driver(String base, String serverPrepared, String batch, String localInfile) {
            this.base = base;
            this.serverPrepared = serverPrepared;
            this.batch = batch;
            this.localInfile = localInfile;
        }

        String url(TestProxy proxy, String options) {
            String parameters = base.isEmpty() ? options : options.isEmpty() ? base : base + "&" + options;
            return this == MYSQL ? MySqlIt.mysqlUrl(proxy, parameters) : MySqlIt.mariadbUrl(proxy, parameters);
        }
    }

    private static final AtomicInteger TABLES = new AtomicInteger();
    private static TestProxy proxy;

    @BeforeAll
    static void start() {
        proxy = MySqlIt.proxy();
    }

    @org.junit.jupiter.api.AfterEach
    void trackerStayedInSync() {
        MySqlIt.assertTrackerInSync(proxy);
    }

    @AfterAll
    static void stop() {
        proxy.close();
    }

    private static Connection connect(Driver driver, String options) throws SQLException {
        return MySqlIt.connect(driver.url(proxy, options), MySqlIt.NATIVE_USER, MySqlIt.NATIVE_PASSWORD);
    }

    private static String table(Driver driver, String what) {
        return "cg_my_" + what + "_" + driver.name().toLowerCase() + "_" + ProcessHandle.current().pid() + "_" + TABLES.incrementAndGet();
    }

    @ParameterizedTest
    @EnumSource(Driver.class)
    void textQueriesAndATransaction(Driver driver) throws Exception {
        String t = table(driver, "text");
        try (Connection c = connect(driver, ""); Statement s = c.createStatement()) {
            s.execute("CREATE TABLE " + t + " (id INT PRIMARY KEY, v VARCHAR(20))");
            try {
                c.setAutoCommit(false);
                s.executeUpdate("INSERT INTO " + t + " VALUES (1, 'one'), (2, 'two')");
                c.rollback();
                s.executeUpdate("INSERT INTO " + t + " VALUES (3, 'three')");
                c.commit();
                c.setAutoCommit(true);
                try (ResultSet rs = s.executeQuery("SELECT id, v FROM " + t + " ORDER BY id")) {
                    assertThat(rs.next()).isTrue();
                    assertThat(rs.getInt(1)).isEqualTo(3);
                    assertThat(rs.getString(2)).isEqualTo("three");
                    assertThat(rs.next()).isFalse();
                }
                assertThatThrownBy(() -> s.executeQuery("SELECT * FROM cg_my_no_such_table"))
                        .isInstanceOf(SQLException.class).satisfies(e -> assertThat(((SQLException) e).getErrorCode()).isEqualTo(1146));
                try (ResultSet rs = s.executeQuery("SELECT 'still usable'")) {
                    assertThat(rs.next()).isTrue();
                }
            } finally {
                s.execute("DROP TABLE " + t);
            }
        }
    }

    @ParameterizedTest
    @EnumSource(Driver.class)
    void serverSidePreparedStatementsFromTheCache(Driver driver) throws Exception {
        String t = table(driver, "prep");
        try (Connection c = connect(driver, driver.serverPrepared); Statement s = c.createStatement()) {
            s.execute("CREATE TABLE " + t + " (id INT PRIMARY KEY, v VARCHAR(20), d DATETIME, b DOUBLE)");
            try {
                for (int i = 0; i < 50; i++) {
                    try (PreparedStatement insert = c.prepareStatement("INSERT INTO " + t + " VALUES (?, ?, NOW(), ?)")) {
                        insert.setInt(1, i);
                        insert.setString(2, "v" + i);
                        insert.setDouble(3, i / 2.0);
                        assertThat(insert.executeUpdate()).isEqualTo(1);
                    }
                }
                for (int i = 0; i < 50; i += 7) {
                    try (PreparedStatement select = c.prepareStatement("SELECT v, b, d FROM " + t + " WHERE id = ?")) {
                        select.setInt(1, i);
                        try (ResultSet rs = select.executeQuery()) {
                            assertThat(rs.next()).isTrue();
                            assertThat(rs.getString(1)).isEqualTo("v" + i);
                            assertThat(rs.getDouble(2)).isEqualTo(i / 2.0);
                            assertThat(rs.getTimestamp(3)).isNotNull();
                        }
                    }
                }
            } finally {
                s.execute("DROP TABLE " + t);
            }
        }
    }

    @ParameterizedTest
    @EnumSource(Driver.class)
    void batches(Driver driver) throws Exception {
        String t = table(driver, "batch");
        try (Connection c = connect(driver, driver.batch + "&" + driver.serverPrepared); Statement s = c.createStatement()) {
            s.execute("CREATE TABLE " + t + " (id INT PRIMARY KEY, v VARCHAR(20))");
            try {
                try (PreparedStatement insert = c.prepareStatement("INSERT INTO " + t + " VALUES (?, ?)")) {
                    for (int i = 0; i < 1000; i++) {
                        insert.setInt(1, i);
                        insert.setString(2, "row " + i);
                        insert.addBatch();
                    }
                    insert.executeBatch();
                }
                try (ResultSet rs = s.executeQuery("SELECT COUNT(*), SUM(id) FROM " + t)) {
                    assertThat(rs.next()).isTrue();
                    assertThat(rs.getInt(1)).isEqualTo(1000);
                    assertThat(rs.getLong(2)).isEqualTo(999 * 1000 / 2);
                }
            } finally {
                s.execute("DROP TABLE " + t);
            }
        }
    }

    @ParameterizedTest
    @EnumSource(Driver.class)
    void multiStatementsAndAProcedureReturningTwoResultSets(Driver driver) throws Exception {
        String procedure = table(driver, "proc");
        try (Connection c = connect(driver, "allowMultiQueries=true"); Statement s = c.createStatement()) {
            assertThat(s.execute("SELECT 1; SELECT 'two', 2; DO 3")).isTrue();
            try (ResultSet rs = s.getResultSet()) {
                assertThat(rs.next()).isTrue();
                assertThat(rs.getInt(1)).isEqualTo(1);
            }
            assertThat(s.getMoreResults()).isTrue();
            try (ResultSet rs = s.getResultSet()) {
                assertThat(rs.next()).isTrue();
                assertThat(rs.getString(1)).isEqualTo("two");
            }
            assertThat(s.getMoreResults()).isFalse();
            s.execute("CREATE PROCEDURE " + procedure + "() BEGIN SELECT 1 AS a; SELECT 'b' AS b, 2 AS c; END");
            try {
                assertThat(s.execute("CALL " + procedure + "()")).isTrue();
                try (ResultSet rs = s.getResultSet()) {
                    assertThat(rs.next()).isTrue();
                    assertThat(rs.getInt("a")).isEqualTo(1);
                }
                assertThat(s.getMoreResults()).isTrue();
                try (ResultSet rs = s.getResultSet()) {
                    assertThat(rs.next()).isTrue();
                    assertThat(rs.getString("b")).isEqualTo("b");
                    assertThat(rs.getInt("c")).isEqualTo(2);
                }
                try (ResultSet rs = s.executeQuery("SELECT 'after the procedure'")) {
                    assertThat(rs.next()).isTrue();
                }
            } finally {
                s.execute("DROP PROCEDURE " + procedure);
            }
        }
    }

    @ParameterizedTest
    @EnumSource(Driver.class)
    void streamingAHundredThousandRows(Driver driver) throws Exception {
        String sql = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000) SELECT i, REPEAT('x', 100) FROM n";
        try (Connection c = connect(driver, ""); Statement s = c.createStatement(java.sql.ResultSet.TYPE_FORWARD_ONLY,
                java.sql.ResultSet.CONCUR_READ_ONLY)) {
            s.execute("SET SESSION max_recursive_iterations = 1000000");
            s.setFetchSize(driver == Driver.MYSQL ? Integer.MIN_VALUE : 1000);
            long rows = 0;
            long sum = 0;
            try (ResultSet rs = s.executeQuery(sql)) {
                while (rs.next()) {
                    rows++;
                    sum += rs.getInt(1);
                }
            }
            assertThat(rows).isEqualTo(100_000);
            assertThat(sum).isEqualTo(100_000L * 100_001 / 2);
            try (ResultSet rs = s.executeQuery("SELECT 'next'")) {
                assertThat(rs.next()).isTrue();
            }
        }
    }

    @ParameterizedTest
    @EnumSource(value = Driver.class, names = "MYSQL")
    void cursorFetch(Driver driver) throws Exception {
        String t = table(driver, "cursor");
        try (Connection c = connect(driver, "useCursorFetch=true&defaultFetchSize=100"); Statement s = c.createStatement()) {
            s.execute("CREATE TABLE " + t + " (id INT PRIMARY KEY)");
            try {
                s.execute("INSERT INTO " + t + " WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000) SELECT i FROM n");
                try (PreparedStatement select = c.prepareStatement("SELECT id FROM " + t + " WHERE id > ? ORDER BY id")) {
                    select.setFetchSize(100);
                    select.setInt(1, 0);
                    int rows = 0;
                    try (ResultSet rs = select.executeQuery()) {
                        while (rs.next()) {
                            rows++;
                            assertThat(rs.getInt(1)).isEqualTo(rows);
                        }
                    }
                    assertThat(rows).isEqualTo(1000);
                }
            } finally {
                s.execute("DROP TABLE " + t);
            }
        }
    }

    @ParameterizedTest
    @EnumSource(Driver.class)
    void loadDataLocalInfileOfFiftyMegabytes(Driver driver) throws Exception {
        String t = table(driver, "infile");
        Path file = Files.createTempFile("cg_my_infile", ".csv");
        int rows = 0;
        try (BufferedWriter out = Files.newBufferedWriter(file, StandardCharsets.US_ASCII)) {
            String padding = "p".repeat(80);
            for (long written = 0; written < 50L * 1024 * 1024; rows++) {
                String line = rows + "," + padding + "\n";
                out.write(line);
                written += line.length();
            }
        }
        assertThat(Files.size(file)).isGreaterThanOrEqualTo(50L * 1024 * 1024);
        try (Connection c = connect(driver, driver.localInfile); Statement s = c.createStatement()) {
            s.execute("CREATE TABLE " + t + " (id INT PRIMARY KEY, v VARCHAR(100))");
            try {
                long loaded = s.executeLargeUpdate("LOAD DATA LOCAL INFILE '" + file + "' INTO TABLE " + t
                        + " FIELDS TERMINATED BY ','");
                assertThat(loaded).isEqualTo(rows);
                try (ResultSet rs = s.executeQuery("SELECT COUNT(*) FROM " + t)) {
                    assertThat(rs.next()).isTrue();
                    assertThat(rs.getInt(1)).isEqualTo(rows);
                }
            } finally {
                s.execute("DROP TABLE " + t);
                Files.deleteIfExists(file);
            }
        }
    }

    @ParameterizedTest
    @EnumSource(Driver.class)
    void aSixtyFourMebibyteBlobRoundTrip(Driver driver) throws Exception {
        String t = table(driver, "blob");
        byte[] blob = new byte[64 * 1024 * 1024];
        new Random(64).nextBytes(blob);
        try (Connection c = connect(driver, driver.serverPrepared); Statement s = c.createStatement()) {
            s.execute("CREATE TABLE " + t + " (id INT PRIMARY KEY, b LONGBLOB)");
            try {
                try (PreparedStatement insert = c.prepareStatement("INSERT INTO " + t + " VALUES (1, ?)")) {
                    insert.setBytes(1, blob);
                    insert.executeUpdate();
                }
                try (ResultSet rs = s.executeQuery("SELECT b, LENGTH(b) FROM " + t)) {
                    assertThat(rs.next()).isTrue();
                    assertThat(rs.getLong(2)).isEqualTo(blob.length);
                    MessageDigest sha = MessageDigest.getInstance("SHA-256");
                    assertThat(sha.digest(rs.getBytes(1))).isEqualTo(MessageDigest.getInstance("SHA-256").digest(blob));
                }
            } finally {
                s.execute("DROP TABLE " + t);
            }
        }
    }

    @ParameterizedTest
    @EnumSource(Driver.class)
    void compressionAskedForWorksUncompressed(Driver driver) throws Exception {
        try (Connection c = connect(driver, "useCompression=true"); Statement s = c.createStatement();
             ResultSet rs = s.executeQuery("SELECT REPEAT('z', 100000)")) {
            assertThat(rs.next()).isTrue();
            assertThat(rs.getString(1)).hasSize(100000);
        }
    }

    @ParameterizedTest
    @EnumSource(Driver.class)
    void cancelStopsASleepThroughKillQueryOnAnotherConnection(Driver driver) throws Exception {
        try (Connection c = connect(driver, ""); Statement s = c.createStatement()) {
            long start = System.nanoTime();
            CompletableFuture<Void> cancel = CompletableFuture.runAsync(() -> {
                try {
                    // Cancel once the SLEEP is running on the server (its session is active), not after a guess.
                    await().atMost(Duration.ofSeconds(10)).until(() -> sleeping(proxy));
                    s.cancel();
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
            });
            try (ResultSet rs = s.executeQuery("SELECT SLEEP(30)")) {
                assertThat(rs.next()).isTrue();
                assertThat(rs.getInt(1)).as("SLEEP returns 1 when interrupted").isEqualTo(1);
            } catch (SQLException cancelled) {
                assertThat(cancelled.getMessage()).as("the driver reports the cancel")
                        .containsAnyOf("cancel", "interrupted");
            }
            cancel.get(10, TimeUnit.SECONDS);
            assertThat(TimeUnit.NANOSECONDS.toSeconds(System.nanoTime() - start)).isLessThan(15);
            try (ResultSet rs = s.executeQuery("SELECT 'usable after cancel'")) {
                assertThat(rs.next()).isTrue();
            }
        }
    }

    @ParameterizedTest
    @EnumSource(Driver.class)
    void queryTimeoutStopsASleep(Driver driver) throws Exception {
        try (Connection c = connect(driver, ""); Statement s = c.createStatement()) {
            s.setQueryTimeout(2);
            long start = System.nanoTime();
            try (ResultSet rs = s.executeQuery("SELECT SLEEP(30)")) {
                assertThat(rs.next()).isTrue();
                assertThat(rs.getInt(1)).isEqualTo(1);
            } catch (SQLException timedOut) {
                assertThat((Throwable) timedOut).isInstanceOf(java.sql.SQLTimeoutException.class);
            }
            assertThat(TimeUnit.NANOSECONDS.toSeconds(System.nanoTime() - start)).isLessThan(15);
            s.setQueryTimeout(0);
            try (ResultSet rs = s.executeQuery("SELECT 'usable after the timeout'")) {
                assertThat(rs.next()).isTrue();
            }
        }
    }

    @ParameterizedTest
    @EnumSource(Driver.class)
    void aWrongPasswordGetsTheServersOwn1045(Driver driver) {
        assertThatThrownBy(() -> MySqlIt.connect(driver.url(proxy, ""), MySqlIt.NATIVE_USER, "wrong").close())
                .isInstanceOf(SQLException.class)
                .satisfies(e -> {
                    assertThat(((SQLException) e).getErrorCode()).isEqualTo(1045);
                    assertThat(e.getMessage()).contains("Access denied for user '" + MySqlIt.NATIVE_USER + "'");
                    assertThat(((SQLException) e).getSQLState()).isEqualTo("28000");
                });
    }

    /** Whether a session of the proxy is active running {@code SELECT SLEEP(?)}. */
    private static boolean sleeping(TestProxy proxy) {
        for (var session : proxy.sessions()) {
            if (session.get("state").asText().equals("active")
                    && session.get("lastStatement").asText().startsWith("SELECT SLEEP(")) {
                return true;
            }
        }
        return false;
    }
}
