package io.connguard.app.faults;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The packaged connguard ({@code proxy-app/target/connguard.jar}) as a process of its own, started with the
 * image's collector flags: a storm then measures the proxy on its own JVM, its own heap and collector, not
 * sharing them with the thousands of test clients. Output goes to a file (a full pipe must never stall it).
 */
final class ProxyProcess implements AutoCloseable {

    private static final Path REPO = Path.of("").toAbsolutePath().getParent();
    private static final Path JAR = REPO.resolve("proxy-app/target/connguard.jar");
    private static final Pattern ADMIN = Pattern.compile("admin on /127\\.0\\.0\\.1:(\\d+)");

    private final Process process;
    private final Path log;
    private final int adminPort;

    private ProxyProcess(Process process, Path log, int adminPort) {
        this.process = process;
        this.log = log;
        this.adminPort = adminPort;
    }

    /** Starts connguard on {@code yaml} (whose admin and listeners should listen on port 0) and waits for it. */
    static ProxyProcess start(Path dir, String yaml) throws IOException, InterruptedException {
        assertThat(JAR).as("the packaged jar (built by the package phase before the integration tests)").exists();
        Path config = Files.writeString(dir.resolve("connguard.yaml"), yaml);
        Path log = dir.resolve("connguard.log");
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        Process process = new ProcessBuilder(List.of(java, "-XX:+UseSerialGC", "-Xmn16m", "-XX:+ExitOnOutOfMemoryError",
                "-jar", JAR.toString(), "--config", config.toString()))
                .redirectErrorStream(true).redirectOutput(log.toFile()).start();
        long deadline = System.nanoTime() + Duration.ofSeconds(30).toNanos();
        while (System.nanoTime() < deadline && process.isAlive()) {
            Matcher m = ADMIN.matcher(Files.readString(log, StandardCharsets.UTF_8));
            if (m.find()) {
                return new ProxyProcess(process, log, Integer.parseInt(m.group(1)));
            }
            Thread.sleep(50);
        }
        process.destroyForcibly();
        throw new AssertionError("connguard did not start: " + Files.readString(log, StandardCharsets.UTF_8));
    }

    int adminPort() {
        return adminPort;
    }

    /** The port of the listener with this protocol, from the start-up log line. */
    int listenerPort(String protocol) throws IOException {
        Matcher m = Pattern.compile("listening on /127\\.0\\.0\\.1:(\\d+) \\(" + protocol + "\\)")
                .matcher(Files.readString(log, StandardCharsets.UTF_8));
        assertThat(m.find()).as("a %s listener in %s", protocol, log).isTrue();
        return Integer.parseInt(m.group(1));
    }

    String log() throws IOException {
        return Files.readString(log, StandardCharsets.UTF_8);
    }

    @Override
    public void close() throws InterruptedException {
        process.destroy();
        if (!process.waitFor(30, java.util.concurrent.TimeUnit.SECONDS)) {
            process.destroyForcibly();
        }
    }
}
