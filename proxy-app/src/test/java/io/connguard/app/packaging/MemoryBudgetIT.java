package io.connguard.app.packaging;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The packaged connguard started with the image's JVM flags in an emulated small container (-XX:MaxRAM,
 * which is what the JVM reads from the cgroup) and loaded until one of its memory budgets runs out: the
 * outcome is clean. Direct memory (the buffers of sessions whose client does not read) running out closes
 * the sessions that cannot get a buffer, with a warning, and the proxy serves on, its resident memory below
 * the emulated limit, so the kernel has no reason to kill it; a full heap is the JVM's exit with code 3
 * (ExitOnOutOfMemoryError), for the orchestrator to restart it, never a proxy that limps on.
 */
class MemoryBudgetIT {

    private static final Path JAR = DockerfileLintTest.repository().resolve("proxy-app/target/connguard.jar");
    private static final Path JAVA_25 = Path.of("/usr/lib/jvm/temurin-25-jdk-amd64/bin/java");
    private static final long MIB = 1024 * 1024;

    @TempDir
    Path dir;

    @Test
    void runningOutOfDirectMemoryClosesTheSessionsThatNeedItAndTheProxyServesOn() throws Exception {
        // The smallest limit the image's caps fit (docs/memory.md: 56 heap + 56 direct + 32 metaspace + 24 code
        // cache + ~44 for the JVM itself = 212 MiB). Below it the caps add up to more than the limit: at 128 MiB
        // the flood peaked at 114-128 MiB, a kernel OOM kill away.
        long limit = 224 * MIB;
        try (FakePostgres db = FakePostgres.start();
             Proxy proxy = Proxy.start(dir, db.address(), "-XX:MaxRAM=" + limit / MIB + "m")) {
            assertThat(proxy.metric("netty_allocator_pooled_chunk_size", "PooledByteBufAllocator"))
                    .as("1 MiB allocator chunks (RuntimeDefaults)").isEqualTo(1048576);
            List<Socket> floods = new ArrayList<>();
            long peakRss = proxy.rss();
            try {
                // Each session asks for an endless result and never reads it: the proxy holds up to a write
                // buffer's worth of it (read-after-write backpressure), in direct memory, capped at the heap's
                // size (56 MiB here).
                for (int i = 0; i < 4000 && !proxy.log().contains("out of buffer memory"); i++) {
                    Socket session = proxy.session();
                    session.getOutputStream().write(query("flood"));
                    floods.add(session);
                    peakRss = Math.max(peakRss, proxy.rss());
                }
                assertThat(proxy.log()).as("a session closed for want of direct memory after %d sessions", floods.size())
                        .contains("out of buffer memory, closing the session")
                        // Netty's own cap (OutOfDirectMemoryError), which fails at once: not the JDK's "Cannot
                        // reserve ... bytes of direct buffer memory", reached after a full GC and half a second of
                        // retries on the event loop.
                        .contains("byte(s) of direct memory (used: ").doesNotContain("Cannot reserve");
                assertThat(proxy.alive()).isTrue();
                assertThat(proxy.metric("netty_allocator_memory_used", "memory_type=\"direct\""))
                        .as("the pool's direct memory, near its cap of a quarter of the limit")
                        .isGreaterThan(limit / 4 / 2).isLessThanOrEqualTo(limit / 4);
                for (int i = 0; i < 20; i++) {
                    peakRss = Math.max(peakRss, proxy.rss());
                    Thread.sleep(50);
                }
                assertThat(peakRss).as("resident memory with direct memory exhausted, in an emulated %d MiB container",
                        limit / MIB).isLessThan(limit);
            } finally {
                for (Socket s : floods) {
                    s.close();
                }
            }
            // Sessions that could get their buffers back are served again: the budget was a limit, not a leak.
            try (Socket session = proxy.session()) {
                session.getOutputStream().write(query("SELECT 1"));
                assertThat(readUntilReady(session.getInputStream())).as("an answer to SELECT 1").contains("SELECT 0");
            }
            assertThat(proxy.alive()).isTrue();
        }
    }

