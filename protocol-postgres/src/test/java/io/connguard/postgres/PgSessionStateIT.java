package io.connguard.postgres;

import com.fasterxml.jackson.databind.JsonNode;
import io.connguard.core.testing.LeakGuard;
import io.connguard.core.testing.LogCapture;
import io.connguard.core.testing.TestProxy;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

import java.sql.Connection;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static io.connguard.postgres.PgIt.connect;
import static io.connguard.postgres.PgIt.direct;
import static io.connguard.postgres.PgIt.execute;
import static io.connguard.postgres.PgIt.longValue;
import static io.connguard.postgres.PgIt.state;
import static io.connguard.postgres.PgIt.unique;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

/** What an operator sees in /sessions, and what a client is told when the proxy acts on it. */
@ExtendWith(LeakGuard.class)
class PgSessionStateIT {

    @Test
    void sessionsShowIdleInTransactionIdleActiveAndAFailedTransaction() throws Exception {
        String table = unique("state");
        try (TestProxy proxy = PgIt.proxy(); Connection setup = direct()) {
            execute(setup, "CREATE TABLE " + table + " (id int PRIMARY KEY, n int)");
            execute(setup, "INSERT INTO " + table + " VALUES (1, 0)");
            String app = unique("state");
            try (Connection c = connect(proxy, app)) {
                await().atMost(5, TimeUnit.SECONDS).until(() -> "idle".equals(state(proxy, app)));

                c.setAutoCommit(false);
                execute(c, "UPDATE " + table + " SET n = n + 1 WHERE id = 1");
                await().atMost(5, TimeUnit.SECONDS).until(() -> "idle_in_transaction".equals(state(proxy, app)));
                JsonNode session = PgIt.session(proxy, app);
                assertThat(session.get("inTransaction").asBoolean()).isTrue();
                assertThat(session.get("lastStatement").asText()).isEqualTo("UPDATE " + table + " SET n = n + ? WHERE id = ?");
                c.commit();
                await().atMost(5, TimeUnit.SECONDS).until(() -> "idle".equals(state(proxy, app)));
                assertThat(PgIt.session(proxy, app).get("inTransaction").asBoolean()).isFalse();

                c.setAutoCommit(true);
                Statement sleeping = c.createStatement();
                CompletableFuture<Boolean> sleep = CompletableFuture.supplyAsync(() -> {
                    try {
                        return sleeping.execute("SELECT pg_sleep(3)");
                    } catch (SQLException e) {
                        throw new IllegalStateException(e);
                    }
                });
                await().atMost(5, TimeUnit.SECONDS).until(() -> "active".equals(state(proxy, app)));
                assertThat(PgIt.session(proxy, app).get("lastStatement").asText()).isEqualTo("SELECT pg_sleep(?)");
                sleep.get(10, TimeUnit.SECONDS);
                await().atMost(5, TimeUnit.SECONDS).until(() -> "idle".equals(state(proxy, app)));

                c.setAutoCommit(false);
                assertThatThrownBy(() -> execute(c, "SELECT 1/0")).isInstanceOf(SQLException.class);
                await().atMost(5, TimeUnit.SECONDS).until(() -> "idle_in_transaction".equals(state(proxy, app)));
                assertThat(PgIt.session(proxy, app).get("inTransaction").asBoolean()).isTrue();
                c.rollback();
                await().atMost(5, TimeUnit.SECONDS).until(() -> "idle".equals(state(proxy, app)));
            } finally {
                execute(setup, "DROP TABLE " + table);
            }
        }
    }

    @Test
    void aTransactionLeftIdleIsKilledWith25P03AndRolledBack() throws Exception {
        String table = unique("killed");
        try (TestProxy proxy = TestProxy.start(PgIt.config("idleInTransactionTimeout: 1s"));
             Connection setup = direct(); LogCapture log = new LogCapture("io.connguard.session")) {
            execute(setup, "CREATE TABLE " + table + " (id int PRIMARY KEY, n int)");
            execute(setup, "INSERT INTO " + table + " VALUES (1, 0)");
            try (Connection c = connect(proxy, unique("killed"))) {
                c.setAutoCommit(false);
                execute(c, "UPDATE " + table + " SET n = 42 WHERE id = 1");
                await().atMost(15, TimeUnit.SECONDS).until(() -> proxy.sessions().isEmpty());
                assertThatThrownBy(() -> execute(c, "SELECT 1"))
                        .isInstanceOf(SQLException.class)
                        .satisfies(e -> assertThat(((SQLException) e).getSQLState()).isEqualTo("25P03"));
                assertThat(longValue(setup, "SELECT n FROM " + table + " WHERE id = 1")).as("rolled back").isZero();
                assertThat(log.lines("WARN", "session killed")).singleElement()
                        .satisfies(line -> assertThat(line.field("lastStatement"))
                                .isEqualTo("UPDATE " + table + " SET n = ? WHERE id = ?"));
            } finally {
                execute(setup, "DROP TABLE " + table);
            }
        }
    }

