package io.connguard.app;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.connguard.core.testing.Database;
import io.connguard.core.testing.RealDatabases;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowableOfType;
import static org.awaitility.Awaitility.await;

/** The packaged jar as a process: exit codes, signals and log formats, as an operator meets them. */
class CliIT {

    private static final Path REPO = Path.of("").toAbsolutePath().getParent();
    private static final Path JAR = REPO.resolve("proxy-app/target/connguard.jar");
    private static final Pattern LISTENING = Pattern.compile("listening on /127\\.0\\.0\\.1:(\\d+) \\(postgres\\)");
    private static final Pattern ADMIN = Pattern.compile("admin on /127\\.0\\.0\\.1:(\\d+)");

    private final Database pg = RealDatabases.postgres();
    private final HttpClient http = HttpClient.newHttpClient();

    /** A running connguard process with its output collected line by line. */
    private static final class Proxy implements AutoCloseable {
        final Process process;
        final List<String> lines = new CopyOnWriteArrayList<>();
        int port;
        int adminPort;

        Proxy(Path config) throws IOException {
            process = new ProcessBuilder(java(), "-jar", JAR.toString(), "--config", config.toString())
                    .redirectErrorStream(true).start();
            Thread reader = new Thread(() -> {
                try (BufferedReader in = new BufferedReader(
                        new InputStreamReader(process.getInputStream(), StandardCharsets.UTF_8))) {
                    String line;
                    while ((line = in.readLine()) != null) {
                        lines.add(line);
                    }
                } catch (IOException ignored) {
                    // the process ended
                }
            });
            reader.setDaemon(true);
            reader.start();
        }

        Proxy awaitStarted() {
            await().atMost(30, TimeUnit.SECONDS).until(() -> find(ADMIN) != null || !process.isAlive());
            assertThat(process.isAlive()).as("started: %s", lines).isTrue();
            port = Integer.parseInt(find(LISTENING));
            adminPort = Integer.parseInt(find(ADMIN));
            return this;
        }

        String find(Pattern pattern) {
            for (String line : lines) {
                Matcher m = pattern.matcher(line);
                if (m.find()) {
                    return m.group(1);
                }
            }
            return null;
        }

        void signal(String name) throws Exception {
            new ProcessBuilder("kill", "-" + name, Long.toString(process.pid())).inheritIO().start().waitFor();
        }

        int exitCode() throws InterruptedException {
            assertThat(process.waitFor(60, TimeUnit.SECONDS)).as("exited: %s", lines).isTrue();
            return process.exitValue();
        }

        @Override
        public void close() {
            process.destroyForcibly();
        }
    }

    private static String java() {
        return Path.of(System.getProperty("java.home"), "bin", "java").toString();
    }

    private Path config(Path dir, String extra) throws IOException {
        return Files.writeString(dir.resolve("connguard.yaml"), """
                admin:
                  listen: 127.0.0.1:0
                listeners:
                  - name: pg
                    protocol: postgres
                    listen: 127.0.0.1:0
                    upstream: %s
                %s
                """.formatted(pg.hostPort(), extra));
    }

    private Connection connect(int port) throws SQLException {
        return DriverManager.getConnection(pg.jdbcUrl("127.0.0.1", port), pg.user(), pg.password());
    }