    @Test
    void aFullHeapIsTheJvmsCleanExit() throws Exception {
        try (FakePostgres db = FakePostgres.start();
             Proxy proxy = Proxy.start(dir, db.address(), "-XX:MaxRAM=64m")) {
            List<Socket> idle = new ArrayList<>();
            try {
                // ~4 KiB of heap per idle session; the heap is 16 MiB (25% of 64).
                for (int i = 0; i < 8000 && proxy.alive(); i++) {
                    try {
                        idle.add(proxy.session());
                    } catch (IOException e) {
                        break; // the proxy is going
                    }
                }
                assertThat(proxy.process.waitFor(60, TimeUnit.SECONDS)).as("the proxy exits after %d sessions",
                        idle.size()).isTrue();
                assertThat(proxy.process.exitValue()).as(proxy.log()).isEqualTo(3);
                assertThat(proxy.log()).contains("Terminating due to java.lang.OutOfMemoryError: Java heap space");
            } finally {
                for (Socket s : idle) {
                    s.close();
                }
            }
        }
    }

    private static byte[] query(String sql) {
        byte[] text = (sql + "\0").getBytes(StandardCharsets.UTF_8);
        byte[] out = new byte[5 + text.length];
        out[0] = 'Q';
        writeInt(out, 1, 4 + text.length);
        System.arraycopy(text, 0, out, 5, text.length);
        return out;
    }

    private static void writeInt(byte[] out, int at, int value) {
        out[at] = (byte) (value >>> 24);
        out[at + 1] = (byte) (value >>> 16);
        out[at + 2] = (byte) (value >>> 8);
        out[at + 3] = (byte) value;
    }

    /** Reads messages until ReadyForQuery; returns what arrived, as Latin-1 text. */
    private static String readUntilReady(InputStream in) throws IOException {
        ByteArrayOutputStream seen = new ByteArrayOutputStream();
        byte[] header = new byte[5];
        while (true) {
            readFully(in, header);
            int length = ((header[1] & 0xff) << 24) | ((header[2] & 0xff) << 16) | ((header[3] & 0xff) << 8) | (header[4] & 0xff);
            byte[] body = new byte[length - 4];
            readFully(in, body);
            seen.write(header);
            seen.write(body);
            if (header[0] == 'E') {
                throw new AssertionError("error from the proxy: " + new String(body, StandardCharsets.ISO_8859_1));
            }
            if (header[0] == 'Z') {
                return seen.toString(StandardCharsets.ISO_8859_1);
            }
        }
    }

    private static void readFully(InputStream in, byte[] into) throws IOException {
        int at = 0;
        while (at < into.length) {
            int n = in.read(into, at, into.length - at);
            if (n < 0) {
                throw new IOException("closed by the proxy");
            }
            at += n;
        }
    }

    /** connguard.jar as the image runs it (its ENTRYPOINT's JVM flags, on Java 25 when installed), plus {@code extra}. */
    private static final class Proxy implements AutoCloseable {

        private static final Pattern ADMIN = Pattern.compile("admin on /127\\.0\\.0\\.1:(\\d+)");
        private static final Pattern LISTENER = Pattern.compile("listening on /127\\.0\\.0\\.1:(\\d+) \\(postgres\\)");

        final Process process;
        private final Path log;
        private final int port;
        private final int adminPort;

        private Proxy(Process process, Path log, int port, int adminPort) {
            this.process = process;
            this.log = log;
            this.port = port;
            this.adminPort = adminPort;
        }

