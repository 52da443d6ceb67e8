package io.connguard.mysql;

import io.connguard.core.testing.LeakGuard;
import io.connguard.core.testing.TestProxy;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowableOfType;
import static org.awaitility.Awaitility.await;

/**
 * TLS on the client leg of a MySQL listener, against the real server with a plaintext upstream leg:
 * Connector/J {@code sslMode=REQUIRED}, MariaDB Connector/J {@code sslMode=trust} and {@code mariadb --ssl}
 * connect on both handshake paths (the real greeting relayed, and connguard's own greeting with the
 * authentication switch), and under {@code require} a plaintext client is refused with an error naming
 * the setting.
 */
@ExtendWith(LeakGuard.class)
class MySqlClientTlsIT {

    private static TestProxy proxy(String mode, String extra) {
        return MySqlIt.proxy("    clientTls:\n      mode: " + mode + "\n" + extra, "");
    }

    private static double successfulHandshakes(TestProxy proxy) {
        Matcher m = Pattern.compile("(?m)^connguard_listener_client_tls_handshakes_total\\{[^}]*outcome=\"(?:success|ok)\"[^}]*\\} (\\S+)$")
                .matcher(proxy.metrics());
        return m.find() ? Double.parseDouble(m.group(1)) : 0;
    }

    private static String currentUser(Connection c) throws SQLException {
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT CURRENT_USER()")) {
            rs.next();
            return rs.getString(1);
        }
    }

    @Test
    void bothDriversConnectWithTlsRequiredOnTheClientLeg() throws Exception {
        try (TestProxy proxy = proxy("require", "")) {
            String[] urls = {MySqlIt.mysqlUrl(proxy, "sslMode=REQUIRED"), MySqlIt.mariadbUrl(proxy, "sslMode=trust")};
            for (int i = 0; i < urls.length; i++) {
                try (Connection c = MySqlIt.connect(urls[i], MySqlIt.NATIVE_USER, MySqlIt.NATIVE_PASSWORD)) {
                    assertThat(currentUser(c)).as(urls[i]).startsWith(MySqlIt.NATIVE_USER + "@");
                }
                assertThat(successfulHandshakes(proxy)).as("client TLS handshakes after %s", urls[i]).isEqualTo(i + 1);
            }
        }
    }

    @Test
    void tlsAlsoWorksOnTheAuthSwitchPathOfAClientThatWaited() throws Exception {
        try (TestProxy proxy = proxy("require", "    maxUpstreamConnections: 1\n")) {
            String url = MySqlIt.mysqlUrl(proxy, "sslMode=REQUIRED");
            Connection first = MySqlIt.connect(url, MySqlIt.NATIVE_USER, MySqlIt.NATIVE_PASSWORD);
            CompletableFuture<Connection> waiting = CompletableFuture.supplyAsync(() -> {
                try {
                    return MySqlIt.connect(url, MySqlIt.NATIVE_USER, MySqlIt.NATIVE_PASSWORD);
                } catch (SQLException e) {
                    throw new IllegalStateException(e);
                }
            });
            await().atMost(Duration.ofSeconds(10)).until(() -> proxy.clients().findValue("queued").asInt() == 1);
            first.close();
            try (Connection second = waiting.get(15, TimeUnit.SECONDS)) {
                assertThat(currentUser(second)).startsWith(MySqlIt.NATIVE_USER + "@");
            }
            assertThat(successfulHandshakes(proxy)).isEqualTo(2);
        }
    }

    @Test
    void underRequireAPlaintextClientIsRefusedNamingTheSetting() throws Exception {
        try (TestProxy proxy = proxy("require", "")) {
            SQLException e = catchThrowableOfType(SQLException.class, () -> MySqlIt.connect(
                    MySqlIt.mysqlUrl(proxy, "sslMode=DISABLED"), MySqlIt.NATIVE_USER, MySqlIt.NATIVE_PASSWORD).close());
            assertThat((Throwable) e).isNotNull();
            assertThat(e.getErrorCode()).as("%s", e).isEqualTo(3159);
            assertThat(e.getMessage()).contains("clientTls.mode: require");
            Run run = mariadb(proxy, "--skip-ssl");
            assertThat(run.exit()).isNotZero();
            assertThat(run.output()).contains("3159").contains("clientTls.mode: require");
        }
    }

    @Test
    void theMariadbClientWithSslUnderAllowAndPlaintextToo() throws Exception {
        try (TestProxy proxy = proxy("allow", "")) {
            Run tls = mariadb(proxy, "--ssl", "-e", "SELECT CURRENT_USER(); \\s");
            assertThat(tls.exit()).as(tls.output()).isZero();
            assertThat(tls.output()).contains(MySqlIt.NATIVE_USER + "@").containsPattern("SSL:\\s+Cipher in use is \\S+");
            Run plain = mariadb(proxy, "--skip-ssl", "-e", "SELECT CURRENT_USER(); \\s");
            assertThat(plain.exit()).as(plain.output()).isZero();
            assertThat(plain.output()).contains(MySqlIt.NATIVE_USER + "@").containsPattern("SSL:\\s+Not in use");
            assertThat(successfulHandshakes(proxy)).isEqualTo(1);
        }
    }

    private record Run(int exit, String output) {
    }

    private static Run mariadb(TestProxy proxy, String... options) throws IOException, InterruptedException {
        List<String> command = new ArrayList<>(List.of("mariadb", "-h", "127.0.0.1", "-P", String.valueOf(proxy.port("my")),
                "-u", MySqlIt.NATIVE_USER, "-p" + MySqlIt.NATIVE_PASSWORD, "test"));
        command.addAll(List.of(options));
        if (!command.contains("-e")) {
            command.addAll(List.of("-e", "SELECT 1"));
        }
        Process process;
        try {
            process = new ProcessBuilder(command).redirectErrorStream(true).start();
        } catch (IOException notInstalled) {
            throw new AssertionError("mariadb is not installed: run .ci/setup-mariadb.sh as root", notInstalled);
        }
        process.getOutputStream().close();
        byte[] output = process.getInputStream().readAllBytes();
        assertThat(process.waitFor(30, TimeUnit.SECONDS)).isTrue();
        return new Run(process.exitValue(), new String(output, StandardCharsets.UTF_8));
    }
}