    @Test
    void overTheCapTheClientReadsTooManyConnections() throws Exception {
        try (TestProxy proxy = TestProxy.start(PgIt.config("maxConnections: 1\nqueueTimeout: 0"))) {
            String app = unique("cap");
            try (Connection first = connect(proxy, app)) {
                assertThat(longValue(first, "SELECT 1")).isEqualTo(1);
                assertThatThrownBy(() -> connect(proxy, app).close())
                        .isInstanceOf(SQLException.class)
                        .satisfies(e -> assertThat(((SQLException) e).getSQLState()).isEqualTo("53300"))
                        .hasMessageContaining("too many connections for client");
            }
        }
    }

    @Test
    void overMaxClientConnectionsTheClientIsRefusedAtOnceNamingTheSetting() throws Exception {
        try (TestProxy proxy = TestProxy.start(PgIt.config("maxClientConnections: 2\nqueueTimeout: 10s"))) {
            String app = unique("clientcap");
            try (Connection first = connect(proxy, app); Connection second = connect(proxy, app)) {
                long started = System.nanoTime();
                assertThatThrownBy(() -> connect(proxy, app).close())
                        .isInstanceOf(SQLException.class)
                        .satisfies(e -> assertThat(((SQLException) e).getSQLState()).isEqualTo("53300"))
                        .hasMessageContaining("too many client connections for client")
                        .hasMessageContaining("maxClientConnections");
                assertThat(System.nanoTime() - started).as("refused without waiting for queueTimeout")
                        .isLessThan(TimeUnit.SECONDS.toNanos(8));
                assertThat(longValue(first, "SELECT 1") + longValue(second, "SELECT 1")).isEqualTo(2);
                assertThat(proxy.scrape().value("connguard_client_admissions_total", "application", app,
                        "outcome", "rejected_client_connections")).isEqualTo(1.0);
            }
            try (Connection again = connect(proxy, app)) {
                assertThat(longValue(again, "SELECT 1")).as("a closed connection frees its place").isEqualTo(1);
            }
        }
    }

    @Test
    void anAdminKillReads57P01() throws Exception {
        try (TestProxy proxy = PgIt.proxy()) {
            String app = unique("admin");
            try (Connection c = connect(proxy, app)) {
                await().atMost(5, TimeUnit.SECONDS).until(() -> "idle".equals(state(proxy, app)));
                long id = PgIt.session(proxy, app).get("id").asLong();
                assertThat(proxy.request("DELETE", "/sessions/" + id, null).statusCode()).isEqualTo(200);
                assertThatThrownBy(() -> execute(c, "SELECT 1"))
                        .isInstanceOf(SQLException.class)
                        .satisfies(e -> assertThat(((SQLException) e).getSQLState()).isEqualTo("57P01"));
            }
        }
    }

    /**
     * idleTimeout and maxSessionLifetime end an idle pgjdbc session with 57P05, and /metrics counts each under
     * its own reason for that client.
     */
    @org.junit.jupiter.params.ParameterizedTest
    @org.junit.jupiter.params.provider.CsvSource({"idleTimeout, idle", "maxSessionLifetime, lifetime"})
    void idleAndLifetimeKillsReachPgjdbcAs57P05AndAreCountedByReason(String limit, String reason) throws Exception {
        try (TestProxy proxy = TestProxy.start(PgIt.config(limit + ": 1s"))) {
            String app = unique(reason);
            try (Connection c = connect(proxy, app)) {
                assertThat(longValue(c, "SELECT 1")).isEqualTo(1);
                await().atMost(15, TimeUnit.SECONDS).until(() -> PgIt.session(proxy, app) == null);
                assertThatThrownBy(() -> execute(c, "SELECT 1"))
                        .isInstanceOf(SQLException.class)
                        .satisfies(e -> assertThat(((SQLException) e).getSQLState()).isEqualTo("57P05"));
            }
            String[] client = {"listener", "pg", "user", PgIt.db().user(), "database", PgIt.db().database(),
                    "application", app};
            var scrape = proxy.scrape(); // the first scrape after the close sees the client's final values
            assertThat(scrape.value("connguard_client_sessions_closed_total", with(client, "reason", reason)))
                    .isEqualTo(1);
            for (String other : new String[] {"idle", "lifetime", "client", "upstream"}) {
                if (!other.equals(reason)) {
                    assertThat(scrape.value("connguard_client_sessions_closed_total", with(client, "reason", other)))
                            .as("reason %s", other).isZero();
                }
            }
        }
    }

    private static String[] with(String[] labels, String... more) {
        String[] all = java.util.Arrays.copyOf(labels, labels.length + more.length);
        System.arraycopy(more, 0, all, labels.length, more.length);
        return all;
    }
}
