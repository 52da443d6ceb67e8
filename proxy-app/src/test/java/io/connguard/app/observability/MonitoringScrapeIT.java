package io.connguard.app.observability;

import io.connguard.core.testing.Database;
import io.connguard.core.testing.LeakGuard;
import io.connguard.core.testing.PrometheusScrape;
import io.connguard.core.testing.RealDatabases;
import io.connguard.core.testing.TestProxy;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

import java.net.ServerSocket;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowableOfType;
import static org.awaitility.Awaitility.await;

/**
 * Every metric the shipped Grafana dashboard and Prometheus alert rules query exists in a real scrape
 * of a proxy that has seen the events they are about: an admitted session, a queued and rejected
 * connection, an idle-in-transaction kill, a leak suspect, an upstream connect error, a fleet lease
 * (on the local Redis, 127.0.0.1:6379), and a transaction and a pin on a transaction-mode listener.
 */
@ExtendWith(LeakGuard.class)
class MonitoringScrapeIT {

    private static final Path CHART_FILES = Path.of("").toAbsolutePath().getParent().resolve("helm/connguard/files");
    private static final Pattern METRIC = Pattern.compile("\\bconnguard_[a-z_]+");

    private final Database pg = RealDatabases.postgres();

    private Connection connect(int port, String application) throws SQLException {
        return DriverManager.getConnection(pg.jdbcUrl("127.0.0.1", port) + "?ApplicationName=" + application
                + "&assumeMinServerVersion=9.0", pg.user(), pg.password());
    }

    @Test
    void everyMetricTheDashboardAndAlertsUseIsInARealScrape() throws Exception {
        int closedPort;
        try (ServerSocket free = new ServerSocket(0)) {
            closedPort = free.getLocalPort();
        }
        try (TestProxy proxy = TestProxy.start("""
                listeners:
                  - name: pg
                    protocol: postgres
                    listen: 127.0.0.1:0
                    upstream: %s
                  - name: down
                    protocol: postgres
                    listen: 127.0.0.1:0
                    upstream: 127.0.0.1:%d
                    connectTimeout: 1s
                  - name: txn
                    protocol: postgres
                    listen: 127.0.0.1:0
                    upstream: %s
                    pool:
                      mode: transaction
                      size: 2
                clients:
                  defaults:
                    maxConnections: 1
                    queueTimeout: 200ms
                    idleInTransactionTimeout: 500ms
                    leakDetectionThreshold: 500ms
                  rules:
                    - match: { application: busy }
                      fleetMaxConnections: 2
                fleet:
                  store: redis://127.0.0.1:6379/0
                  name: monitoring-%s
                """.formatted(pg.hostPort(), closedPort, pg.hostPort(), java.util.UUID.randomUUID().toString().substring(0, 8)))) {
            int port = proxy.port("pg");
            try (Connection held = connect(port, "dash")) {
                SQLException rejected = catchThrowableOfType(SQLException.class, () -> connect(port, "dash").close());
                assertThat(rejected.getSQLState()).isEqualTo("53300");
                await().atMost(10, TimeUnit.SECONDS).until(() ->
                        proxy.scrape().value("connguard_client_leak_suspects", "application", "dash") == 1);
            }
            try (Connection tx = connect(port, "forgetful")) {
                tx.setAutoCommit(false);
                tx.createStatement().execute("SELECT 1");
                await().atMost(10, TimeUnit.SECONDS).until(() -> proxy.scrape().value(
                        "connguard_client_sessions_closed_total", "application", "forgetful",
                        "reason", "idle_in_transaction") == 1);
            }
            SQLException down = catchThrowableOfType(SQLException.class,
                    () -> connect(proxy.port("down"), "nowhere").close());
            assertThat(down.getSQLState()).isEqualTo("08006");
            try (Connection busy = connect(port, "busy"); Connection pooled = connect(proxy.port("txn"), "pooled")) {
                busy.createStatement().execute("SELECT pg_sleep(0.2)");
                pooled.createStatement().execute("SELECT 1"); // a transaction on a lent server connection
                pooled.createStatement().execute("SET search_path = pg_catalog"); // a pin
                PrometheusScrape scrape = proxy.scrape();
                Set<String> scraped = new TreeSet<>();
                scrape.samples().forEach(s -> scraped.add(s.name()));
                for (String file : List.of("dashboard.json", "alerts.yaml")) {
                    Set<String> used = metrics(expressions(file));
                    assertThat(used).as(file).isNotEmpty();
                    for (String metric : used) {
                        assertThat(scraped).as("%s queries %s", file, metric).contains(metric);
                    }
                }
                assertThat(scrape.value("connguard_listener_upstream_connect_errors_total", "listener", "down"))
                        .isEqualTo(1);
            }
        }
    }

    /** The PromQL of every dashboard target and alert rule (the {@code expr} fields), joined. */
    private static String expressions(String file) throws java.io.IOException {
        com.fasterxml.jackson.databind.ObjectMapper mapper = file.endsWith(".json")
                ? new com.fasterxml.jackson.databind.ObjectMapper()
                : new com.fasterxml.jackson.dataformat.yaml.YAMLMapper();
        List<String> found = new java.util.ArrayList<>();
        mapper.readTree(CHART_FILES.resolve(file).toFile()).findValues("expr").forEach(e -> found.add(e.asText()));
        assertThat(found).as("expressions in %s", file).isNotEmpty();
        return String.join("\n", found);
    }

    private static Set<String> metrics(String text) {
        Set<String> names = new TreeSet<>();
        Matcher m = METRIC.matcher(text);
        while (m.find()) {
            names.add(m.group());
        }
        return names;
    }
}
