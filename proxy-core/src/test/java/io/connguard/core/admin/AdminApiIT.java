package io.connguard.core.admin;

import com.fasterxml.jackson.databind.JsonNode;
import io.connguard.core.testing.LeakGuard;
import io.connguard.core.testing.LineClient;
import io.connguard.core.testing.TestProxy;
import io.connguard.core.testing.TestUpstreams;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/** The admin HTTP API as an operator and a script use it. */
@ExtendWith(LeakGuard.class)
class AdminApiIT {

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

    private static String config(String admin) {
        return """
                %s
                listeners:
                  - name: app
                    protocol: line
                    listen: 127.0.0.1:0
                    upstream: 127.0.0.1:%d
                clients:
                  defaults:
                    maxConnections: 4
                """.formatted(admin, echoPort);
    }

    @Test
    void healthReadinessAndMetricsAnswer() {
        try (TestProxy proxy = TestProxy.start(config(""))) {
            assertThat(proxy.get("/healthz").statusCode()).isEqualTo(200);
            assertThat(proxy.get("/readyz").statusCode()).isEqualTo(200);
            var metrics = proxy.get("/metrics");
            assertThat(metrics.statusCode()).isEqualTo(200);
            assertThat(metrics.headers().firstValue("content-type")).hasValueSatisfying(v -> assertThat(v).startsWith("text/plain"));
            assertThat(metrics.body()).contains("connguard_listener_upstream_connections{listener=\"app\"}",
                    "jvm_memory_used_bytes", "netty_allocator_memory_used");
        }
    }

    @Test
    void sessionsAndClientsListEveryDocumentedField() throws Exception {
        try (TestProxy proxy = TestProxy.start(config(""));
             LineClient client = LineClient.hello(proxy.port("app"), "alice", "orders", "web")) {
            assertThat(client.readLine()).isEqualTo("WELCOME");
            client.send("ping\n");
            assertThat(client.readLine()).isEqualTo("ping");
            JsonNode sessions = proxy.sessions();
            assertThat(sessions).hasSize(1);
            JsonNode s = sessions.get(0);
            assertThat(fieldNames(s)).containsExactly("id", "listener", "user", "database", "application", "address",
                    "state", "stateSince", "openedAt", "inTransaction", "leakSuspect", "lastStatement", "bytesIn",
                    "bytesOut");
            assertThat(s.get("listener").asText()).isEqualTo("app");
            assertThat(s.get("user").asText()).isEqualTo("alice");
            assertThat(s.get("database").asText()).isEqualTo("orders");
            assertThat(s.get("application").asText()).isEqualTo("web");
            assertThat(s.get("address").asText()).isEqualTo("127.0.0.1");
            assertThat(s.get("state").asText()).isEqualTo("idle");
            assertThat(s.get("inTransaction").asBoolean()).isFalse();
            assertThat(s.get("leakSuspect").asBoolean()).isFalse();
            assertThat(Instant.parse(s.get("openedAt").asText())).isBeforeOrEqualTo(Instant.now());
            assertThat(Instant.parse(s.get("stateSince").asText()))
                    .isAfterOrEqualTo(Instant.parse(s.get("openedAt").asText()).minusMillis(5));
            assertThat(s.get("bytesIn").asLong()).isEqualTo("HELLO alice orders web\n".length() + "ping\n".length());
            assertThat(s.get("bytesOut").asLong()).isEqualTo("WELCOME\n".length() + "ping\n".length());

            JsonNode clients = proxy.clients();
            assertThat(clients).hasSize(1);
            JsonNode c = clients.get(0);
            assertThat(fieldNames(c)).containsExactly("listener", "user", "database", "application", "address",
                    "connections", "total", "queued", "probation", "leakSuspects", "maxConnections", "fleetMaxConnections", "limits");
            assertThat(c.get("fleetMaxConnections").isNull()).as("no fleet cap").isTrue();
            assertThat(c.get("limits").get("fleetMaxConnections").asInt()).isZero();
            assertThat(c.get("connections").get("idle").asInt()).isEqualTo(1);
            assertThat(c.get("connections").get("active").asInt()).isZero();
            assertThat(c.get("total").asInt()).isEqualTo(1);
            assertThat(c.get("maxConnections").asInt()).isEqualTo(4);
            assertThat(c.get("limits").get("queueTimeout").asText()).isEqualTo("5s");
            assertThat(c.get("limits").get("leakDetectionThreshold").asText()).isEqualTo("10m");
            assertThat(c.get("limits").get("idleTimeout").asText()).isEqualTo("0");
        }
    }

