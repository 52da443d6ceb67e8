package io.connguard.core.fleet;

import io.connguard.core.admission.ClientKey;
import io.connguard.core.testing.LineClient;
import io.connguard.core.testing.LogCapture;
import io.connguard.core.testing.RedisProcess;
import io.connguard.core.testing.TestCertificates;
import io.connguard.core.testing.TestProxy;
import io.connguard.core.testing.TestUpstreams;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/**
 * The fleet store behind Redis AUTH and TLS, each against a {@code redis-server} of the test's own (never the
 * shared one on 6379): the right password or a trusted certificate → the store is up and a connection holds
 * its lease in that Redis; a wrong password or a certificate from a CA connguard was not given → the store
 * counts as unreachable, the local caps still hold, and the WARN says why without the password.
 */
class FleetStoreSecurityIT {

    private static final String PASSWORD = "s3cret-" + UUID.randomUUID().toString().substring(0, 8);

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

    /** A local cap of 1 under a fleet cap of 5: a second connection waits only if the local cap holds. */
    private static String config(String fleet, String store, String extra) {
        return """
                listeners:
                  - name: app
                    protocol: line
                    listen: 127.0.0.1:0
                    upstream: 127.0.0.1:%d
                clients:
                  defaults:
                    maxConnections: 1
                    queueTimeout: 20s
                    fleetMaxConnections: 5
                fleet:
                  store: %s
                  name: %s
                  leaseTtl: 15s
                %s
                shutdown:
                  drainTimeout: 1s
                """.formatted(echoPort, store, fleet, extra);
    }

    private static String fleetName() {
        return "sec-" + UUID.randomUUID().toString().substring(0, 8);
    }

    /** The sorted set that holds the leases of client u/d/a on listener app. */
    private static String leasesKey(String fleet) {
        return "connguard:{" + fleet + "}:" + FleetKeys.of(new ClientKey("app", "u", "d", "a", "")) + ":leases";
    }

    @Test
    void withTheRightPasswordTheStoreIsUpAndAConnectionHoldsALease(@TempDir Path dir) throws Exception {
        String fleet = fleetName();
        String store = "redis://127.0.0.1:%d/0";
        try (RedisProcess redis = RedisProcess.withPassword(dir, PASSWORD);
             TestProxy proxy = TestProxy.start(config(fleet, store.formatted(redis.port()),
                     "  password: ${CG_TEST_FLEET_PASSWORD}"), Map.of("CG_TEST_FLEET_PASSWORD", PASSWORD));
             LineClient client = LineClient.hello(proxy.port("app"), "u", "d", "a")) {
            assertThat(client.readLine()).isEqualTo("WELCOME");
            assertThat(proxy.get("/readyz").body())
                    .contains("fleet " + fleet + ": store " + store.formatted(redis.port()) + " up, fleet caps enforced");
            assertThat(proxy.scrape().value("connguard_fleet_store_up", "fleet", fleet)).isEqualTo(1.0);
            assertThat(redis.command("ZCARD", leasesKey(fleet))).isEqualTo(":1");
            assertThat(proxy.clients().get(0).get("fleetLeases").get("fleet").asInt()).isEqualTo(1);
        }
    }

