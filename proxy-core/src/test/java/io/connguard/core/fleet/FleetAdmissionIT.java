package io.connguard.core.fleet;

import io.connguard.core.lifecycle.ReloadResult;
import io.connguard.core.testing.LineClient;
import io.connguard.core.testing.TestProxy;
import io.connguard.core.testing.TestUpstreams;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.UUID;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/**
 * Fleet budgets inside one JVM: two proxies with the same fleet name on the shared Redis (127.0.0.1:6379),
 * their event loops watched by BlockHound, the admin API's view of the leases, and reloads.
 */
class FleetAdmissionIT {

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

    private static String config(String fleet, int fleetCap) {
        return """
                listeners:
                  - name: app
                    protocol: line
                    listen: 127.0.0.1:0
                    upstream: 127.0.0.1:%d
                clients:
                  defaults:
                    maxConnections: 10
                    queueTimeout: 20s
                    fleetMaxConnections: %d
                fleet:
                  store: redis://127.0.0.1:6379/0
                  name: %s
                  leaseTtl: 15s
                shutdown:
                  drainTimeout: 1s
                """.formatted(echoPort, fleetCap, fleet);
    }

    @Test
    void aLeaseFreedOnOneReplicaWakesAWaiterOnTheOtherAtOnce() throws Exception {
        String fleet = "inproc-" + UUID.randomUUID().toString().substring(0, 8);
        try (TestProxy one = TestProxy.start(config(fleet, 1)); TestProxy two = TestProxy.start(config(fleet, 1));
             LineClient holder = LineClient.hello(one.port("app"), "u", "d", "a")) {
            assertThat(holder.readLine()).isEqualTo("WELCOME");
            assertThat(one.get("/readyz").body()).contains("fleet " + fleet + ": store redis://127.0.0.1:6379/0 up");
            try (LineClient waiter = LineClient.hello(two.port("app"), "u", "d", "a")) {
                await().atMost(10, TimeUnit.SECONDS).until(() -> two.clients().size() == 1
                        && two.clients().get(0).get("queued").asInt() == 1);
                var row = one.clients().get(0);
                assertThat(row.get("fleetMaxConnections").asInt()).isEqualTo(1);
                assertThat(row.get("fleetLeases").get("here").asInt()).isEqualTo(1);
                assertThat(row.get("fleetLeases").get("fleet").asInt()).isEqualTo(1);
                assertThat(two.clients().get(0).get("fleetLeases").get("here").asInt()).isZero();

                long freed = System.nanoTime();
                holder.close();
                assertThat(waiter.readLine()).isEqualTo("WELCOME");
                long millis = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - freed);
                System.out.printf("FleetAdmissionIT: lease freed on one replica to the waiter on the other admitted: %d ms%n",
                        millis);
                assertThat(two.scrape().value("connguard_fleet_leases", "fleet", fleet, "listener", "app"))
                        .isEqualTo(1.0);
                assertThat(two.scrape().value("connguard_fleet_store_up", "fleet", fleet)).isEqualTo(1.0);
            }
        }
    }

    @Test
    void aReloadChangesTheFleetCapLiveButNotTheStoreOrName() throws Exception {
        String fleet = "reload-" + UUID.randomUUID().toString().substring(0, 8);
        String yaml = config(fleet, 1);
        try (TestProxy proxy = TestProxy.start(yaml);
             LineClient first = LineClient.hello(proxy.port("app"), "u", "d", "a")) {
            assertThat(first.readLine()).isEqualTo("WELCOME");
            try (LineClient second = LineClient.hello(proxy.port("app"), "u", "d", "a")) {
                await().atMost(10, TimeUnit.SECONDS).until(() -> proxy.clients().get(0).get("queued").asInt() == 1);
                ReloadResult refused = proxy.reload(yaml.replace("name: " + fleet, "name: other"));
                assertThat(refused.status()).isEqualTo(ReloadResult.Status.REFUSED);
                assertThat(refused.reasons()).singleElement().asString().contains("fleet changed");
                ReloadResult applied = proxy.reload(yaml.replace("fleetMaxConnections: 1", "fleetMaxConnections: 2"));
                assertThat(applied.status()).isEqualTo(ReloadResult.Status.APPLIED);
                // The raised cap is seen by the waiter when it next asks (at the latest on the slow poll).
                assertThat(second.readLine()).isEqualTo("WELCOME");
            }
        }
    }
}
