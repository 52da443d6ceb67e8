package io.connguard.core.lifecycle;

import io.connguard.core.testing.LeakGuard;
import io.connguard.core.testing.LineClient;
import io.connguard.core.testing.TestProxy;
import io.connguard.core.testing.TestUpstreams;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

import java.nio.file.Files;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/** Drain and reload, observed as a client and an operator would: through sockets and the admin API. */
@ExtendWith(LeakGuard.class)
class LifecycleIT {

    private static TestUpstreams upstreams;
    private static int echoPort;

    @BeforeAll
    static void servers() {
        upstreams = new TestUpstreams();
        echoPort = upstreams.echo().getPort();
    }

    @AfterAll
    static void stop() {
        upstreams.close();
    }

    private static String config(String shutdown, String defaults) {
        return """
                listeners:
                  - name: app
                    protocol: line
                    listen: 127.0.0.1:0
                    upstream: 127.0.0.1:%d
                clients:
                  defaults:
                %s
                shutdown:
                %s
                """.formatted(echoPort, defaults.indent(4), shutdown.indent(2));
    }

    private static void assertEchoes(LineClient client, String text) throws Exception {
        client.send(text + "\n");
        assertThat(client.readLine()).isEqualTo(text);
    }

    @Test
    void drainKeepsOpenSessionsWorkingAndRefusesNewOnesAfterMinDrainDelay() throws Exception {
        TestProxy proxy = TestProxy.start(config("minDrainDelay: 1s\ndrainTimeout: 60s", "maxConnections: 0"));
        int port = proxy.port("app");
        try (LineClient open = LineClient.hello(port, "u", "d", "a")) {
            assertThat(open.readLine()).isEqualTo("WELCOME");
            proxy.server().drain();
            assertThat(proxy.get("/readyz").statusCode()).isEqualTo(503);
            assertThat(proxy.get("/healthz").statusCode()).isEqualTo(200);
            try (LineClient during = LineClient.hello(port, "u", "d", "a")) {
                assertThat(during.readLine()).as("admitted during minDrainDelay").isEqualTo("WELCOME");
                assertEchoes(during, "still accepting");
            }
            await().atMost(5, TimeUnit.SECONDS).until(() -> proxy.server().drainControl().refusing());
            try (LineClient late = LineClient.hello(port, "u", "d", "a")) {
                assertThat(late.readLine()).startsWith("ERROR DRAINING the proxy is shutting down");
                assertThat(late.closedByPeer()).isTrue();
            }
            assertEchoes(open, "open session keeps working during the drain");
            assertThat(proxy.server().terminated()).isNotDone();
        }
        assertThat(proxy.server().terminated().get(10, TimeUnit.SECONDS)).isEqualTo(0);
    }

    @Test
    void drainEndsStragglersAtDrainTimeoutWithTheShutdownError() throws Exception {
        TestProxy proxy = TestProxy.start(config("minDrainDelay: 0s\ndrainTimeout: 1s", "maxConnections: 0"));
        try (LineClient straggler = LineClient.hello(proxy.port("app"), "u", "d", "a")) {
            assertThat(straggler.readLine()).isEqualTo("WELCOME");
            proxy.server().drain();
            assertThat(straggler.readLine()).startsWith("ERROR SHUTDOWN terminating connection due to administrator command");
            assertThat(straggler.closedByPeer()).isTrue();
        }
        assertThat(proxy.server().terminated().get(10, TimeUnit.SECONDS)).isEqualTo(0);
    }

    @Test
    void reloadRaisesACapAdmittingTheWaiterWithoutDroppingTheOpenSession() throws Exception {
        String before = config("drainTimeout: 1s", "maxConnections: 1\nqueueTimeout: 30s");
        try (TestProxy proxy = TestProxy.start(before);
             LineClient first = LineClient.hello(proxy.port("app"), "u", "d", "a")) {
            assertThat(first.readLine()).isEqualTo("WELCOME");
            LineClient second = LineClient.hello(proxy.port("app"), "u", "d", "a");
            await().atMost(5, TimeUnit.SECONDS).until(() -> proxy.clients().get(0).get("queued").asInt() == 1);
            assertThat(proxy.reload(config("drainTimeout: 1s", "maxConnections: 2\nqueueTimeout: 30s")).ok()).isTrue();
            assertThat(second.readLine()).as("the waiter is admitted by the raised cap").isEqualTo("WELCOME");
            assertEchoes(first, "first survived the reload");
            assertEchoes(second, "second admitted");
            assertThat(proxy.clients().get(0).get("maxConnections").asInt()).isEqualTo(2);
            second.close();
        }
    }

