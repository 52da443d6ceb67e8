package io.connguard.app;

import io.connguard.core.Version;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;

/** The command line, in process (the test protocol "line" is installed from the core test-jar). */
class MainTest {

    private final ByteArrayOutputStream out = new ByteArrayOutputStream();
    private final ByteArrayOutputStream err = new ByteArrayOutputStream();

    private int run(Map<String, String> env, String... args) {
        return Main.run(args, env::get, new PrintStream(out, true, StandardCharsets.UTF_8),
                new PrintStream(err, true, StandardCharsets.UTF_8));
    }

    private int run(String... args) {
        return run(Map.of(), args);
    }

    private String out() {
        return out.toString(StandardCharsets.UTF_8);
    }

    private String err() {
        return err.toString(StandardCharsets.UTF_8);
    }

    private static Path config(Path dir, String yaml) throws Exception {
        return Files.writeString(dir.resolve("connguard.yaml"), yaml);
    }

    @Test
    void versionPrintsTheBuildVersion() {
        assertThat(run("--version")).isZero();
        assertThat(out()).isEqualTo("connguard " + Version.get() + System.lineSeparator());
        assertThat(Version.get()).isNotEqualTo("unknown").doesNotContain("${");
    }

    @Test
    void checkAcceptsAValidFile(@TempDir Path dir) throws Exception {
        Path file = config(dir, """
                listeners:
                  - name: a
                    protocol: line
                    listen: 127.0.0.1:7001
                    upstream: 127.0.0.1:7002
                """);
        assertThat(run("--config", file.toString(), "--check")).isZero();
        assertThat(out()).contains("configuration is valid (1 listener)");
        assertThat(err()).isEmpty();
    }

    @Test
    void checkPrintsEveryErrorAndExitsOne(@TempDir Path dir) throws Exception {
        Path file = config(dir, """
                listeners:
                  - name: a
                    protocol: line
                    listen: 127.0.0.1:7001
                clients:
                  defaults:
                    queueTimeout: soon
                """);
        assertThat(run("--check", "--config=" + file)).isEqualTo(1);
        assertThat(err()).contains("configuration is invalid (2 errors)",
                "listeners[0].upstream (line 2): missing (required)",
                "clients.defaults.queueTimeout (line 7): expected a duration");
    }

    @Test
    void configComesFromTheEnvironmentToo(@TempDir Path dir) throws Exception {
        Path file = config(dir, """
                listeners:
                  - name: a
                    protocol: line
                    listen: 127.0.0.1:${PORT}
                    upstream: 127.0.0.1:7002
                """);
        assertThat(run(Map.of("CONNGUARD_CONFIG", file.toString(), "PORT", "7003"), "--check")).isZero();
        assertThat(run(Map.of("CONNGUARD_CONFIG", file.toString()), "--check")).isEqualTo(1);
        assertThat(err()).contains("environment variable PORT is not set");
    }

    @Test
    void missingConfigurationOrUnknownArgumentsExitOne() {
        assertThat(run()).isEqualTo(1);
        assertThat(err()).contains("no configuration: pass --config FILE or set CONNGUARD_CONFIG");
        assertThat(run("--frobnicate")).isEqualTo(1);
        assertThat(err()).contains("unknown argument --frobnicate");
        assertThat(run("--config")).isEqualTo(1);
    }

    @Test
    void aPortInUseExitsTwoNamingTheListener(@TempDir Path dir) throws Exception {
        try (ServerSocket taken = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            Path file = config(dir, """
                    admin:
                      listen: 127.0.0.1:0
                    listeners:
                      - name: busy
                        protocol: line
                        listen: 127.0.0.1:%d
                        upstream: 127.0.0.1:7002
                    """.formatted(taken.getLocalPort()));
            assertThat(run("--config", file.toString())).isEqualTo(2);
            assertThat(err()).contains("cannot listen on 127.0.0.1:" + taken.getLocalPort() + " for listener busy");
        }
    }

    @Test
    void anAdminPortInUseExitsTwoToo(@TempDir Path dir) throws Exception {
        try (ServerSocket taken = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            Path file = config(dir, """
                    admin:
                      listen: 127.0.0.1:%d
                    listeners:
                      - name: a
                        protocol: line
                        listen: 127.0.0.1:0
                        upstream: 127.0.0.1:7002
                    """.formatted(taken.getLocalPort()));
            assertThat(run("--config", file.toString())).isEqualTo(2);
            assertThat(err()).contains("cannot listen on 127.0.0.1:" + taken.getLocalPort() + " for the admin endpoint");
        }
    }
}
