package io.connguard.core.metrics;

import io.connguard.core.testing.LeakGuard;
import io.connguard.core.testing.LineClient;
import io.connguard.core.testing.PrometheusScrape;
import io.connguard.core.testing.TestProxy;
import io.connguard.core.testing.TestUpstreams;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;
import static org.awaitility.Awaitility.await;

/**
 * The per-client metrics, scraped and parsed as Prometheus would, through the test protocol: an echo
 * upstream answers (the session goes idle; an echoed "TX" line means idle in a transaction) and a sink
 * upstream never answers (the session stays active).
 */
@ExtendWith(LeakGuard.class)
class MetricsIT {

    private static TestUpstreams upstreams;
    private static int echo;
    private static int sink;

    @BeforeAll
    static void servers() {
        upstreams = new TestUpstreams();
        echo = upstreams.echo().getPort();
        sink = upstreams.sink().getPort();
    }

    @AfterAll
    static void stop() {
        upstreams.close();
    }

    private static TestProxy proxy(String clients) {
        return TestProxy.start("""
                listeners:
                  - name: app
                    protocol: line
                    listen: 127.0.0.1:0
                    upstream: 127.0.0.1:%d
                  - name: slow
                    protocol: line
                    listen: 127.0.0.1:0
                    upstream: 127.0.0.1:%d
                clients:
                %s
                """.formatted(echo, sink, clients.indent(2)));
    }

    private static LineClient open(TestProxy proxy, String listener, String user, String app) throws Exception {
        LineClient client = LineClient.hello(proxy.port(listener), user, "db", app);
        assertThat(client.readLine()).isEqualTo("WELCOME");
        return client;
    }

    private static void enterTransaction(LineClient client) throws Exception {
        client.send("TX\n");
        assertThat(client.readLine()).isEqualTo("TX");
    }

    private static double connections(PrometheusScrape scrape, String listener, String user, String state) {
        return scrape.value("connguard_client_connections", "listener", listener, "user", user, "state", state);
    }

    @Test
    void connectionGaugesMatchWhatIsHeldOpenByState() throws Exception {
        try (TestProxy proxy = proxy("defaults:\n  maxConnections: 10");
             LineClient idle1 = open(proxy, "app", "alice", "web");
             LineClient idle2 = open(proxy, "app", "alice", "web");
             LineClient tx = open(proxy, "app", "alice", "web");
             LineClient busy = open(proxy, "slow", "alice", "web")) {
            enterTransaction(tx);
            busy.send("SELECT pg_sleep(forever)\n");
            await().atMost(5, TimeUnit.SECONDS).untilAsserted(() -> {
                PrometheusScrape scrape = proxy.scrape();
                assertThat(connections(scrape, "app", "alice", "idle")).isEqualTo(2);
                assertThat(connections(scrape, "app", "alice", "idle_in_transaction")).isEqualTo(1);
                assertThat(connections(scrape, "app", "alice", "active")).isZero();
                assertThat(connections(scrape, "app", "alice", "unknown")).isZero();
                assertThat(connections(scrape, "slow", "alice", "active")).isEqualTo(1);
                assertThat(scrape.value("connguard_client_max_connections", "listener", "app", "user", "alice"))
                        .isEqualTo(10);
                assertThat(scrape.value("connguard_listener_upstream_connections", "listener", "app")).isEqualTo(3);
                assertThat(scrape.type("connguard_client_connections")).isEqualTo("gauge");
                assertThat(scrape.type("connguard_client_admissions_total")).isEqualTo("counter");
                assertThat(scrape.type("connguard_client_queue_wait_seconds")).isEqualTo("histogram");
            });
        }
    }

