package io.connguard.postgres;

import com.fasterxml.jackson.databind.JsonNode;
import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;
import io.connguard.core.testing.LeakGuard;
import io.connguard.core.testing.TestProxy;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import static io.connguard.postgres.PgIt.direct;
import static io.connguard.postgres.PgIt.execute;
import static io.connguard.postgres.PgIt.longValue;
import static io.connguard.postgres.PgIt.unique;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/** A HikariCP pool of 200 connections through the proxy, all busy at once, as a busy service uses it. */
@ExtendWith(LeakGuard.class)
class PgHikariIT {

    private static final int SESSIONS = 200;

    @Test
    void twoHundredConcurrentSessionsFromAPool() throws Exception {
        String table = unique("pool");
        String app = unique("pool");
        try (TestProxy proxy = TestProxy.start(PgIt.config("maxConnections: " + SESSIONS)); Connection setup = direct()) {
            long free = longValue(setup, "SELECT current_setting('max_connections')::int - count(*) FROM pg_stat_activity");
            assertThat(free).as("free server connections for %d sessions (max_connections; %s)", SESSIONS, PgIt.SETUP)
                    .isGreaterThan(SESSIONS + 5);
            execute(setup, "CREATE TABLE " + table + " (worker int, n int)");
            HikariConfig config = new HikariConfig();
            config.setJdbcUrl(PgIt.jdbcUrl(proxy));
            config.setDataSourceProperties(PgIt.props(app));
            config.setMaximumPoolSize(SESSIONS);
            config.setMinimumIdle(SESSIONS);
            config.setConnectionTimeout(30_000);
            config.setPoolName(app);
            ExecutorService workers = Executors.newFixedThreadPool(SESSIONS);
            try (HikariDataSource pool = new HikariDataSource(config)) {
                CountDownLatch allHolding = new CountDownLatch(SESSIONS);
                List<Future<Integer>> results = new ArrayList<>();
                for (int w = 0; w < SESSIONS; w++) {
                    int worker = w;
                    results.add(workers.submit(() -> {
                        try (Connection c = pool.getConnection()) {
                            c.setAutoCommit(false);
                            try (PreparedStatement insert = c.prepareStatement("INSERT INTO " + table + " VALUES (?, ?)")) {
                                insert.setInt(1, worker);
                                insert.setInt(2, 1);
                                insert.executeUpdate();
                            }
                            // Every worker holds its connection inside a transaction until all do.
                            allHolding.countDown();
                            assertThat(allHolding.await(60, TimeUnit.SECONDS)).isTrue();
                            c.commit();
                            c.setAutoCommit(true);
                            int sum = 0;
                            for (int i = 0; i < 10; i++) {
                                try (PreparedStatement select = c.prepareStatement("SELECT ?::int + 1")) {
                                    select.setInt(1, i);
                                    try (ResultSet rs = select.executeQuery()) {
                                        rs.next();
                                        sum += rs.getInt(1);
                                    }
                                }
                            }
                            return sum;
                        }
                    }));
                }
                for (Future<Integer> result : results) {
                    assertThat(result.get(120, TimeUnit.SECONDS)).isEqualTo(55);
                }
                assertThat(longValue(setup, "SELECT count(DISTINCT worker) FROM " + table)).isEqualTo(SESSIONS);
                assertThat(longValue(setup, "SELECT count(*) FROM pg_stat_activity WHERE application_name = '" + app + "'"))
                        .as("one server connection per pooled connection").isEqualTo(SESSIONS);
                JsonNode client = null;
                for (JsonNode c : proxy.clients()) {
                    if (c.get("application").asText().equals(app)) {
                        client = c;
                    }
                }
                assertThat(client).isNotNull();
                assertThat(client.get("total").asInt()).isEqualTo(SESSIONS);
                assertThat(client.get("connections").get("idle").asInt()).isEqualTo(SESSIONS);
                assertThat(proxy.metrics()).contains("connguard_client_connections{application=\"" + app
                        + "\",database=\"" + PgIt.db().database() + "\",listener=\"pg\",state=\"idle\",user=\""
                        + PgIt.db().user() + "\"} " + SESSIONS + ".0");
            } finally {
                workers.shutdownNow();
                execute(setup, "DROP TABLE " + table);
            }
            await().atMost(20, TimeUnit.SECONDS).until(() -> proxy.sessions().isEmpty());
        }
    }
}
