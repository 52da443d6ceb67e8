package io.connguard.mysql;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.connguard.core.testing.LeakGuard;
import io.connguard.core.testing.TestProxy;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static io.connguard.mysql.MySqlTransactionPoolIT.PASSWORD;
import static io.connguard.mysql.MySqlTransactionPoolIT.USER;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * npm {@code mysql2} through a {@code pool.mode: transaction} MySQL listener with a password account: eight
 * long-lived client connections at once over a pool of three server connections, each running plain queries,
 * server-side prepared {@code execute()} (prepared once per client connection, executed on whichever server
 * connection serves it), committed and rolled-back transactions and a time_zone of its own
 * ({@code src/test/node/transaction-pool.js} checks every result).
 */
@ExtendWith(LeakGuard.class)
class MySqlTransactionPoolDriversIT {

    private static final int SIZE = 3;
    private static final int WORKERS = 8;
    private static final int ROUNDS = 15;

    @BeforeAll
    static void account() throws SQLException {
        MySqlTransactionPoolIT.account();
    }

    @Test
    void npmMysql2QueriesPreparedStatementsAndTransactionsOverASmallPool() throws Exception {
        Path dir = Path.of("src/test/node").toAbsolutePath();
        if (!Files.isDirectory(dir.resolve("node_modules/mysql2"))) {
            org.junit.jupiter.api.Assertions.fail("npm package mysql2 is not installed in " + dir
                    + "; run `npm ci` there (.ci/run does)");
        }
        String table = "cg_node_tx_" + Long.toHexString(System.nanoTime());
        try (Connection admin = MySqlIt.database().connectDirect(); Statement s = admin.createStatement()) {
            s.execute("CREATE TABLE " + table + " (id INT AUTO_INCREMENT PRIMARY KEY, worker INT, round INT)");
        }
        try (TestProxy proxy = MySqlTransactionPoolIT.proxy("mode: transaction\nsize: " + SIZE)) {
            ProcessBuilder node = new ProcessBuilder("node", "transaction-pool.js", table).directory(dir.toFile())
                    .redirectErrorStream(true);
            Map<String, String> env = node.environment();
            env.put("MYSQL_HOST", "127.0.0.1");
            env.put("MYSQL_PORT", String.valueOf(proxy.port("my")));
            env.put("MYSQL_USER", USER);
            env.put("MYSQL_PASSWORD", PASSWORD);
            env.put("MYSQL_DATABASE", MySqlIt.database().database());
            env.put("WORKERS", String.valueOf(WORKERS));
            env.put("ROUNDS", String.valueOf(ROUNDS));
            Process process = node.start();
            process.getOutputStream().close();
            String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            assertThat(process.waitFor(180, TimeUnit.SECONDS)).isTrue();
            assertThat(process.exitValue()).as(output).isZero();
            JsonNode result = new ObjectMapper().readTree(output.strip());
            assertThat(result.get("done").asInt()).as(output).isEqualTo(WORKERS * ROUNDS);
            assertThat(result.get("threads").asInt()).as("server threads that ran execute(): %s", output)
                    .isBetween(2, SIZE);
            assertThat(result.get("moved").asInt()).as("workers whose execute() ran on several server threads: %s",
                    output).isPositive();
            assertThat(MySqlTransactionPoolIT.serverThreads()).as("server threads of the pool")
                    .hasSizeLessThanOrEqualTo(SIZE);
            MySqlIt.assertTrackerInSync(proxy);
            try (Connection admin = MySqlIt.database().connectDirect(); Statement s = admin.createStatement();
                 ResultSet rs = s.executeQuery("SELECT count(*), count(DISTINCT worker, round), min(round) FROM " + table)) {
                rs.next();
                assertThat(rs.getInt(1)).as("rows committed").isEqualTo(WORKERS * ROUNDS);
                assertThat(rs.getInt(2)).isEqualTo(WORKERS * ROUNDS);
                assertThat(rs.getInt(3)).as("no rolled-back row").isZero();
            }
        } finally {
            try (Connection admin = MySqlIt.database().connectDirect(); Statement s = admin.createStatement()) {
                s.execute("DROP TABLE IF EXISTS " + table);
            }
        }
    }
}