        static Proxy start(Path dir, String upstream, String... extra) throws Exception {
            assertThat(JAR).as("the packaged jar (built by the package phase before the integration tests)").exists();
            Path config = Files.writeString(dir.resolve("connguard.yaml"), """
                    ioThreads: 2
                    admin:
                      listen: 127.0.0.1:0
                    listeners:
                      - name: budget
                        protocol: postgres
                        listen: 127.0.0.1:0
                        upstream: %s
                        maxUpstreamConnections: 0
                    clients:
                      defaults:
                        maxConnections: 0
                    logging:
                      format: text
                      level: info
                    """.formatted(upstream));
            List<String> entrypoint = DockerfileLintTest.entrypoint();
            String java = Files.isExecutable(JAVA_25) ? JAVA_25.toString()
                    : Path.of(System.getProperty("java.home"), "bin", "java").toString();
            List<String> command = new ArrayList<>(List.of(java));
            command.addAll(entrypoint.subList(1, entrypoint.indexOf("-jar")).stream()
                    .filter(f -> !f.startsWith("-Djava.io.tmpdir=")).toList());
            command.addAll(List.of(extra));
            command.addAll(List.of("-jar", JAR.toString(), "--config", config.toString()));
            Path log = dir.resolve("connguard.log");
            ProcessBuilder builder = new ProcessBuilder(command).redirectErrorStream(true).redirectOutput(log.toFile());
            builder.environment().remove("JDK_JAVA_OPTIONS");
            builder.environment().remove("JAVA_TOOL_OPTIONS");
            Process process = builder.start();
            long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
            while (System.nanoTime() < deadline && process.isAlive()) {
                String text = Files.readString(log, StandardCharsets.UTF_8);
                Matcher admin = ADMIN.matcher(text);
                Matcher listener = LISTENER.matcher(text);
                if (admin.find() && listener.find()) {
                    return new Proxy(process, log, Integer.parseInt(listener.group(1)), Integer.parseInt(admin.group(1)));
                }
                Thread.sleep(50);
            }
            process.destroyForcibly();
            throw new AssertionError("connguard did not start: " + Files.readString(log, StandardCharsets.UTF_8));
        }

        /** A session past its start-up (authenticated, ReadyForQuery read), idle. */
        Socket session() throws IOException {
            Socket socket = new Socket();
            try {
                socket.connect(new InetSocketAddress(InetAddress.getLoopbackAddress(), port), 10_000);
                socket.setSoTimeout(30_000);
                byte[] params = "user\0budget\0database\0budget\0application_name\0budget-it\0\0".getBytes(StandardCharsets.UTF_8);
                byte[] startup = new byte[8 + params.length];
                writeInt(startup, 0, startup.length);
                writeInt(startup, 4, 196608);
                System.arraycopy(params, 0, startup, 8, params.length);
                OutputStream out = socket.getOutputStream();
                out.write(startup);
                readUntilReady(socket.getInputStream());
                return socket;
            } catch (IOException | RuntimeException e) {
                socket.close();
                throw e;
            }
        }

        boolean alive() {
            return process.isAlive();
        }

        String log() throws IOException {
            return Files.readString(log, StandardCharsets.UTF_8);
        }

        /** Resident memory (VmRSS) in bytes. */
        long rss() throws IOException {
            for (String line : Files.readAllLines(Path.of("/proc/" + process.pid() + "/status"))) {
                if (line.startsWith("VmRSS:")) {
                    return Long.parseLong(line.replaceAll("\\D", "")) * 1024;
                }
            }
            throw new AssertionError("no VmRSS for " + process.pid());
        }

        /** A sample of the admin endpoint's /metrics whose line has {@code name} and {@code label}. */
        double metric(String name, String label) throws Exception {
            HttpResponse<String> response = HttpClient.newHttpClient().send(HttpRequest.newBuilder(
                    URI.create("http://127.0.0.1:" + adminPort + "/metrics")).build(), HttpResponse.BodyHandlers.ofString());
            for (String line : response.body().split("\n")) {
                if (line.startsWith(name + "{") && line.contains(label)) {
                    return Double.parseDouble(line.substring(line.lastIndexOf(' ') + 1));
                }
            }
            throw new AssertionError("no " + name + " with " + label + " in\n" + response.body());
        }

        @Override
        public void close() throws InterruptedException {
            process.destroy();
            if (!process.waitFor(30, TimeUnit.SECONDS)) {
                process.destroyForcibly();
            }
        }
    }
}
