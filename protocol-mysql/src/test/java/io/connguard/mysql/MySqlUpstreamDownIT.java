package io.connguard.mysql;

import io.connguard.core.testing.LeakGuard;
import io.connguard.core.testing.TestProxy;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

import java.io.IOException;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.sql.SQLException;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowableOfType;

/**
 * A listener whose database cannot be reached: the client gets an ERR in the server's code range that
 * names the upstream and the cause, which the {@code mariadb} client prints as it is (a client-range code
 * made libmariadb report "2027 Received malformed packet") and Connector/J reports as a connection failure
 * (SQLSTATE class 08).
 */
@ExtendWith(LeakGuard.class)
class MySqlUpstreamDownIT {

    private static TestProxy proxy;
    private static String upstream;

    @BeforeAll
    static void start() throws IOException {
        int closedPort;
        try (ServerSocket socket = new ServerSocket(0)) {
            closedPort = socket.getLocalPort(); // nothing listens there once it is closed
        }
        upstream = "127.0.0.1:" + closedPort;
        proxy = TestProxy.start("""
                listeners:
                  - name: my
                    protocol: mysql
                    listen: 127.0.0.1:0
                    upstream: %s
                    connectTimeout: 5s
                clients:
                  defaults:
                    maxConnections: 0
                """.formatted(upstream));
    }

    @AfterAll
    static void stop() {
        proxy.close();
    }

    private String cli(String... tls) throws IOException, InterruptedException {
        List<String> command = new java.util.ArrayList<>(List.of("mariadb", "-h", "127.0.0.1", "-P",
                String.valueOf(proxy.port("my")), "-u", MySqlIt.NATIVE_USER, "-p" + MySqlIt.NATIVE_PASSWORD, "test"));
        command.addAll(List.of(tls));
        command.addAll(List.of("--batch", "-e", "SELECT 1"));
        Process process;
        try {
            process = new ProcessBuilder(command).redirectErrorStream(true).start();
        } catch (IOException notInstalled) {
            throw new AssertionError("mariadb is not installed: run .ci/setup-mariadb.sh as root", notInstalled);
        }
        process.getOutputStream().close();
        byte[] output = process.getInputStream().readAllBytes();
        assertThat(process.waitFor(30, TimeUnit.SECONDS)).isTrue();
        assertThat(process.exitValue()).as("the client's exit code").isNotZero();
        return new String(output, StandardCharsets.UTF_8);
    }

    @Test
    void theMariadbClientPrintsConnguardsMessage() throws Exception {
        for (String[] tls : new String[][] {{"--skip-ssl"}, {}}) {
            String output = cli(tls);
            assertThat(output).as("mariadb %s", List.of(tls))
                    .contains("1218")
                    .contains("connguard could not").contains("the database server " + upstream)
                    .containsIgnoringCase("connection refused")
                    .doesNotContain("2027").doesNotContain("malformed");
        }
    }

    @Test
    void connectorJReportsAConnectionFailure() {
        SQLException e = catchThrowableOfType(SQLException.class, () -> MySqlIt.connect(
                "jdbc:mysql://127.0.0.1:" + proxy.port("my") + "/test?sslMode=DISABLED&connectTimeout=10000",
                MySqlIt.NATIVE_USER, MySqlIt.NATIVE_PASSWORD).close());
        assertThat((Throwable) e).isNotNull();
        assertThat(e.getErrorCode()).as("%s", e).isEqualTo(1218);
        assertThat(e.getSQLState()).as("%s", e).startsWith("08");
        assertThat(e.getMessage()).contains("connguard could not").contains("the database server " + upstream)
                .containsIgnoringCase("connection refused");
    }

    @Test
    void mariadbConnectorJReportsConnguardsMessage() {
        SQLException e = catchThrowableOfType(SQLException.class, () -> MySqlIt.connect(
                "jdbc:mariadb://127.0.0.1:" + proxy.port("my") + "/test", MySqlIt.NATIVE_USER, MySqlIt.NATIVE_PASSWORD).close());
        assertThat((Throwable) e).isNotNull();
        assertThat(e.getErrorCode()).as("%s", e).isEqualTo(1218);
        assertThat(e.getMessage()).contains("connguard could not").contains("the database server " + upstream);
    }
}