    private int readyz(int adminPort) throws Exception {
        return http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + adminPort + "/readyz")).build(),
                HttpResponse.BodyHandlers.ofString()).statusCode();
    }

    @Test
    void theExampleConfigurationChecksOutFromTheJar() throws Exception {
        Process check = new ProcessBuilder(java(), "-jar", JAR.toString(), "--config",
                REPO.resolve("examples/local.yaml").toString(), "--check").redirectErrorStream(true).start();
        String output = new String(check.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(check.waitFor(30, TimeUnit.SECONDS)).isTrue();
        assertThat(check.exitValue()).as(output).isZero();
        assertThat(output).contains("configuration is valid (2 listeners)");
    }

    @Test
    void sigtermDrainsTheOpenSessionThenExitsZero(@TempDir Path dir) throws Exception {
        try (Proxy proxy = new Proxy(config(dir, "shutdown:\n  drainTimeout: 60s")).awaitStarted();
             Connection open = connect(proxy.port)) {
            assertThat(readyz(proxy.adminPort)).isEqualTo(200);
            proxy.signal("TERM");
            await().atMost(10, TimeUnit.SECONDS).until(() -> readyz(proxy.adminPort) == 503);
            assertThat(open.createStatement().executeQuery("SELECT 1").next())
                    .as("the open session keeps working during the drain").isTrue();
            SQLException refused = catchThrowableOfType(SQLException.class, () -> connect(proxy.port).close());
            assertThat(refused.getSQLState()).as("new connections while draining").isEqualTo("57P03");
            assertThat(proxy.process.isAlive()).isTrue();
            open.close();
            assertThat(proxy.exitCode()).isZero();
            assertThat(proxy.lines).anySatisfy(l -> assertThat(l).contains("drain complete"));
        }
    }

    @Test
    void aSecondSigtermOrSigintDuringTheDrainStopsAtOnce(@TempDir Path dir) throws Exception {
        for (String[] signal : List.of(new String[] {"TERM", "143"}, new String[] {"INT", "130"})) {
            try (Proxy proxy = new Proxy(config(dir, "shutdown:\n  drainTimeout: 60s")).awaitStarted();
                 Connection open = connect(proxy.port)) {
                proxy.signal(signal[0]);
                await().atMost(10, TimeUnit.SECONDS).until(() -> readyz(proxy.adminPort) == 503);
                proxy.signal(signal[0]);
                assertThat(proxy.exitCode()).as("second SIG%s", signal[0]).isEqualTo(Integer.parseInt(signal[1]));
            }
        }
    }

    @Test
    void aListenerPortInUseExitsTwoWithAClearMessage(@TempDir Path dir) throws Exception {
        try (ServerSocket taken = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            Path file = Files.writeString(dir.resolve("busy.yaml"), """
                    admin:
                      listen: 127.0.0.1:0
                    listeners:
                      - name: busy
                        protocol: postgres
                        listen: 127.0.0.1:%d
                        upstream: %s
                    """.formatted(taken.getLocalPort(), pg.hostPort()));
            try (Proxy proxy = new Proxy(file)) {
                assertThat(proxy.exitCode()).isEqualTo(2);
                assertThat(String.join("\n", proxy.lines))
                        .contains("cannot listen on 127.0.0.1:" + taken.getLocalPort() + " for listener busy");
            }
        }
    }

    @Test
    void addressesThatBindTheSameSocketAreAConfigurationErrorNotABindFailure(@TempDir Path dir) throws Exception {
        int port;
        try (ServerSocket free = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            port = free.getLocalPort();
        }
        Path file = Files.writeString(dir.resolve("twice.yaml"), """
                admin:
                  listen: localhost:%1$d
                listeners:
                  - name: a
                    protocol: postgres
                    listen: 127.0.0.1:%1$d
                    upstream: %2$s
                  - name: b
                    protocol: postgres
                    listen: localhost:%1$d
                    upstream: %2$s
                """.formatted(port, pg.hostPort()));
        Process check = new ProcessBuilder(java(), "-jar", JAR.toString(), "--config", file.toString(), "--check")
                .redirectErrorStream(true).start();
        String output = new String(check.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(check.waitFor(30, TimeUnit.SECONDS)).isTrue();
        assertThat(check.exitValue()).as(output).isEqualTo(1);
        assertThat(output).contains("listeners[1].listen", "listeners[0].listen 127.0.0.1:" + port,
                "admin.listen", "listener 'a' (listen 127.0.0.1:" + port + ")");
        try (Proxy proxy = new Proxy(file)) {
            assertThat(proxy.exitCode()).as("at start too: a configuration error, not a bind failure (2)").isEqualTo(1);
            assertThat(String.join("\n", proxy.lines)).contains("listeners[1].listen").doesNotContain("cannot listen");
        }
    }

    @Test
    void sighupReloadsTheFileAndAppliesNewLimitsToTheOpenSession(@TempDir Path dir) throws Exception {
        Path file = config(dir, "clients:\n  defaults:\n    maxConnections: 5");
        try (Proxy proxy = new Proxy(file).awaitStarted();
             Connection open = connect(proxy.port)) {
            assertThat(clientCap(proxy)).isEqualTo(5);
            Files.writeString(file, Files.readString(file).replace("maxConnections: 5", "maxConnections: 7"));
            proxy.signal("HUP");
            await().atMost(10, TimeUnit.SECONDS).until(() -> clientCap(proxy) == 7);
            assertThat(proxy.lines).anySatisfy(l -> assertThat(l).contains("SIGHUP: reloading the configuration"));
            assertThat(proxy.lines).anySatisfy(l -> assertThat(l).contains("configuration reloaded and applied"));
            assertThat(open.createStatement().executeQuery("SELECT 1").next()).as("the session lives on").isTrue();
            assertThat(proxy.process.isAlive()).as("SIGHUP does not stop the process").isTrue();
        }
    }

    /** maxConnections in force for the one client in /clients (the test's open session). */
    private int clientCap(Proxy proxy) throws Exception {
        String body = http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + proxy.adminPort + "/clients"))
                .build(), HttpResponse.BodyHandlers.ofString()).body();
        JsonNode clients = new ObjectMapper().readTree(body);
        assertThat(clients).as(body).hasSize(1);
        return clients.get(0).get("maxConnections").asInt();
    }

    @Test
    void jsonLogsCarryTheSessionFields(@TempDir Path dir) throws Exception {
        // Keyed without the application: pgjdbc sets application_name after connecting, which re-keys a session.
        String extra = """
                clients:
                  identity: [user, database]
                  defaults:
                    maxConnections: 1
                    queueTimeout: 0
                logging:
                  format: json
                """;
        try (Proxy proxy = new Proxy(config(dir, extra)).awaitStarted();
             Connection first = connect(proxy.port)) {
            SQLException rejected = catchThrowableOfType(SQLException.class, () -> connect(proxy.port).close());
            assertThat(rejected.getSQLState()).isEqualTo("53300");
            ObjectMapper json = new ObjectMapper();
            await().atMost(10, TimeUnit.SECONDS).until(() -> proxy.lines.stream().anyMatch(l -> l.contains("rejected")));
            String line = proxy.lines.stream().filter(l -> l.contains("connection rejected")).findFirst().orElseThrow();
            JsonNode event = json.readTree(line);
            assertThat(event.get("level").asText()).isEqualTo("INFO");
            assertThat(event.get("listener").asText()).isEqualTo("pg");
            assertThat(event.get("user").asText()).isEqualTo(pg.user());
            assertThat(event.get("database").asText()).isEqualTo(pg.database());
            assertThat(event.get("address").asText()).isEqualTo("127.0.0.1");
            assertThat(event.get("reason").asText()).isEqualTo("queue_timeout");
            assertThat(event.get("session").isNumber()).isTrue();
            for (String other : proxy.lines) {
                if (other.startsWith("{")) {
                    assertThat(json.readTree(other).has("msg")).as(other).isTrue();
                }
            }
        }
    }
}