    @Test
    void withAWrongPasswordTheStoreIsUnreachableTheLocalCapsHoldAndTheLogKeepsThePassword(@TempDir Path dir)
            throws Exception {
        String fleet = fleetName();
        String wrong = "wrong-" + PASSWORD;
        try (RedisProcess redis = RedisProcess.withPassword(dir, PASSWORD);
             LogCapture log = new LogCapture(org.slf4j.Logger.ROOT_LOGGER_NAME);
             TestProxy proxy = TestProxy.start(config(fleet, "redis://127.0.0.1:" + redis.port() + "/0",
                     "  password: " + wrong));
             LineClient first = LineClient.hello(proxy.port("app"), "u", "d", "a")) {
            assertThat(first.readLine()).isEqualTo("WELCOME");
            assertThat(proxy.get("/readyz").statusCode()).isEqualTo(200);
            assertThat(proxy.get("/readyz").body()).contains("fleet " + fleet + ": store redis://127.0.0.1:"
                    + redis.port() + "/0 unreachable, per-process caps only");
            assertThat(proxy.scrape().value("connguard_fleet_store_up", "fleet", fleet)).isEqualTo(0.0);
            try (LineClient second = LineClient.hello(proxy.port("app"), "u", "d", "a")) {
                // Under a fleet cap of 5, only the local cap of 1 makes the second connection wait.
                await().atMost(10, TimeUnit.SECONDS).until(() -> proxy.clients().get(0).get("queued").asInt() == 1);
            }
            assertThat(redis.command("DBSIZE")).as("nothing reached the store").isEqualTo(":0");
            assertThat(log.lines("WARN", "is not reachable")).singleElement().satisfies(line -> {
                assertThat(line.text()).contains("fleet " + fleet).containsIgnoringCase("WRONGPASS");
                assertThat(line.text()).doesNotContain(wrong).doesNotContain(PASSWORD);
            });
            assertThat(log.lines()).noneMatch(line -> line.text().contains(wrong) || line.text().contains(PASSWORD));
        }
    }

    @Test
    void overTlsWithTheCaFileTheStoreIsUpAndAConnectionHoldsALease(@TempDir Path dir) throws Exception {
        TestCertificates authority = TestCertificates.authority("connguard fleet test CA");
        Path ca = authority.writeCa(dir.resolve("ca.pem"));
        TestCertificates.Issued server = authority.issue(dir, "redis", false);
        String fleet = fleetName();
        try (RedisProcess redis = RedisProcess.withTls(dir, server.certFile(), server.keyFile(), ca);
             TestProxy proxy = TestProxy.start(config(fleet, "rediss://127.0.0.1:" + redis.port() + "/0",
                     "  caFile: " + ca));
             LineClient client = LineClient.hello(proxy.port("app"), "u", "d", "a")) {
            assertThat(client.readLine()).isEqualTo("WELCOME");
            assertThat(proxy.get("/readyz").body()).contains("fleet " + fleet + ": store rediss://127.0.0.1:"
                    + redis.port() + "/0 up, fleet caps enforced");
            assertThat(proxy.scrape().value("connguard_fleet_store_up", "fleet", fleet)).isEqualTo(1.0);
            assertThat(redis.command("ZCARD", leasesKey(fleet))).isEqualTo(":1");
            assertThat(proxy.clients().get(0).get("fleetLeases").get("fleet").asInt()).isEqualTo(1);
        }
    }

    @Test
    void overTlsWithoutTheCaFileTheCertificateIsNotTrustedAndTheLogSaysSo(@TempDir Path dir) throws Exception {
        TestCertificates authority = TestCertificates.authority("connguard fleet test CA");
        Path ca = authority.writeCa(dir.resolve("ca.pem"));
        TestCertificates.Issued server = authority.issue(dir, "redis", false);
        String fleet = fleetName();
        try (RedisProcess redis = RedisProcess.withTls(dir, server.certFile(), server.keyFile(), ca);
             LogCapture log = new LogCapture(FleetLeases.class.getName());
             TestProxy proxy = TestProxy.start(config(fleet, "rediss://127.0.0.1:" + redis.port() + "/0", ""));
             LineClient first = LineClient.hello(proxy.port("app"), "u", "d", "a")) {
            assertThat(first.readLine()).isEqualTo("WELCOME");
            assertThat(proxy.get("/readyz").body()).contains("fleet " + fleet + ": store rediss://127.0.0.1:"
                    + redis.port() + "/0 unreachable, per-process caps only");
            assertThat(proxy.scrape().value("connguard_fleet_store_up", "fleet", fleet)).isEqualTo(0.0);
            try (LineClient second = LineClient.hello(proxy.port("app"), "u", "d", "a")) {
                await().atMost(10, TimeUnit.SECONDS).until(() -> proxy.clients().get(0).get("queued").asInt() == 1);
            }
            assertThat(redis.command("DBSIZE")).isEqualTo(":0");
            assertThat(log.lines("WARN", "is not reachable")).singleElement().satisfies(line ->
                    assertThat(line.text()).contains("unable to find valid certification path"));
        }
    }
}
