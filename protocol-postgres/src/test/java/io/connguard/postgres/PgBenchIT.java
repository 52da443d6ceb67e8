package io.connguard.postgres;

import io.connguard.core.testing.LeakGuard;
import io.connguard.core.testing.TestProxy;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.util.HashMap;
import java.util.Map;

import static io.connguard.postgres.PgIt.direct;
import static io.connguard.postgres.PgIt.execute;
import static io.connguard.postgres.PgIt.longValue;
import static io.connguard.postgres.PgIt.unique;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * pgbench through the proxy in every query mode and with a pipelined script: zero failed transactions,
 * and the TPC-B balances still add up (no statement lost or doubled). It runs in a database of its own.
 */
@ExtendWith(LeakGuard.class)
class PgBenchIT {

    private static final int CLIENTS = 4;
    private static final int TRANSACTIONS = 150;

    private static final String PIPELINE = """
            \\set aid random(1, 100000 * :scale)
            \\set bid random(1, 1 * :scale)
            \\set tid random(1, 10 * :scale)
            \\set delta random(-5000, 5000)
            \\startpipeline
            BEGIN;
            UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;
            SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
            UPDATE pgbench_tellers SET tbalance = tbalance + :delta WHERE tid = :tid;
            UPDATE pgbench_branches SET bbalance = bbalance + :delta WHERE bid = :bid;
            INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (:tid, :bid, :aid, :delta, CURRENT_TIMESTAMP);
            END;
            \\endpipeline
            """;

    private static TestProxy proxy;
    private static String database;

    @BeforeAll
    static void start() throws Exception {
        database = unique("bench");
        try (Connection d = direct()) {
            execute(d, "CREATE DATABASE " + database);
        }
        proxy = PgIt.proxy();
        PgTool.Result init = PgTool.run(env("pgbench-init"), 300, "pgbench", "-i", "-s", "1", "-q");
        assertThat(init.exitCode()).as(init.toString()).isZero();
    }

    @AfterAll
    static void stop() throws SQLException {
        if (proxy != null) {
            proxy.close();
        }
        try (Connection d = direct()) {
            execute(d, "DROP DATABASE IF EXISTS " + database + " WITH (FORCE)");
        }
    }

    private static Map<String, String> env(String application) {
        Map<String, String> env = new HashMap<>(PgTool.env(proxy, application));
        env.put("PGDATABASE", database);
        return env;
    }

    private static void assertNoFailures(PgTool.Result result) {
        assertThat(result.exitCode()).as(result.toString()).isZero();
        assertThat(result.out()).as(result.toString())
                .contains("number of transactions actually processed: " + CLIENTS * TRANSACTIONS + "/" + CLIENTS * TRANSACTIONS)
                .contains("number of failed transactions: 0 (0.000%)");
    }

    private static void assertBalancesAddUp() throws SQLException {
        java.util.Properties props = PgIt.props("cg-pg-bench-check");
        try (Connection c = DriverManager.getConnection(PgIt.db().jdbcUrl().replaceAll("/[^/]*$", "/" + database), props)) {
            long history = longValue(c, "SELECT coalesce(sum(delta), 0) FROM pgbench_history");
            assertThat(longValue(c, "SELECT sum(abalance) FROM pgbench_accounts")).isEqualTo(history);
            assertThat(longValue(c, "SELECT sum(bbalance) FROM pgbench_branches")).isEqualTo(history);
            assertThat(longValue(c, "SELECT sum(tbalance) FROM pgbench_tellers")).isEqualTo(history);
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"simple", "extended", "prepared"})
    void tpcbInEveryQueryMode(String mode) throws Exception {
        PgTool.Result result = PgTool.run(env("pgbench-" + mode), 300, "pgbench", "-n", "-M", mode,
                "-c", String.valueOf(CLIENTS), "-j", "2", "-t", String.valueOf(TRANSACTIONS));
        assertNoFailures(result);
        assertBalancesAddUp();
        assertThat(proxy.metrics()).contains("application=\"pgbench-" + mode + "\"");
    }

    @ParameterizedTest
    @ValueSource(strings = {"extended", "prepared"})
    void aPipelinedScript(String mode) throws Exception {
        Path script = Files.createTempFile("cg-pg-pipeline", ".sql");
        try {
            Files.writeString(script, PIPELINE);
            PgTool.Result result = PgTool.run(env("pgbench-pipeline-" + mode), 300, "pgbench", "-n", "-M", mode,
                    "-c", String.valueOf(CLIENTS), "-j", "2", "-t", String.valueOf(TRANSACTIONS), "-f", script.toString());
            assertNoFailures(result);
            assertBalancesAddUp();
        } finally {
            Files.deleteIfExists(script);
        }
    }

    @Test
    void theBenchmarkSessionsWentThroughTheProxy() throws Exception {
        PgTool.Result result = PgTool.run(env("pgbench-select"), 300, "pgbench", "-n", "-S", "-M", "prepared",
                "-c", String.valueOf(CLIENTS), "-j", "2", "-t", String.valueOf(TRANSACTIONS));
        assertNoFailures(result);
        assertThat(proxy.metrics()).containsPattern(
                "connguard_client_admissions_total\\{application=\"pgbench-select\",[^}]*outcome=\"admitted\"[^}]*} ([5-9]|[1-9][0-9]+)\\.0");
    }
}
