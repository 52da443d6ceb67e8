package io.connguard.postgres;

import io.connguard.core.testing.LeakGuard;
import io.connguard.core.testing.TestProxy;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;
import java.util.stream.IntStream;

import static io.connguard.postgres.PgIt.direct;
import static io.connguard.postgres.PgIt.longValue;
import static io.connguard.postgres.PgIt.unique;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/** psql through the proxy: \copy both ways, Ctrl-C cancelling a query, \c reconnecting. */
@ExtendWith(LeakGuard.class)
class PgPsqlIT {

    private static TestProxy proxy;

    @BeforeAll
    static void start() {
        proxy = PgIt.proxy();
    }

    @AfterAll
    static void stop() {
        proxy.close();
    }

    @Test
    void copyInAndOutWithBackslashCopy() throws Exception {
        String table = unique("psqlcopy");
        Path in = Files.createTempFile("cg-pg-copy", ".tsv");
        Path out = Files.createTempFile("cg-pg-copy", ".out.tsv");
        try {
            String rows = IntStream.rangeClosed(1, 20_000).mapToObj(i -> i + "\tname " + i + "\n").collect(Collectors.joining());
            Files.writeString(in, rows);
            PgTool.Result result = PgTool.run(PgTool.env(proxy, unique("psql")), 60, "psql", "-X", "-v", "ON_ERROR_STOP=1",
                    "-c", "CREATE TABLE " + table + " (id int, name text)",
                    "-c", "\\copy " + table + " from '" + in + "'",
                    "-c", "\\copy (SELECT * FROM " + table + " ORDER BY id) to '" + out + "'",
                    "-c", "DROP TABLE " + table);
            assertThat(result.exitCode()).as(result.toString()).isZero();
            assertThat(result.out()).contains("COPY 20000");
            assertThat(Files.readString(out)).isEqualTo(rows);
        } finally {
            Files.deleteIfExists(in);
            Files.deleteIfExists(out);
            try (Connection d = direct()) {
                PgIt.execute(d, "DROP TABLE IF EXISTS " + table);
            }
        }
    }

    @Test
    void ctrlCCancelsTheRunningQuery() throws Exception {
        String app = unique("sigint");
        Process psql = PgTool.start(PgTool.env(proxy, app), "psql", "-X", "-c", "SELECT pg_sleep(60)");
        await().atMost(15, TimeUnit.SECONDS).until(() -> "active".equals(PgIt.state(proxy, app)));
        try (Connection d = direct()) {
            await().atMost(10, TimeUnit.SECONDS).until(() -> longValue(d,
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = '" + app + "' AND state = 'active'") == 1);
        }
        PgTool.signal(psql, "INT");
        PgTool.Result result = PgTool.finish(psql, 30);
        assertThat(result.exitCode()).as(result.toString()).isEqualTo(1);
        assertThat(result.err()).contains("Cancel request sent").contains("canceling statement due to user request");
    }

    @Test
    void backslashCReconnectsThroughTheProxy() throws Exception {
        String app = unique("reconnect");
        Map<String, String> env = PgTool.env(proxy, app);
        Path script = Files.createTempFile("cg-pg-reconnect", ".sql");
        Files.writeString(script, """
                SELECT pg_backend_pid() AS first_pid \\gset
                \\c %s
                SELECT 'second', pg_backend_pid() <> :first_pid, current_setting('application_name');
                """.formatted(PgIt.db().database()));
        PgTool.Result result;
        try {
            result = PgTool.run(env, 60, "psql", "-X", "-v", "ON_ERROR_STOP=1", "-At", "-f", script.toString());
        } finally {
            Files.deleteIfExists(script);
        }
        assertThat(result.exitCode()).as(result.toString()).isZero();
        assertThat(result.out()).contains("You are now connected to database \"" + PgIt.db().database() + "\"")
                .contains("second|t|" + app);
    }
}
