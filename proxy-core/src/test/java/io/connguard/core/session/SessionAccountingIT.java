package io.connguard.core.session;

import com.fasterxml.jackson.databind.JsonNode;
import io.connguard.core.testing.FaultRelay;
import io.connguard.core.testing.LeakGuard;
import io.connguard.core.testing.LineClient;
import io.connguard.core.testing.LogCapture;
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
import static org.awaitility.Awaitility.await;

/**
 * Whom a session is counted for, and when its slot is given back: a slot held until the upstream
 * connection that was still being opened is closed too; sessions re-keyed when a reload changes
 * {@code clients.identity}; leak suspects only while their client needs more connections than it uses.
 */
@ExtendWith(LeakGuard.class)
class SessionAccountingIT {

    private static TestUpstreams upstreams;

    @BeforeAll
    static void servers() {
        upstreams = new TestUpstreams();
    }

    @AfterAll
    static void stop() {
        upstreams.close();
    }

    private static String config(int upstreamPort, String identity, String defaults) {
        return """
                listeners:
                  - name: app
                    protocol: line
                    listen: 127.0.0.1:0
                    upstream: 127.0.0.1:%d
                    connectTimeout: 10s
                clients:
                  identity: %s
                  defaults:
                %s
                """.formatted(upstreamPort, identity, defaults.indent(4).stripTrailing());
    }

    private static LineClient open(TestProxy proxy, String user, String app) throws Exception {
        LineClient client = LineClient.hello(proxy.port("app"), user, "db", app);
        assertThat(client.readLine()).isEqualTo("WELCOME");
        return client;
    }

    private static int queued(TestProxy proxy) {
        int sum = 0;
        for (JsonNode client : proxy.clients()) {
            sum += client.get("queued").asInt();
        }
        return sum;
    }

    @Test
    void aSessionClosedWhileItsUpstreamConnectIsInFlightKeepsItsSlotUntilThatConnectionIsClosed() throws Exception {
        try (FaultRelay database = FaultRelay.to(upstreams.echo());
             TestProxy proxy = TestProxy.start(config(database.port(), "[user]", """
                     maxConnections: 1
                     queueTimeout: 20s"""))) {
            database.blackholeConnects();
            LineClient first = LineClient.hello(proxy.port("app"), "cap", "db", "a");
            await().atMost(5, TimeUnit.SECONDS).until(() -> proxy.clients().size() == 1
                    && proxy.clients().get(0).get("total").asInt() == 1);
            first.close(); // its upstream connect is still hanging in the blackhole
            await().atMost(5, TimeUnit.SECONDS).until(() -> proxy.server().registry().size() == 0);

            try (LineClient second = LineClient.hello(proxy.port("app"), "cap", "db", "b")) {
                // The second is either queued or (the bug) admitted and connecting: wait for the decision.
                await().atMost(5, TimeUnit.SECONDS).until(() -> proxy.clients().size() == 1
                        && queued(proxy) + proxy.clients().get(0).get("total").asInt() == 1);
                assertThat(queued(proxy)).as("the first connect may still reach the database: the slot is not free")
                        .isEqualTo(1);

                database.acceptConnects(); // the first connect completes (and is closed), then the second goes
                assertThat(second.readLine()).isEqualTo("WELCOME");
                second.send("ping\n");
                assertThat(second.readLine()).isEqualTo("ping");
                assertThat(queued(proxy)).isZero();
            }
        }
    }

    @Test
    void aReloadThatChangesTheIdentityMovesOpenSessionsToTheirNewKeysSoNoKeyGetsTwoCaps() throws Exception {
        String byApplication = config(upstreams.echo().getPort(), "[user, application]", """
                maxConnections: 2
                queueTimeout: 0""");
        String byUser = config(upstreams.echo().getPort(), "[user]", """
                maxConnections: 2
                queueTimeout: 0""");
        try (TestProxy proxy = TestProxy.start(byApplication);
             LineClient web = open(proxy, "shop", "web");
             LineClient batch = open(proxy, "shop", "batch")) {
            assertThat(proxy.clients()).hasSize(2);

            assertThat(proxy.reload(byUser).status()).isEqualTo(io.connguard.core.lifecycle.ReloadResult.Status.APPLIED);
            await().atMost(5, TimeUnit.SECONDS).untilAsserted(() -> {
                JsonNode clients = proxy.clients();
                assertThat(clients).hasSize(1);
                assertThat(clients.get(0).get("user").asText()).isEqualTo("shop");
                assertThat(clients.get(0).get("application").asText()).isEmpty();
                assertThat(clients.get(0).get("total").asInt()).isEqualTo(2);
            });
            assertThat(proxy.scrape().value("connguard_client_connections", "user", "shop", "application", "",
                    "state", "idle")).isEqualTo(2);

            try (LineClient third = LineClient.hello(proxy.port("app"), "shop", "db", "report")) {
                assertThat(third.readLine()).as("the user's cap of 2 is full with the two re-keyed sessions")
                        .startsWith("ERROR TOO_MANY_CONNECTIONS");
            }
            web.send("still here\n");
            assertThat(web.readLine()).isEqualTo("still here");
        }
    }

