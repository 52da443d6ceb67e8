package io.connguard.mysql;

import com.fasterxml.jackson.databind.JsonNode;
import io.connguard.core.testing.LeakGuard;
import io.connguard.core.testing.LogCapture;
import io.connguard.core.testing.TestProxy;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

/**
 * Leak detection on a {@code pool.mode: session} MySQL listener: a client connection held open and unused
 * (holding its server connection) is named a leak suspect once its client needs more connections than
 * it has (another connection of the same client waits at the cap and is refused), in {@code /sessions},
 * the {@code connguard_client_leak_suspects} gauge and one WARN line; used again, it is no longer one.
 */
@ExtendWith(LeakGuard.class)
class MySqlPooledLeakIT {

    private static final String JDBC = "sslMode=DISABLED&allowPublicKeyRetrieval=true";

    @BeforeAll
    static void account() throws SQLException {
        MySqlSessionPoolIT.account();
    }

    private static Connection connect(TestProxy proxy) throws SQLException {
        return MySqlIt.connect(MySqlIt.mysqlUrl(proxy, JDBC), MySqlSessionPoolIT.USER, MySqlSessionPoolIT.PASSWORD);
    }

    private static long thread(Connection c) throws SQLException {
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT CONNECTION_ID()")) {
            rs.next();
            return rs.getLong(1);
        }
    }

    private static double suspects(TestProxy proxy) {
        return proxy.scrape().sum("connguard_client_leak_suspects", "listener", "my", "user", MySqlSessionPoolIT.USER);
    }

    /** The sessions {@code /sessions} flags as leak suspects. */
    private static int flagged(TestProxy proxy) {
        int flagged = 0;
        for (JsonNode session : proxy.sessions()) {
            if (session.path("leakSuspect").asBoolean()) {
                flagged++;
            }
        }
        return flagged;
    }

    @Test
    void anIdleHeldConnectionIsALeakSuspectOnceItsClientIsRefusedAtTheCap() throws Exception {
        try (LogCapture logs = new LogCapture("io.connguard.session");
             TestProxy proxy = MySqlIt.proxy("    pool:\n      mode: session\n      size: 4\n", """
                         maxConnections: 2
                         queueTimeout: 300ms
                         idleInTransactionTimeout: 0
                         leakDetectionThreshold: 1s
                     """
             );
             Connection leaked = connect(proxy);
             Connection used = connect(proxy)) {
            long leakedThread = thread(leaked);
            assertThat(thread(used)).isNotEqualTo(leakedThread);
            Thread.sleep(1_200); // both idle past the threshold: candidates, but the client needs nothing more yet
            assertThat(suspects(proxy)).as("a pool's idle spares are no suspects").isZero();

            assertThatThrownBy(() -> connect(proxy).close()).as("a third connection of the client, at its cap")
                    .isInstanceOf(SQLException.class)
                    .satisfies(e -> assertThat(((SQLException) e).getErrorCode()).isIn(1040, 1226));
            await().atMost(15, TimeUnit.SECONDS).until(() -> suspects(proxy) == 2.0);
            assertThat(flagged(proxy)).as("sessions flagged in /sessions").isEqualTo(2);
            assertThat(logs.lines("WARN", "connection leak suspected")).isNotEmpty();

            assertThat(thread(used)).as("used again, on its own server connection").isNotEqualTo(leakedThread);
            await().atMost(5, TimeUnit.SECONDS).until(() -> suspects(proxy) == 1.0);
            assertThat(flagged(proxy)).isEqualTo(1);
            assertThat(MySqlSessionPoolIT.serverThreads()).as("the held connection keeps its server thread")
                    .contains(leakedThread);
            MySqlIt.assertTrackerInSync(proxy);
        }
    }
}
