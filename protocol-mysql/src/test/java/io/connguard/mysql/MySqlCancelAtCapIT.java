package io.connguard.mysql;

import io.connguard.core.testing.LeakGuard;
import io.connguard.core.testing.TestProxy;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.SQLTimeoutException;
import java.sql.Statement;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowableOfType;
import static org.awaitility.Awaitility.await;

/**
 * Connector/J's {@code Statement.cancel()} and {@code setQueryTimeout} open a second connection with the
 * same client key and send {@code KILL QUERY <id>}: at a cap of 1 that connection goes on probation (it
 * authenticates on an upstream holding a listener slot, not a client slot) and its KILL runs at once, while
 * an ordinary connection over the cap still waits and gets 1040 after queueTimeout. The database sees at
 * most one connection beyond the client's cap.
 */
@ExtendWith(LeakGuard.class)
class MySqlCancelAtCapIT {

    private static final String USER = MySqlIt.OTHER_USER;
    private static TestProxy proxy;
    private static final AtomicInteger mostSeen = new AtomicInteger();

    @BeforeAll
    static void start() {
        proxy = MySqlIt.proxy("", "    maxConnections: 1\n    queueTimeout: 3s\n    idleInTransactionTimeout: 0\n"
                + "    leakDetectionThreshold: 0\n");
    }

    @AfterAll
    static void stop() {
        proxy.close();
        assertThat(mostSeen.get()).as("connections of %s the database saw at once (cap 1 + one on probation)", USER)
                .isLessThanOrEqualTo(2);
    }

    private static Connection connect() throws SQLException {
        return MySqlIt.connect(MySqlIt.mysqlUrl(proxy, "sslMode=DISABLED"), USER, MySqlIt.OTHER_PASSWORD);
    }

    /** Connections of the test user the database has now (recorded for the class's final check). */
    private static int serverConnections() throws SQLException {
        try (Connection direct = MySqlIt.database().connectDirect(); Statement s = direct.createStatement();
             ResultSet rs = s.executeQuery("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = '" + USER + "'")) {
            rs.next();
            int n = rs.getInt(1);
            mostSeen.accumulateAndGet(n, Math::max);
            return n;
        }
    }

    private static void awaitSleeping(long threadId) {
        await().atMost(Duration.ofSeconds(10)).until(() -> {
            serverConnections();
            try (Connection direct = MySqlIt.database().connectDirect(); Statement s = direct.createStatement();
                 ResultSet rs = s.executeQuery("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = "
                         + threadId + " AND INFO LIKE 'SELECT SLEEP%'")) {
                rs.next();
                return rs.getInt(1) == 1;
            }
        });
    }

    private static long threadId(Connection c) throws SQLException {
        return c.unwrap(com.mysql.cj.jdbc.JdbcConnection.class).getId();
    }

    @Test
    void statementCancelAtTheCapStopsTheQueryWithinASecond() throws Exception {
        try (Connection c = connect(); Statement s = c.createStatement()) {
            CompletableFuture<Long> ended = CompletableFuture.supplyAsync(() -> {
                try (ResultSet rs = s.executeQuery("SELECT SLEEP(30)")) {
                    rs.next();
                } catch (SQLException cancelled) {
                    // "Query execution was interrupted" or SLEEP's 1: either way it ended
                }
                return System.nanoTime();
            });
            awaitSleeping(threadId(c));
            long start = System.nanoTime();
            s.cancel();
            long cancelMillis = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
            long endedMillis = TimeUnit.NANOSECONDS.toMillis(ended.get(20, TimeUnit.SECONDS) - start);
            System.out.printf("Statement.cancel() at the cap: cancel() returned after %d ms, the query ended after %d ms%n",
                    cancelMillis, endedMillis);
            assertThat(endedMillis).as("the query ended this long after cancel() was called").isLessThan(1000);
            try (ResultSet rs = s.executeQuery("SELECT 'usable after cancel'")) {
                assertThat(rs.next()).isTrue();
            }
        }
        assertThat(proxy.metrics()).containsPattern("connguard_client_admissions_total\\{[^}]*outcome=\"probation\"[^}]*\\} [1-9]");
    }

