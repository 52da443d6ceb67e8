package io.connguard.mysql;

import io.connguard.core.testing.LeakGuard;
import io.connguard.core.testing.TestProxy;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The {@code mariadb} command-line client (libmariadb) and {@code sysbench oltp_read_write} through the
 * proxy. Both are installed by {@code .ci/setup-mariadb.sh}; a missing one fails the test.
 */
@ExtendWith(LeakGuard.class)
class MySqlCommandLineIT {

    private static final String SYSBENCH_DB = "cg_my_sysbench";
    private static TestProxy proxy;

    @BeforeAll
    static void start() {
        proxy = MySqlIt.proxy();
    }

    @org.junit.jupiter.api.AfterEach
    void trackerStayedInSync() {
        MySqlIt.assertTrackerInSync(proxy);
    }

    @AfterAll
    static void stop() {
        proxy.close();
    }

    private record Run(int exit, String output) {
    }

    private static Run run(List<String> command, int timeoutSeconds) throws IOException, InterruptedException {
        Process process;
        try {
            process = new ProcessBuilder(command).redirectErrorStream(true).start();
        } catch (IOException notInstalled) {
            throw new AssertionError(command.get(0) + " is not installed: run .ci/setup-mariadb.sh as root", notInstalled);
        }
        process.getOutputStream().close();
        byte[] output = process.getInputStream().readAllBytes();
        assertThat(process.waitFor(timeoutSeconds, TimeUnit.SECONDS)).as("%s finished", command).isTrue();
        return new Run(process.exitValue(), new String(output, StandardCharsets.UTF_8));
    }

    private static List<String> cli(String user, String password, String sql) {
        return List.of("mariadb", "-h", "127.0.0.1", "-P", String.valueOf(proxy.port("my")), "-u", user,
                "-p" + password, MySqlIt.database().database(), "--batch", "-e", sql);
    }

    @Test
    void theMariadbClientQueriesThroughTheProxyInPlaintext() throws Exception {
        Run run = run(cli(MySqlIt.NATIVE_USER, MySqlIt.NATIVE_PASSWORD,
                "SELECT CURRENT_USER(); START TRANSACTION; SELECT 41 + 1 AS answer; COMMIT; SHOW SESSION STATUS LIKE 'Ssl_cipher'"), 60);
        assertThat(run.exit()).as(run.output()).isZero();
        assertThat(run.output()).contains(MySqlIt.NATIVE_USER + "@%").contains("answer\n42");
    }

    @Test
    void theMariadbClientWithEd25519AndAWrongPassword() throws Exception {
        assertThat(MySqlIt.hasEd25519()).as("the server's ed25519 plugin (run .ci/setup-mariadb.sh)").isTrue();
        Run ok = run(cli(MySqlIt.ED25519_USER, MySqlIt.ED25519_PASSWORD, "SELECT CURRENT_USER()"), 60);
        assertThat(ok.exit()).as(ok.output()).isZero();
        assertThat(ok.output()).contains(MySqlIt.ED25519_USER + "@%");
        Run denied = run(cli(MySqlIt.NATIVE_USER, "wrong", "SELECT 1"), 60);
        assertThat(denied.exit()).isNotZero();
        assertThat(denied.output()).contains("ERROR 1045 (28000)").contains("Access denied for user '" + MySqlIt.NATIVE_USER + "'");
    }

    @Test
    void sysbenchOltpReadWriteRunsWithoutErrors() throws Exception {
        try (Connection admin = MySqlIt.database().connectDirect(); Statement s = admin.createStatement()) {
            s.execute("DROP DATABASE IF EXISTS " + SYSBENCH_DB);
            s.execute("CREATE DATABASE " + SYSBENCH_DB);
            s.execute("GRANT ALL PRIVILEGES ON " + SYSBENCH_DB + ".* TO '" + MySqlIt.NATIVE_USER + "'@'%'");
        }
        List<String> base = List.of("sysbench", "oltp_read_write", "--db-driver=mysql", "--mysql-host=127.0.0.1",
                "--mysql-port=" + proxy.port("my"), "--mysql-user=" + MySqlIt.NATIVE_USER,
                "--mysql-password=" + MySqlIt.NATIVE_PASSWORD, "--mysql-db=" + SYSBENCH_DB, "--tables=4",
                "--table-size=10000", "--mysql-ssl=off");
        try {
            Run prepare = run(concat(base, "prepare"), 300);
            assertThat(prepare.exit()).as(prepare.output()).isZero();
            // Contention low enough that InnoDB deadlocks (which sysbench counts as ignored errors, with
            // or without a proxy) do not occur: every error counted here is one the proxy caused.
            Run bench = run(concat(base, "--threads=4", "--time=10", "--report-interval=0", "run"), 300);
            assertThat(bench.exit()).as(bench.output()).isZero();
            assertThat(bench.output()).containsPattern("transactions:\\s+[1-9]\\d*")
                    .containsPattern("ignored errors:\\s+0 ")
                    .containsPattern("reconnects:\\s+0 ");
            Run cleanup = run(concat(base, "cleanup"), 120);
            assertThat(cleanup.exit()).as(cleanup.output()).isZero();
        } finally {
            try (Connection admin = MySqlIt.database().connectDirect(); Statement s = admin.createStatement()) {
                s.execute("DROP DATABASE IF EXISTS " + SYSBENCH_DB);
            }
        }
    }

    private static List<String> concat(List<String> base, String... more) {
        List<String> all = new ArrayList<>(base);
        all.addAll(List.of(more));
        return all;
    }
}
