package io.connguard.app.fleet;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * One connguard replica: the packaged jar ({@code proxy-app/target/connguard.jar}) as a process of its own,
 * as a pod would run it. Output goes to a file (a full pipe must never stall it); {@link #kill} ends it with
 * SIGKILL, the way a node failure or the OOM killer does, so it cannot give anything back.
 */
final class Replica implements AutoCloseable {

    private static final Path REPO = Path.of("").toAbsolutePath().getParent();
    private static final Path JAR = REPO.resolve("proxy-app/target/connguard.jar");
    private static final Pattern ADMIN = Pattern.compile("admin on /127\\.0\\.0\\.1:(\\d+)");
    private static final HttpClient HTTP = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();

    private final String name;
    private final Process process;
    private final Path log;
    private final int adminPort;

    private Replica(String name, Process process, Path log, int adminPort) {
        this.name = name;
        this.process = process;
        this.log = log;
        this.adminPort = adminPort;
    }

    /** Starts connguard on {@code yaml} (admin and listeners on port 0) and waits until it serves. */
    static Replica start(Path dir, String name, String yaml) throws IOException, InterruptedException {
        assertThat(JAR).as("the packaged jar (built by the package phase before the integration tests)").exists();
        Path config = Files.writeString(dir.resolve(name + ".yaml"), yaml);
        Path log = dir.resolve(name + ".log");
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        Process process = new ProcessBuilder(List.of(java, "-XX:+UseSerialGC", "-Xmx128m", "-XX:TieredStopAtLevel=1",
                "-jar", JAR.toString(), "--config", config.toString()))
                .redirectErrorStream(true).redirectOutput(log.toFile()).start();
        long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
        while (System.nanoTime() < deadline && process.isAlive()) {
            Matcher m = ADMIN.matcher(Files.readString(log, StandardCharsets.UTF_8));
            if (m.find()) {
                return new Replica(name, process, log, Integer.parseInt(m.group(1)));
            }
            Thread.sleep(50);
        }
        process.destroyForcibly();
        throw new AssertionError("connguard " + name + " did not start: " + Files.readString(log, StandardCharsets.UTF_8));
    }

    String name() {
        return name;
    }

    /** The port of the listener with this protocol, from the start-up log. */
    int port(String protocol) throws IOException {
        Matcher m = Pattern.compile("listening on /127\\.0\\.0\\.1:(\\d+) \\(" + protocol + "\\)").matcher(log());
        assertThat(m.find()).as("a %s listener in %s", protocol, log).isTrue();
        return Integer.parseInt(m.group(1));
    }

    /** {@code GET path} on the admin endpoint: the status code, a newline, the body. */
    String get(String path) throws IOException, InterruptedException {
        HttpResponse<String> response = HTTP.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + adminPort + path))
                .timeout(Duration.ofSeconds(10)).build(), HttpResponse.BodyHandlers.ofString());
        return response.statusCode() + "\n" + response.body();
    }

    String log() throws IOException {
        return Files.readString(log, StandardCharsets.UTF_8);
    }

    /** SIGKILL: nothing runs in the process after this, no lease is given back. */
    void kill() throws InterruptedException {
        process.destroyForcibly();
        assertThat(process.waitFor(10, TimeUnit.SECONDS)).as("%s ended by SIGKILL", name).isTrue();
    }

    @Override
    public void close() throws InterruptedException {
        if (!process.isAlive()) {
            return;
        }
        process.destroy();
        if (!process.waitFor(30, TimeUnit.SECONDS)) {
            process.destroyForcibly();
        }
    }
}