    @Test
    void aRejectionAKillAndALeakEachMoveTheirSeriesByExactlyOne() throws Exception {
        try (TestProxy proxy = proxy("""
                defaults:
                  maxConnections: 1
                  queueTimeout: 300ms
                  idleInTransactionTimeout: 1s
                  leakDetectionThreshold: 1s
                """)) {
            PrometheusScrape before = proxy.scrape();
            try (LineClient holder = open(proxy, "app", "bob", "web");
                 LineClient rejected = LineClient.hello(proxy.port("app"), "bob", "db", "web")) {
                assertThat(rejected.readLine()).startsWith("ERROR TOO_MANY_CONNECTIONS too many connections for client "
                        + "user=bob database=db application=web");
                PrometheusScrape after = proxy.scrape();
                String[] bob = {"listener", "app", "user", "bob", "application", "web"};
                assertThat(after.value("connguard_client_admissions_total", with(bob, "outcome", "rejected_queue_timeout")))
                        .isEqualTo(1);
                assertThat(after.value("connguard_client_admissions_total", with(bob, "outcome", "queued"))).isEqualTo(1);
                assertThat(after.value("connguard_client_admissions_total", with(bob, "outcome", "admitted"))).isEqualTo(1);
                assertThat(after.value("connguard_client_queue_wait_seconds_count", bob)).isEqualTo(1);
                assertThat(after.value("connguard_client_queue_wait_seconds_sum", bob)).isBetween(0.25, 5.0);
                assertThat(before.value("connguard_client_admissions_total", with(bob, "outcome", "rejected_queue_timeout")))
                        .isZero();
            }

            try (LineClient forgotten = open(proxy, "app", "carol", "web")) {
                enterTransaction(forgotten);
                assertThat(forgotten.readLine()).startsWith(
                        "ERROR IDLE_IN_TRANSACTION_TIMEOUT terminating connection due to idle-in-transaction timeout");
                assertThat(forgotten.closedByPeer()).isTrue();
                await().atMost(5, TimeUnit.SECONDS).untilAsserted(() -> assertThat(proxy.scrape().value(
                        "connguard_client_sessions_closed_total", "listener", "app", "user", "carol",
                        "reason", "idle_in_transaction")).isEqualTo(1));
            }

            try (LineClient leaky = open(proxy, "app", "dave", "web")) {
                // Idle past the threshold, and then the client wants a second connection at its cap of 1.
                await().atMost(5, TimeUnit.SECONDS).until(() -> java.time.Instant.parse(
                        proxy.sessions().get(0).get("stateSince").asText()).isBefore(java.time.Instant.now().minusMillis(1200)));
                try (LineClient more = LineClient.hello(proxy.port("app"), "dave", "db", "web")) {
                    assertThat(more.readLine()).startsWith("ERROR TOO_MANY_CONNECTIONS");
                }
                await().atMost(5, TimeUnit.SECONDS).untilAsserted(() -> {
                    assertThat(proxy.scrape().value("connguard_client_leak_suspects", "listener", "app", "user", "dave"))
                            .isEqualTo(1);
                    assertThat(proxy.sessions().get(0).get("leakSuspect").asBoolean()).isTrue();
                });
                leaky.send("used again\n");
                assertThat(leaky.readLine()).isEqualTo("used again");
                PrometheusScrape used = proxy.scrape();
                assertThat(used.value("connguard_client_leak_suspects", "listener", "app", "user", "dave")).isZero();
                assertThat(used.value("connguard_client_sessions_closed_total", "listener", "app", "user", "dave",
                        "reason", "idle")).isZero();
            }
        }
    }

    @Test
    void busyAndTransactionSecondsAreExactTimeIntegrals() throws Exception {
        try (TestProxy proxy = proxy("defaults:\n  maxConnections: 10\n  idleInTransactionTimeout: 0")) {
            List<LineClient> clients = new ArrayList<>();
            long start;
            long end;
            try {
                for (int i = 0; i < 3; i++) {
                    clients.add(open(proxy, "slow", "erin", "batch"));
                }
                LineClient tx = open(proxy, "app", "erin", "batch");
                clients.add(tx);
                start = System.nanoTime();
                for (int i = 0; i < 3; i++) {
                    clients.get(i).send("long query\n");
                }
                enterTransaction(tx);
                Thread.sleep(2000);
            } finally {
                for (LineClient client : clients) {
                    client.close();
                }
                end = System.nanoTime();
            }
            await().atMost(5, TimeUnit.SECONDS).until(() -> proxy.server().registry().size() == 0);
            double seconds = (end - start) / 1e9;
            PrometheusScrape scrape = proxy.scrape();
            assertThat(scrape.type("connguard_client_busy_seconds_total")).isEqualTo("counter");
            // Three sessions were active for the whole window; the transaction's session was active only
            // for its "TX" round trip. Tolerance: 0.15 s per session for connection setup and teardown.
            assertThat(scrape.value("connguard_client_busy_seconds_total", "listener", "slow", "user", "erin"))
                    .isCloseTo(3 * seconds, within(0.45));
            assertThat(scrape.value("connguard_client_transaction_seconds_total", "listener", "app", "user", "erin"))
                    .isCloseTo(seconds, within(0.15));
        }
    }