    @Test
    void reloadLowersACapWithoutKillingAdmittedSessions() throws Exception {
        try (TestProxy proxy = TestProxy.start(config("drainTimeout: 1s", "maxConnections: 2\nqueueTimeout: 30s"));
             LineClient a = LineClient.hello(proxy.port("app"), "u", "d", "a");
             LineClient b = LineClient.hello(proxy.port("app"), "u", "d", "a")) {
            assertThat(a.readLine()).isEqualTo("WELCOME");
            assertThat(b.readLine()).isEqualTo("WELCOME");
            await().atMost(5, TimeUnit.SECONDS).until(() -> proxy.clients().get(0).get("total").asInt() == 2);
            assertThat(proxy.reload(config("drainTimeout: 1s", "maxConnections: 1\nqueueTimeout: 30s")).ok()).isTrue();
            assertEchoes(a, "a kept");
            assertEchoes(b, "b kept");
            try (LineClient c = LineClient.hello(proxy.port("app"), "u", "d", "a")) {
                await().atMost(5, TimeUnit.SECONDS).until(() -> proxy.clients().get(0).get("queued").asInt() == 1);
                a.close();
                // Once a's slot is given back the count is 1, the lowered cap: the waiter must still wait.
                await().atMost(5, TimeUnit.SECONDS).until(() -> proxy.clients().get(0).get("total").asInt() == 1);
                assertThat(proxy.clients().get(0).get("queued").asInt())
                        .as("one session still holds the lowered cap of 1").isEqualTo(1);
                b.close();
                assertThat(c.readLine()).as("admitted once the count fell below the cap").isEqualTo("WELCOME");
            }
        }
    }

    @Test
    void aQueuedClientThatLeavesGivesUpItsPlaceAtOnce() throws Exception {
        try (TestProxy proxy = TestProxy.start(config("drainTimeout: 1s", "maxConnections: 1\nqueueTimeout: 30s"));
             LineClient holder = LineClient.hello(proxy.port("app"), "u", "d", "a")) {
            assertThat(holder.readLine()).isEqualTo("WELCOME");
            LineClient leaver = LineClient.hello(proxy.port("app"), "u", "d", "a");
            await().atMost(5, TimeUnit.SECONDS).until(() -> proxy.clients().get(0).get("queued").asInt() == 1);
            try (LineClient next = LineClient.hello(proxy.port("app"), "u", "d", "a")) {
                await().atMost(5, TimeUnit.SECONDS).until(() -> proxy.clients().get(0).get("queued").asInt() == 2);
                leaver.close();
                await().atMost(2, TimeUnit.SECONDS).until(() -> proxy.clients().get(0).get("queued").asInt() == 1);
                holder.close();
                assertThat(next.readLine()).as("the slot goes to the next waiter, not to the one that left")
                        .isEqualTo("WELCOME");
            }
        }
    }

    @Test
    void invalidOrRestartNeedingReloadKeepsTheRunningConfiguration() throws Exception {
        String good = config("drainTimeout: 1s", "maxConnections: 7");
        try (TestProxy proxy = TestProxy.start(good);
             LineClient client = LineClient.hello(proxy.port("app"), "u", "d", "a")) {
            assertThat(client.readLine()).isEqualTo("WELCOME");
            ReloadResult invalid = proxy.reload(good.replace("maxConnections: 7", "maxConnections: seven"));
            assertThat(invalid.status()).isEqualTo(ReloadResult.Status.INVALID);
            assertThat(invalid.reasons()).singleElement().asString().contains("clients.defaults.maxConnections");
            ReloadResult refused = proxy.reload(good.replace("listen: 127.0.0.1:0", "listen: 127.0.0.1:1"));
            assertThat(refused.status()).isEqualTo(ReloadResult.Status.REFUSED);
            assertThat(refused.reasons()).singleElement().asString().contains("listener app: listen changed");
            assertThat(proxy.server().config().clients().defaults().maxConnections()).isEqualTo(7);
            assertEchoes(client, "still here");
        }
    }

    @Test
    void editingTheFileReloadsItWithoutASignalAndTheOpenSessionGetsTheNewLimits() throws Exception {
        try (TestProxy proxy = TestProxy.start(config("drainTimeout: 1s", "maxConnections: 3\nidleTimeout: 0"));
             LineClient open = LineClient.hello(proxy.port("app"), "u", "d", "reload")) {
            assertThat(open.readLine()).isEqualTo("WELCOME");
            assertEchoes(open, "before");
            assertThat(proxy.clients().get(0).get("maxConnections").asInt()).isEqualTo(3);
            String edited = Files.readString(proxy.configFile()).replace("maxConnections: 3", "maxConnections: 9")
                    .replace("idleTimeout: 0", "idleTimeout: 5s");
            Files.writeString(proxy.configFile(), edited); // no reload call, no signal: the watcher notices
            await().atMost(10, TimeUnit.SECONDS)
                    .until(() -> proxy.server().config().clients().defaults().maxConnections() == 9);
            assertEchoes(open, "after"); // in use again: its new idleTimeout counts from here
            assertThat(proxy.clients().get(0).get("maxConnections").asInt()).as("the open session's client").isEqualTo(9);
            assertThat(proxy.clients().get(0).get("limits").get("idleTimeout").asText()).isEqualTo("5s");
            // The new idleTimeout reaches the session that was open before the edit: it is ended for idleness.
            assertThat(open.readLine()).startsWith("ERROR IDLE_TIMEOUT");
            assertThat(proxy.scrape().value("connguard_client_sessions_closed_total", "application", "reload",
                    "reason", "idle")).isEqualTo(1);
        }
    }
}