    @Test
    void deleteKillsASessionWithTheAdminErrorAndIsIdempotentlyNotFoundAfterwards() throws Exception {
        try (TestProxy proxy = TestProxy.start(config(""));
             LineClient client = LineClient.hello(proxy.port("app"), "bob", "d", "a")) {
            assertThat(client.readLine()).isEqualTo("WELCOME");
            long id = proxy.sessions().get(0).get("id").asLong();
            assertThat(proxy.request("DELETE", "/sessions/" + id, null).statusCode()).isEqualTo(200);
            assertThat(client.readLine()).startsWith("ERROR ADMIN_KILL terminating connection due to administrator command");
            assertThat(client.closedByPeer()).isTrue();
            await().atMost(5, TimeUnit.SECONDS).until(() -> proxy.sessions().isEmpty());
            assertThat(proxy.request("DELETE", "/sessions/" + id, null).statusCode()).isEqualTo(404);
            assertThat(proxy.request("DELETE", "/sessions/not-a-number", null).statusCode()).isEqualTo(404);
            assertThat(proxy.metrics()).contains(
                    "connguard_client_sessions_closed_total{application=\"a\",database=\"d\",listener=\"app\",reason=\"admin\",user=\"bob\"} 1.0");
        }
    }

    @Test
    void mutatingCallsNeedTheTokenWhenOneIsSet() throws Exception {
        try (TestProxy proxy = TestProxy.start(config("admin:\n  listen: 127.0.0.1:0\n  token: ${ADMIN_TOKEN}"),
                Map.of("ADMIN_TOKEN", "t0ken"));
             LineClient client = LineClient.hello(proxy.port("app"), "carol", "d", "a")) {
            assertThat(client.readLine()).isEqualTo("WELCOME");
            long id = proxy.sessions().get(0).get("id").asLong();
            var denied = proxy.request("DELETE", "/sessions/" + id, null);
            assertThat(denied.statusCode()).isEqualTo(401);
            assertThat(denied.headers().firstValue("www-authenticate")).isPresent();
            assertThat(proxy.request("DELETE", "/sessions/" + id, "wrong").statusCode()).isEqualTo(401);
            assertThat(proxy.request("POST", "/reload", null).statusCode()).isEqualTo(401);
            assertThat(proxy.request("POST", "/quitquitquit", "nope").statusCode()).isEqualTo(401);
            assertThat(proxy.server().ready()).isTrue();
            assertThat(proxy.get("/sessions").statusCode()).as("on loopback reads need no token").isEqualTo(200);
            assertThat(proxy.get("/clients").statusCode()).as("on loopback reads need no token").isEqualTo(200);
            var reload = proxy.request("POST", "/reload", "t0ken");
            assertThat(reload.statusCode()).isEqualTo(200);
            assertThat(reload.body()).isEqualTo("{\"status\":\"unchanged\",\"reasons\":[]}");
            assertThat(proxy.request("DELETE", "/sessions/" + id, "t0ken").statusCode()).isEqualTo(200);
            assertThat(client.readLine()).startsWith("ERROR ADMIN_KILL");
            try (LineClient keepsItRunning = LineClient.hello(proxy.port("app"), "dave", "d", "a")) {
                assertThat(keepsItRunning.readLine()).isEqualTo("WELCOME");
                assertThat(proxy.request("POST", "/quitquitquit", "t0ken").statusCode()).isEqualTo(200);
                assertThat(proxy.get("/readyz").statusCode()).isEqualTo(503);
            }
            assertThat(proxy.server().terminated().get(30, TimeUnit.SECONDS)).as("drained and stopped").isZero();
        }
    }

    @Test
    void offLoopbackEveryReadButMetricsAndProbesNeedsTheToken() throws Exception {
        try (TestProxy proxy = TestProxy.start(config("admin:\n  listen: 0.0.0.0:0\n  token: ${ADMIN_TOKEN}"),
                Map.of("ADMIN_TOKEN", "t0ken"));
             LineClient client = LineClient.hello(proxy.port("app"), "erin", "d", "secret-app")) {
            assertThat(client.readLine()).isEqualTo("WELCOME");
            for (String open : new String[] {"/metrics", "/healthz", "/readyz"}) {
                assertThat(proxy.get(open).statusCode()).as("%s: the scraper and the kubelet", open).isEqualTo(200);
            }
            for (String read : new String[] {"/sessions", "/clients"}) {
                var denied = proxy.get(read);
                assertThat(denied.statusCode()).as("%s without a token", read).isEqualTo(401);
                assertThat(denied.body()).doesNotContain("erin").doesNotContain("secret-app");
                assertThat(denied.headers().firstValue("www-authenticate")).isPresent();
                assertThat(proxy.request("GET", read, "wrong").statusCode()).as("%s, wrong token", read).isEqualTo(401);
                var allowed = proxy.request("GET", read, "t0ken");
                assertThat(allowed.statusCode()).as("%s with the token", read).isEqualTo(200);
                assertThat(allowed.body()).contains("erin");
            }
            assertThat(proxy.request("HEAD", "/sessions", null).statusCode()).isEqualTo(401);
            assertThat(proxy.request("DELETE", "/sessions/1", null).statusCode()).isEqualTo(401);
            assertThat(proxy.request("POST", "/reload", null).statusCode()).isEqualTo(401);
            assertThat(proxy.request("POST", "/reload", "t0ken").statusCode()).isEqualTo(200);
        }
    }