    @Test
    void clientSeriesAreCappedAtMaxTrackedClientsAndOutliveTheirSessions() throws Exception {
        try (TestProxy proxy = proxy("maxTrackedClients: 100\ndefaults:\n  maxConnections: 0")) {
            for (int batch = 0; batch < 3; batch++) {
                List<LineClient> open = new ArrayList<>();
                for (int i = 0; i < 200; i++) {
                    open.add(open(proxy, "app", "frank", "app-" + (batch * 200 + i)));
                }
                // The client reads WELCOME as its session's loop records the state change, so the
                // last session may reach the gauges a moment after its client returned.
                await().atMost(5, TimeUnit.SECONDS).until(() -> proxy.scrape()
                        .series("connguard_client_connections", "state", "idle").stream()
                        .mapToDouble(PrometheusScrape.Sample::value).sum() == 200);
                PrometheusScrape scrape = proxy.scrape();
                List<PrometheusScrape.Sample> idle = scrape.series("connguard_client_connections", "state", "idle");
                assertThat(idle).hasSizeLessThanOrEqualTo(101);
                assertThat(idle.stream().mapToDouble(PrometheusScrape.Sample::value).sum()).isEqualTo(200);
                // The first batch's keys keep their places for their grace period, closed or not.
                assertThat(scrape.value("connguard_client_connections", "application", "_other", "state", "idle"))
                        .isEqualTo(batch == 0 ? 100 : 200);
                for (LineClient client : open) {
                    client.close();
                }
                await().atMost(10, TimeUnit.SECONDS).until(() -> proxy.server().registry().size() == 0);
            }
            for (PrometheusScrape scrape : List.of(proxy.scrape(), proxy.scrape())) {
                assertThat(scrape.sum("connguard_client_admissions_total", "outcome", "admitted"))
                        .as("every closed client's admission is still counted").isEqualTo(600);
                assertThat(scrape.series("connguard_client_connections", "state", "idle")).hasSize(101)
                        .allSatisfy(sample -> assertThat(sample.value()).isZero());
            }
            assertThat(proxy.server().metrics().clientSeries()).isEqualTo(101);
        }
    }

    @Test
    void aRejectionAtTheListenerCapIsSeenByTwoScrapesAfterTheClientHasGone() throws Exception {
        try (TestProxy proxy = TestProxy.start("""
                listeners:
                  - name: capped
                    protocol: line
                    listen: 127.0.0.1:0
                    upstream: 127.0.0.1:%d
                    maxUpstreamConnections: 1
                clients:
                  defaults:
                    maxConnections: 10
                    queueTimeout: 0
                """.formatted(echo))) {
            String[] listenerCap = {"listener", "capped", "reason", "listener_cap"};
            assertThat(proxy.scrape().series("connguard_listener_rejections_total", listenerCap))
                    .as("the listener's counter is there, at 0, before any rejection")
                    .singleElement().satisfies(sample -> assertThat(sample.value()).isZero());
            PrometheusScrape first;
            try (LineClient api = open(proxy, "capped", "svc", "api")) {
                try (LineClient batch = LineClient.hello(proxy.port("capped"), "etl", "db", "batch")) {
                    assertThat(batch.readLine()).startsWith("ERROR TOO_MANY_CONNECTIONS too many connections through "
                            + "listener capped (client user=etl database=db application=batch)");
                    assertThat(batch.closedByPeer()).isTrue();
                }
                // The rejected session released its series before it answered: no session of etl is left.
                first = proxy.scrape();
            }
            await().atMost(10, TimeUnit.SECONDS).until(() -> proxy.server().registry().size() == 0);
            Thread.sleep(1000); // Prometheus' next scrape, a while later
            PrometheusScrape second = proxy.scrape();
            for (PrometheusScrape scrape : List.of(first, second)) {
                assertThat(scrape.value("connguard_client_admissions_total", "listener", "capped", "user", "etl",
                        "application", "batch", "outcome", "rejected_listener_cap")).isEqualTo(1);
                assertThat(scrape.series("connguard_client_connections", "user", "etl")).hasSize(4);
                assertThat(scrape.value("connguard_listener_rejections_total", listenerCap)).isEqualTo(1);
                assertThat(scrape.sum("connguard_listener_rejections_total")).isEqualTo(1);
            }
        }
    }

    private static String[] with(String[] labels, String key, String value) {
        String[] all = java.util.Arrays.copyOf(labels, labels.length + 2);
        all[labels.length] = key;
        all[labels.length + 1] = value;
        return all;
    }
}
