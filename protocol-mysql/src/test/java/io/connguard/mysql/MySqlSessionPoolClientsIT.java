package io.connguard.mysql;

import io.connguard.core.testing.LeakGuard;
import io.connguard.core.testing.TestProxy;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The clients of a {@code pool.mode: session} MySQL listener besides MySQL Connector/J in plaintext: the
 * {@code mariadb} command-line client (libmariadb) in plaintext and over TLS, MariaDB Connector/J, and
 * MySQL Connector/J over a TLS client leg (mysql_clear_password); each logs in through connguard's own
 * password exchange and a second run of the same client gets the server thread the first one left.
 */
@ExtendWith(LeakGuard.class)
class MySqlSessionPoolClientsIT {

    @BeforeAll
    static void account() throws SQLException {
        MySqlSessionPoolIT.account();
    }

    private static TestProxy proxy(String clientTls) {
        return MySqlIt.proxy("    pool:\n      mode: session\n      size: 2\n    clientTls:\n      mode: " + clientTls + "\n", "");
    }

    private record Run(int exit, String output) {
    }

    private static Run mariadb(TestProxy proxy, String password, String... options) throws IOException, InterruptedException {
        List<String> command = new ArrayList<>(List.of("mariadb", "-h", "127.0.0.1", "-P", String.valueOf(proxy.port("my")),
                "-u", MySqlSessionPoolIT.USER, "-p" + password, MySqlIt.database().database(), "--batch"));
        command.addAll(List.of(options));
        Process process;
        try {
            process = new ProcessBuilder(command).redirectErrorStream(true).start();
        } catch (IOException notInstalled) {
            throw new AssertionError("mariadb is not installed: run .ci/setup-mariadb.sh as root", notInstalled);
        }
        process.getOutputStream().close();
        byte[] output = process.getInputStream().readAllBytes();
        assertThat(process.waitFor(60, TimeUnit.SECONDS)).isTrue();
        return new Run(process.exitValue(), new String(output, StandardCharsets.UTF_8));
    }

    private static long threadOf(String output) {
        String[] lines = output.strip().split("\n");
        return Long.parseLong(lines[lines.length - 1].strip());
    }

    private static long thread(Connection c) throws SQLException {
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT CONNECTION_ID()")) {
            rs.next();
            return rs.getLong(1);
        }
    }

    @Test
    void theMariadbClientInPlaintextAndOverTls() throws Exception {
        try (TestProxy proxy = proxy("allow")) {
            Run first = mariadb(proxy, MySqlSessionPoolIT.PASSWORD, "--skip-ssl", "-e",
                    "SET @secret = 1; SELECT CURRENT_USER(); SELECT CONNECTION_ID()");
            assertThat(first.exit()).as(first.output()).isZero();
            assertThat(first.output()).contains(MySqlSessionPoolIT.USER + "@%");
            Run second = mariadb(proxy, MySqlSessionPoolIT.PASSWORD, "--ssl", "-e",
                    "SELECT @secret IS NULL; SELECT CONNECTION_ID()");
            assertThat(second.exit()).as(second.output()).isZero();
            assertThat(threadOf(second.output())).as("the pooled server thread").isEqualTo(threadOf(first.output()));
            assertThat(second.output()).contains("@secret IS NULL\n1");
            Run wrong = mariadb(proxy, "wrong", "--skip-ssl", "-e", "SELECT 1");
            assertThat(wrong.exit()).isNotZero();
            assertThat(wrong.output()).contains("ERROR 1045");
            MySqlIt.assertTrackerInSync(proxy);
        }
    }

    @Test
    void mariadbConnectorJAndConnectorJOverTls() throws Exception {
        try (TestProxy proxy = proxy("allow")) {
            long thread;
            try (Connection c = MySqlIt.connect(MySqlIt.mariadbUrl(proxy, "sslMode=disable&allowPublicKeyRetrieval=true"),
                    MySqlSessionPoolIT.USER, MySqlSessionPoolIT.PASSWORD)) {
                thread = thread(c);
            }
            try (Connection c = MySqlIt.connect(MySqlIt.mariadbUrl(proxy, "sslMode=trust"),
                    MySqlSessionPoolIT.USER, MySqlSessionPoolIT.PASSWORD)) {
                assertThat(thread(c)).as("MariaDB Connector/J over TLS, same capabilities").isEqualTo(thread);
            }
            try (Connection c = MySqlIt.connect(MySqlIt.mysqlUrl(proxy, "sslMode=REQUIRED"),
                    MySqlSessionPoolIT.USER, MySqlSessionPoolIT.PASSWORD);
                 Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT CURRENT_USER()")) {
                rs.next();
                assertThat(rs.getString(1)).isEqualTo(MySqlSessionPoolIT.USER + "@%");
            }
            MySqlIt.assertTrackerInSync(proxy);
        }
    }
}
