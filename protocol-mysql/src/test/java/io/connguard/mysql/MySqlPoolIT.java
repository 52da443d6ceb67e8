package io.connguard.mysql;

import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;
import io.connguard.core.testing.LeakGuard;
import io.connguard.core.testing.TestProxy;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/** An application's HikariCP pool of 200 connections, all busy at once, through the proxy. */
@ExtendWith(LeakGuard.class)
class MySqlPoolIT {

    private static final int SESSIONS = 200;

    @Test
    void twoHundredConcurrentPooledSessions() throws Exception {
        try (TestProxy proxy = MySqlIt.proxy()) {
            HikariConfig config = new HikariConfig();
            config.setJdbcUrl(MySqlIt.mysqlUrl(proxy, "sslMode=DISABLED&useServerPrepStmts=true&cachePrepStmts=true"
                    + "&connectionAttributes=program_name:cg-my-pool"));
            config.setUsername(MySqlIt.NATIVE_USER);
            config.setPassword(MySqlIt.NATIVE_PASSWORD);
            config.setMaximumPoolSize(SESSIONS);
            config.setMinimumIdle(SESSIONS);
            config.setConnectionTimeout(30_000);
            ExecutorService threads = Executors.newFixedThreadPool(SESSIONS);
            try (HikariDataSource pool = new HikariDataSource(config)) {
                CountDownLatch allHoldOne = new CountDownLatch(SESSIONS);
                List<Future<Long>> results = new ArrayList<>();
                for (int i = 0; i < SESSIONS; i++) {
                    int worker = i;
                    results.add(threads.submit(() -> {
                        long sum = 0;
                        try (Connection c = pool.getConnection()) {
                            allHoldOne.countDown();
                            allHoldOne.await(60, TimeUnit.SECONDS);
                            for (int q = 0; q < 20; q++) {
                                try (PreparedStatement p = c.prepareStatement("SELECT ? + CONNECTION_ID() - CONNECTION_ID()")) {
                                    p.setInt(1, worker * 100 + q);
                                    try (ResultSet rs = p.executeQuery()) {
                                        rs.next();
                                        sum += rs.getLong(1);
                                    }
                                }
                            }
                        }
                        return sum;
                    }));
                }
                long total = 0;
                for (Future<Long> result : results) {
                    total += result.get(120, TimeUnit.SECONDS);
                }
                long expected = 0;
                for (int worker = 0; worker < SESSIONS; worker++) {
                    for (int q = 0; q < 20; q++) {
                        expected += worker * 100L + q;
                    }
                }
                assertThat(total).isEqualTo(expected);
                await().atMost(Duration.ofSeconds(10)).untilAsserted(() ->
                        assertThat(proxy.sessions().size()).isEqualTo(SESSIONS));
                assertThat(proxy.metrics()).contains("connguard_client_connections{application=\"cg-my-pool\"");
                MySqlIt.assertTrackerInSync(proxy);
            } finally {
                threads.shutdownNow();
            }
            await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> assertThat(proxy.sessions().size()).isZero());
        }
    }
}