    @Test
    void onlyDocumentedPathsAndMethodsAnswer() {
        try (TestProxy proxy = TestProxy.start(config(""))) {
            for (String path : List.of("/", "/admin", "/metrics/x", "/sessions/1/kill", "/../etc/passwd")) {
                assertThat(proxy.get(path).statusCode()).as(path).isEqualTo(404);
            }
            var post = proxy.request("POST", "/metrics", null);
            assertThat(post.statusCode()).isEqualTo(405);
            assertThat(post.headers().firstValue("allow")).hasValue("GET, HEAD");
            assertThat(proxy.request("GET", "/reload", null).statusCode()).isEqualTo(405);
            assertThat(proxy.request("GET", "/sessions/1", null).statusCode()).isEqualTo(405);
        }
    }

    @Test
    void oversizedRequestsAreRefused() throws Exception {
        try (TestProxy proxy = TestProxy.start(config(""));
             Socket socket = new Socket("127.0.0.1", proxy.server().adminAddress().getPort())) {
            socket.setSoTimeout(5000);
            OutputStream out = socket.getOutputStream();
            out.write(("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + "a".repeat(20_000) + "\r\n\r\n")
                    .getBytes(StandardCharsets.US_ASCII));
            out.flush();
            InputStream in = socket.getInputStream();
            String status = new String(in.readNBytes(12), StandardCharsets.US_ASCII);
            assertThat(status).isEqualTo("HTTP/1.1 431");
        }
    }

    @Test
    void anOversizedBodyIs413AndAnOversizedRequestLine414() throws Exception {
        try (TestProxy proxy = TestProxy.start(config(""))) {
            int port = proxy.server().adminAddress().getPort();
            assertThat(exchange(port, "POST /reload HTTP/1.1\r\nHost: x\r\nContent-Length: 20000\r\n\r\n"
                    + "a".repeat(20_000))).startsWith("HTTP/1.1 413");
            // The version on a line cut short is unknown, so the answer is HTTP/1.0.
            assertThat(exchange(port, "GET /" + "a".repeat(5000) + " HTTP/1.1\r\nHost: x\r\n\r\n"))
                    .endsWith(" 414");
            assertThat(proxy.get("/healthz").statusCode()).as("the endpoint still serves").isEqualTo(200);
        }
    }

    @Test
    void aRequestTrickledByteByByteIsCutOffAtTheRequestDeadline() throws Exception {
        try (TestProxy proxy = TestProxy.start(config(""));
             Socket socket = new Socket("127.0.0.1", proxy.server().adminAddress().getPort())) {
            socket.setSoTimeout(100);
            OutputStream out = socket.getOutputStream();
            InputStream in = socket.getInputStream();
            out.write("GET /healthz HTTP/1.1\r\nX-Slow: ".getBytes(StandardCharsets.US_ASCII));
            long start = System.nanoTime();
            boolean closed = false;
            // One byte every half second keeps the 30 s idle timeout from ever firing; only the
            // request deadline (10 s after the first byte) can end this connection.
            while (!closed && System.nanoTime() - start < TimeUnit.SECONDS.toNanos(25)) {
                try {
                    out.write('a');
                    out.flush();
                } catch (java.io.IOException reset) {
                    closed = true;
                    break;
                }
                try {
                    closed = in.read() < 0;
                } catch (java.net.SocketTimeoutException stillOpen) {
                    Thread.sleep(400);
                } catch (java.io.IOException reset) {
                    closed = true;
                }
            }
            assertThat(closed).as("closed by the request deadline while still trickling").isTrue();
            assertThat(TimeUnit.NANOSECONDS.toSeconds(System.nanoTime() - start))
                    .as("not before the deadline").isGreaterThanOrEqualTo(AdminServer.REQUEST_SECONDS - 1);
        }
    }

    /** Writes {@code request} on a new connection and returns everything the server answered. */
    private static String exchange(int port, String request) throws Exception {
        try (Socket socket = new Socket("127.0.0.1", port)) {
            socket.setSoTimeout(5000);
            socket.getOutputStream().write(request.getBytes(StandardCharsets.US_ASCII));
            socket.getOutputStream().flush();
            byte[] head = socket.getInputStream().readNBytes(12);
            return new String(head, StandardCharsets.US_ASCII);
        }
    }

    private static List<String> fieldNames(JsonNode node) {
        List<String> names = new java.util.ArrayList<>();
        node.fieldNames().forEachRemaining(names::add);
        return names;
    }
}