    @Test
    void mariadbConnectorJCancelAtTheCapStopsTheQuery() throws Exception {
        try (Connection c = MySqlIt.connect(MySqlIt.mariadbUrl(proxy, ""), USER, MySqlIt.OTHER_PASSWORD);
             Statement s = c.createStatement()) {
            long thread = c.unwrap(org.mariadb.jdbc.Connection.class).getThreadId();
            CompletableFuture<Long> ended = CompletableFuture.supplyAsync(() -> {
                try (ResultSet rs = s.executeQuery("SELECT SLEEP(30)")) {
                    rs.next();
                } catch (SQLException cancelled) {
                    // "Query execution was interrupted"
                }
                return System.nanoTime();
            });
            awaitSleeping(thread);
            long start = System.nanoTime();
            s.cancel();
            long endedMillis = TimeUnit.NANOSECONDS.toMillis(ended.get(20, TimeUnit.SECONDS) - start);
            System.out.printf("MariaDB Connector/J cancel() at the cap: the query ended after %d ms%n", endedMillis);
            assertThat(endedMillis).as("the query ended this long after cancel() was called").isLessThan(1000);
        }
    }

    @Test
    void queryTimeoutAtTheCapStopsTheQuery() throws Exception {
        try (Connection c = connect(); Statement s = c.createStatement()) {
            s.setQueryTimeout(1);
            long start = System.nanoTime();
            SQLException timedOut = catchThrowableOfType(SQLException.class, () -> {
                try (ResultSet rs = s.executeQuery("SELECT SLEEP(30)")) {
                    rs.next();
                }
            });
            long millis = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
            System.out.printf("setQueryTimeout(1) at the cap: the query ended after %d ms%n", millis);
            assertThat((Throwable) timedOut).isInstanceOf(SQLTimeoutException.class);
            assertThat(millis).as("1 s timeout + the cancel").isLessThan(2000);
            s.setQueryTimeout(0);
            try (ResultSet rs = s.executeQuery("SELECT 'usable after the timeout'")) {
                assertThat(rs.next()).isTrue();
            }
        }
    }

    @Test
    void ordinaryConnectionsOverTheCapStillWaitAndGet1040() throws Exception {
        try (Connection held = connect()) {
            CompletableFuture<SQLException> first = refusedLater();
            await().atMost(Duration.ofSeconds(5)).until(() -> proxy.clients().findValue("queued").asInt() == 1);
            assertThat(proxy.clients().findValue("probation").asInt()).as("waiting on its probation upstream").isEqualTo(1);
            CompletableFuture<SQLException> second = refusedLater(); // no probation left: waits without an upstream
            await().atMost(Duration.ofSeconds(5)).until(() -> proxy.clients().findValue("queued").asInt() == 2);
            assertThat(serverConnections()).as("the held one and the one on probation").isEqualTo(2);
            for (CompletableFuture<SQLException> refused : java.util.List.of(first, second)) {
                SQLException e = refused.get(20, TimeUnit.SECONDS);
                assertThat((Throwable) e).isNotNull();
                assertThat(e.getErrorCode()).as("%s", e).isEqualTo(1040);
                assertThat(e.getSQLState()).isEqualTo("08004");
                assertThat(e.getMessage()).contains("too many connections for client");
            }
            try (Statement s = held.createStatement(); ResultSet rs = s.executeQuery("SELECT 1")) {
                assertThat(rs.next()).isTrue();
            }
        }
        await().atMost(Duration.ofSeconds(10)).until(() -> serverConnections() == 0);
    }

    /** A connection attempt expected to fail: completes with its exception and how long it waited. */
    private static CompletableFuture<SQLException> refusedLater() {
        return CompletableFuture.supplyAsync(() -> {
            long start = System.nanoTime();
            try (Connection c = connect(); Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT 1")) {
                return null;
            } catch (SQLException e) {
                long millis = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
                assertThat(millis).as("waited queueTimeout (3 s) first").isGreaterThanOrEqualTo(2500);
                return e;
            }
        });
    }
}
