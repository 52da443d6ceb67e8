package io.connguard.mysql;

import io.connguard.core.testing.Database;
import io.connguard.core.testing.LeakGuard;
import io.connguard.core.testing.TestProxy;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowableOfType;
import static org.awaitility.Awaitility.await;

/**
 * The connection id a client sees, against the real server with real drivers: the server's own thread id
 * when the listener is under its cap ({@code SELECT CONNECTION_ID()} agrees with the greeting), an id the
 * proxy gave when the client waited, which KILL reaches wherever it stands in a multi-statement, and never
 * through another listener.
 */
@ExtendWith(LeakGuard.class)
class MySqlThreadIdsIT {

    private static long connectionId(Connection c) throws SQLException {
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT CONNECTION_ID()")) {
            rs.next();
            return rs.getLong(1);
        }
    }

    /** The id in the greeting, as the driver read it. */
    private static long greetingId(Connection c) throws SQLException {
        if (c.isWrapperFor(com.mysql.cj.jdbc.JdbcConnection.class)) {
            return c.unwrap(com.mysql.cj.jdbc.JdbcConnection.class).getId();
        }
        return c.unwrap(org.mariadb.jdbc.Connection.class).getThreadId();
    }

    /** Runs SELECT SLEEP(30) on {@code c} in the background; completes with the time it took. */
    private static CompletableFuture<Long> sleep(Connection c) {
        return CompletableFuture.supplyAsync(() -> {
            long start = System.nanoTime();
            try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT SLEEP(30)")) {
                rs.next();
            } catch (SQLException interrupted) {
                // MariaDB may answer a killed query with 1317 instead of SLEEP's 1
            }
            return TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
        });
    }

    private static void awaitSleeping(Connection observer, long threadId) {
        await().atMost(Duration.ofSeconds(10)).until(() -> {
            try (Statement s = observer.createStatement(); ResultSet rs = s.executeQuery(
                    "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = " + threadId + " AND INFO LIKE 'SELECT SLEEP%'")) {
                rs.next();
                return rs.getInt(1) == 1;
            }
        });
    }

    @Test
    void underTheCapTheGreetingCarriesTheRealThreadIdForBothDrivers() throws Exception {
        try (TestProxy proxy = MySqlIt.proxy()) {
            for (String url : new String[] {MySqlIt.mysqlUrl(proxy, "sslMode=DISABLED"), MySqlIt.mariadbUrl(proxy, "")}) {
                try (Connection c = MySqlIt.connect(url, MySqlIt.NATIVE_USER, MySqlIt.NATIVE_PASSWORD)) {
                    assertThat(greetingId(c)).as(url).isEqualTo(connectionId(c));
                }
            }
        }
    }

    @Test
    void aKillInsideAMultiStatementReachesTheThreadBehindAnIdTheProxyGave() throws Exception {
        try (TestProxy proxy = MySqlIt.proxy("    maxUpstreamConnections: 2\n", "")) {
            String url = MySqlIt.mysqlUrl(proxy, "sslMode=DISABLED&allowMultiQueries=true");
            try (Connection killer = MySqlIt.connect(url, MySqlIt.NATIVE_USER, MySqlIt.NATIVE_PASSWORD)) {
                assertThat(greetingId(killer)).isEqualTo(connectionId(killer));
                Connection filler = MySqlIt.connect(url, MySqlIt.NATIVE_USER, MySqlIt.NATIVE_PASSWORD);
                // the listener is at its cap: the next client is greeted before its upstream exists, and waits
                CompletableFuture<Connection> waiting = CompletableFuture.supplyAsync(() -> {
                    try {
                        return MySqlIt.connect(url, MySqlIt.NATIVE_USER, MySqlIt.NATIVE_PASSWORD);
                    } catch (SQLException e) {
                        throw new IllegalStateException(e);
                    }
                });
                await().atMost(Duration.ofSeconds(10)).until(() -> proxy.clients().findValue("queued").asInt() == 1);
                filler.close();
                try (Connection victim = waiting.get(10, TimeUnit.SECONDS)) {
                    long given = greetingId(victim);
                    long real = connectionId(victim);
                    assertThat(given).as("an id the proxy gave").isNotEqualTo(real);
                    CompletableFuture<Long> slept = sleep(victim);
                    awaitSleeping(killer, real);
                    try (Statement s = killer.createStatement()) {
                        assertThat(s.execute("KILL QUERY " + given + "; SELECT 'after the kill'")).isFalse();
                        assertThat(s.getMoreResults()).isTrue();
                        try (ResultSet rs = s.getResultSet()) {
                            rs.next();
                            assertThat(rs.getString(1)).isEqualTo("after the kill");
                        }
                    }
                    assertThat(slept.get(20, TimeUnit.SECONDS)).as("milliseconds the SLEEP(30) ran").isLessThan(15_000);
                    assertThat(connectionId(victim)).as("KILL QUERY leaves the connection").isEqualTo(real);
                }
            }
        }
    }

    @Test
    void anIdGivenByAnotherListenerIsNeverRewrittenIntoThisListenersThreads() throws Exception {
        Database db = MySqlIt.database();
        try (TestProxy proxy = TestProxy.start("""
                listeners:
                  - name: a
                    protocol: mysql
                    listen: 127.0.0.1:0
                    upstream: %1$s
                  - name: b
                    protocol: mysql
                    listen: 127.0.0.1:0
                    upstream: %1$s
                    maxUpstreamConnections: 1
                clients:
                  defaults:
                    maxConnections: 0
                """.formatted(db.hostPort()))) {
            String urlA = db.jdbcUrl("127.0.0.1", proxy.port("a")) + "?sslMode=DISABLED&allowMultiQueries=true";
            String urlB = db.jdbcUrl("127.0.0.1", proxy.port("b")) + "?sslMode=DISABLED";
            Connection filler = MySqlIt.connect(urlB, MySqlIt.NATIVE_USER, MySqlIt.NATIVE_PASSWORD);
            CompletableFuture<Connection> waiting = CompletableFuture.supplyAsync(() -> {
                try {
                    return MySqlIt.connect(urlB, MySqlIt.NATIVE_USER, MySqlIt.NATIVE_PASSWORD);
                } catch (SQLException e) {
                    throw new IllegalStateException(e);
                }
            });
            await().atMost(Duration.ofSeconds(10)).until(() -> proxy.clients().findValue("queued").asInt() == 1);
            filler.close();
            try (Connection onB = waiting.get(10, TimeUnit.SECONDS);
                 Connection onA = MySqlIt.connect(urlA, MySqlIt.NATIVE_USER, MySqlIt.NATIVE_PASSWORD)) {
                long givenOnB = greetingId(onB);
                long realOnB = connectionId(onB);
                assertThat(givenOnB).isNotEqualTo(realOnB);
                CompletableFuture<Long> slept = sleep(onB);
                awaitSleeping(onA, realOnB);
                SQLException unknown = catchThrowableOfType(SQLException.class, () -> {
                    try (Statement s = onA.createStatement()) {
                        s.execute("KILL QUERY " + givenOnB);
                    }
                });
                assertThat((Throwable) unknown).as("B's id through listener A").isNotNull();
                assertThat(unknown.getErrorCode()).as("%s", unknown).isEqualTo(1094); // Unknown thread id
                assertThat(slept).as("B's query still runs").isNotDone();
                try (Statement s = onA.createStatement()) {
                    s.execute("KILL QUERY " + realOnB + "; SELECT 1"); // a real thread id passes as it is
                }
                assertThat(slept.get(20, TimeUnit.SECONDS)).isLessThan(15_000);
            }
        }
    }
}
