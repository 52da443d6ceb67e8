package io.connguard.mysql;

import io.connguard.core.testing.LeakGuard;
import io.connguard.core.testing.TestProxy;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowableOfType;
import static org.awaitility.Awaitility.await;

/**
 * When core ends or refuses a session, the driver reads connguard's ERR packet. The idle-transaction kill
 * is checked with MariaDB Connector/J: MySQL Connector/J skips bytes that arrive while it is idle
 * ({@code NativeProtocol.clearInputStream} before each command) and reports a communications failure
 * instead (see README, limitations).
 */
@ExtendWith(LeakGuard.class)
class MySqlEnforcementIT {

    @Test
    void anIdleTransactionIsKilledWith4031() throws Exception {
        try (TestProxy proxy = MySqlIt.proxy("", "    idleInTransactionTimeout: 1s\n")) {
            for (boolean mysqlDriver : new boolean[] {false}) {
                String url = mysqlDriver ? MySqlIt.mysqlUrl(proxy, "sslMode=DISABLED") : MySqlIt.mariadbUrl(proxy, "");
                try (Connection c = MySqlIt.connect(url, MySqlIt.NATIVE_USER, MySqlIt.NATIVE_PASSWORD); Statement s = c.createStatement()) {
                    s.execute("START TRANSACTION");
                    await().atMost(Duration.ofSeconds(10)).until(() -> proxy.sessions().isEmpty());
                    SQLException killed = catchThrowableOfType(SQLException.class, () -> {
                        try (ResultSet rs = s.executeQuery("SELECT 1")) {
                            rs.next();
                        }
                    });
                    assertThat((Throwable) killed).as(mysqlDriver ? "Connector/J" : "MariaDB Connector/J").isNotNull();
                    Throwable cause = killed;
                    StringBuilder chain = new StringBuilder();
                    for (Throwable t = killed; t != null; t = t.getCause()) {
                        chain.append(t).append(" | ");
                    }
                    assertThat(killed.getErrorCode()).as(chain.toString()).isEqualTo(4031);
                    assertThat(killed.getSQLState()).isEqualTo("HY000");
                    assertThat(killed.getMessage()).contains("idle-in-transaction timeout");
                }
            }
        }
    }

    @Test
    void overTheCapClientsWaitThenGet1040AndTheCapStillHoldsAfterwards() throws Exception {
        try (TestProxy proxy = MySqlIt.proxy("", "    maxConnections: 1\n    queueTimeout: 1s\n    idleInTransactionTimeout: 0\n")) {
            String url = MySqlIt.mysqlUrl(proxy, "sslMode=DISABLED");
            try (Connection held = MySqlIt.connect(url, MySqlIt.NATIVE_USER, MySqlIt.NATIVE_PASSWORD)) {
                for (int attempt = 0; attempt < 3; attempt++) {
                    SQLException refused = catchThrowableOfType(SQLException.class,
                            () -> MySqlIt.connect(url, MySqlIt.NATIVE_USER, MySqlIt.NATIVE_PASSWORD).close());
                    assertThat((Throwable) refused).as("attempt %d while the only slot is held", attempt).isNotNull();
                    assertThat(refused.getErrorCode()).isEqualTo(1040);
                    assertThat(refused.getSQLState()).isEqualTo("08004");
                    assertThat(refused.getMessage()).contains("too many connections for client");
                }
                assertThat(proxy.sessions().size()).as("sessions admitted while the cap is 1").isEqualTo(1);
                try (ResultSet rs = held.createStatement().executeQuery("SELECT 1")) {
                    assertThat(rs.next()).isTrue();
                }
            }
            await().atMost(Duration.ofSeconds(10)).until(() -> proxy.sessions().isEmpty());
            try (Connection next = MySqlIt.connect(url, MySqlIt.NATIVE_USER, MySqlIt.NATIVE_PASSWORD)) {
                assertThat(next.isValid(5)).isTrue();
            }
        }
    }

    /**
     * idleTimeout and maxSessionLifetime end an idle session: MariaDB Connector/J reads error 4031, MySQL
     * Connector/J (which skips bytes that arrive while it is idle) fails its next statement with connguard's
     * message, and /metrics counts each under its own reason for that client.
     */
    @org.junit.jupiter.params.ParameterizedTest
    @org.junit.jupiter.params.provider.CsvSource({"idleTimeout, idle, idle-session timeout",
            "maxSessionLifetime, lifetime, maximum lifetime"})
    void idleAndLifetimeKillsReachBothDriversAndAreCountedByReason(String limit, String reason, String message)
            throws Exception {
        try (TestProxy proxy = MySqlIt.proxy("", "    idleInTransactionTimeout: 0\n    " + limit + ": 1s\n")) {
            for (boolean mysqlDriver : new boolean[] {true, false}) {
                String app = "cg-my-" + reason + (mysqlDriver ? "-cj" : "-mariadb");
                String attributes = "connectionAttributes=program_name:" + app;
                String url = mysqlDriver ? MySqlIt.mysqlUrl(proxy, "sslMode=DISABLED&" + attributes)
                        : MySqlIt.mariadbUrl(proxy, attributes);
                try (Connection c = MySqlIt.connect(url, MySqlIt.NATIVE_USER, MySqlIt.NATIVE_PASSWORD);
                     Statement s = c.createStatement()) {
                    try (ResultSet rs = s.executeQuery("SELECT 1")) {
                        assertThat(rs.next()).isTrue();
                    }
                    await().atMost(Duration.ofSeconds(15)).until(() -> proxy.sessions().isEmpty());
                    SQLException killed = catchThrowableOfType(SQLException.class, () -> {
                        try (ResultSet rs = s.executeQuery("SELECT 1")) {
                            rs.next();
                        }
                    });
                    assertThat((Throwable) killed).as(app).isNotNull();
                    StringBuilder chain = new StringBuilder();
                    for (Throwable t = killed; t != null; t = t.getCause()) {
                        chain.append(t).append(" | ");
                    }
                    if (mysqlDriver) {
                        assertThat(chain.toString()).as("Connector/J carries connguard's message").contains(message);
                    } else {
                        assertThat(killed.getErrorCode()).as(chain.toString()).isEqualTo(4031);
                        assertThat(killed.getSQLState()).isEqualTo("HY000");
                        assertThat(killed.getMessage()).contains(message);
                    }
                }
                var scrape = proxy.scrape(); // the first scrape after the close sees the client's final values
                assertThat(scrape.sum("connguard_client_sessions_closed_total", "listener", "my",
                        "application", app, "reason", reason)).as(app).isEqualTo(1);
                assertThat(scrape.sum("connguard_client_sessions_closed_total", "listener", "my",
                        "application", app)).as("%s: no other reason", app).isEqualTo(1);
            }
        }
    }
}