    @Test
    void anIdleSessionOfAClientThatNeedsNothingMoreIsNoLeakSuspect() throws Exception {
        try (LogCapture logs = new LogCapture("io.connguard.session");
             TestProxy proxy = TestProxy.start(config(upstreams.echo().getPort(), "[user]", """
                     maxConnections: 5
                     leakDetectionThreshold: 300ms"""))) {
            List<LineClient> spares = new ArrayList<>();
            try (LineClient worker = open(proxy, "pool", "a")) {
                for (int i = 0; i < 3; i++) {
                    spares.add(open(proxy, "pool", "a"));
                }
                // A pool of four: one connection does all the work, three spares sit idle past the threshold.
                long until = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(1500);
                while (System.nanoTime() < until) {
                    worker.send("work\n");
                    assertThat(worker.readLine()).isEqualTo("work");
                    Thread.sleep(50);
                }
                assertThat(proxy.scrape().value("connguard_client_leak_suspects", "user", "pool")).isZero();
                for (JsonNode session : proxy.sessions()) {
                    assertThat(session.get("leakSuspect").asBoolean()).isFalse();
                }
                assertThat(logs.lines("WARN", "connection leak suspected")).isEmpty();
            } finally {
                for (LineClient spare : spares) {
                    spare.close();
                }
            }
        }
    }

    @Test
    void anIdleSessionBecomesALeakSuspectWhenItsClientQueuesAtItsCapOrKeepsAllItsOtherConnectionsBusy()
            throws Exception {
        try (LogCapture logs = new LogCapture("io.connguard.session");
             TestProxy proxy = TestProxy.start(config(upstreams.echo().getPort(), "[user]", """
                     maxConnections: 2
                     queueTimeout: 200ms
                     leakDetectionThreshold: 300ms"""))) {
            try (LineClient leaked = open(proxy, "leaky", "a");
                 LineClient other = open(proxy, "leaky", "a")) {
                await().atMost(5, TimeUnit.SECONDS).until(() -> proxy.sessions().size() == 2);
                Thread.sleep(500); // both idle past the threshold: candidates, but no need yet
                assertThat(proxy.scrape().value("connguard_client_leak_suspects", "user", "leaky")).isZero();

                try (LineClient third = LineClient.hello(proxy.port("app"), "leaky", "db", "a")) {
                    assertThat(third.readLine()).startsWith("ERROR TOO_MANY_CONNECTIONS");
                }
                await().atMost(5, TimeUnit.SECONDS).until(() ->
                        proxy.scrape().value("connguard_client_leak_suspects", "user", "leaky") == 2);
                assertThat(logs.lines("WARN", "connection leak suspected")).anyMatch(line ->
                        line.message().contains("a connection of the same client")
                                && line.message().endsWith("last statement: (none)"));

                other.send("used\n");
                assertThat(other.readLine()).isEqualTo("used");
                await().atMost(5, TimeUnit.SECONDS).until(() ->
                        proxy.scrape().value("connguard_client_leak_suspects", "user", "leaky") == 1);
            }

            try (LineClient leaked = open(proxy, "busy", "a");
                 LineClient worker = open(proxy, "busy", "a")) {
                Thread.sleep(500); // the leaked one is a candidate from here on
                worker.send("work\n"); // every other connection of the client busy at once
                assertThat(worker.readLine()).isEqualTo("work");
                await().atMost(5, TimeUnit.SECONDS).until(() ->
                        proxy.scrape().value("connguard_client_leak_suspects", "user", "busy") >= 1);
                assertThat(logs.lines("WARN", "connection leak suspected")).anyMatch(line ->
                        line.message().contains("other connections of the same client were busy at once"));
            }
        }
    }
}
