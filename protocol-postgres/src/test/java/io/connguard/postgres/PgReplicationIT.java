package io.connguard.postgres;

import com.fasterxml.jackson.databind.JsonNode;
import io.connguard.core.testing.LeakGuard;
import io.connguard.core.testing.TestProxy;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.postgresql.PGConnection;
import org.postgresql.replication.LogSequenceNumber;
import org.postgresql.replication.PGReplicationStream;

import java.nio.ByteBuffer;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.Properties;
import java.util.concurrent.TimeUnit;

import static io.connguard.postgres.PgIt.direct;
import static io.connguard.postgres.PgIt.execute;
import static io.connguard.postgres.PgIt.requireRole;
import static io.connguard.postgres.PgIt.unique;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/**
 * Replication connections are relayed (CopyBoth included), counted, and never killed for idleness,
 * even with idle timers far shorter than the test. The replication role comes from .ci/setup-postgres.sh.
 */
@ExtendWith(LeakGuard.class)
class PgReplicationIT {

    @BeforeAll
    static void role() throws SQLException {
        requireRole("cg_repl");
    }

    private static Connection replicationConnection(TestProxy proxy, String application, String mode) throws SQLException {
        Properties props = PgIt.props(application, "replication", mode, "preferQueryMode", "simple",
                "assumeMinServerVersion", "9.4");
        props.setProperty("user", "cg_repl");
        props.setProperty("password", "");
        return DriverManager.getConnection(PgIt.jdbcUrl(proxy), props);
    }

    @Test
    void anIdleReplicationSessionOutlivesTheIdleTimers() throws Exception {
        String app = unique("walsender");
        String ordinary = unique("ordinary");
        try (TestProxy proxy = TestProxy.start(PgIt.config("idleTimeout: 1s\nidleInTransactionTimeout: 1s\nmaxSessionLifetime: 1s"));
             Connection c = replicationConnection(proxy, app, "database");
             Connection control = PgIt.connect(proxy, ordinary)) {
            assertThat(identifySystem(c)).isPositive();
            JsonNode session = PgIt.session(proxy, app);
            assertThat(session).isNotNull();
            assertThat(session.get("user").asText()).isEqualTo("cg_repl");
            // An ordinary session opened alongside, idle under the same limits, is closed by them...
            await().atMost(15, TimeUnit.SECONDS).until(() -> PgIt.session(proxy, ordinary) == null);
            // ...while the replication session, idle just as long, is not.
            assertThat(PgIt.session(proxy, app)).as("still open").isNotNull();
            assertThat(identifySystem(c)).isPositive();
        }
    }

    private static long identifySystem(Connection c) throws SQLException {
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("IDENTIFY_SYSTEM")) {
            assertThat(rs.next()).isTrue();
            return rs.getInt("timeline");
        }
    }

    @Test
    void physicalWalStreamsThroughCopyBoth() throws Exception {
        String table = unique("wal");
        try (TestProxy proxy = PgIt.proxy();
             Connection c = replicationConnection(proxy, unique("stream"), "true");
             Connection d = direct()) {
            LogSequenceNumber start;
            try (Statement s = d.createStatement(); ResultSet rs = s.executeQuery("SELECT pg_current_wal_lsn()")) {
                rs.next();
                start = LogSequenceNumber.valueOf(rs.getString(1));
            }
            PGReplicationStream stream = c.unwrap(PGConnection.class).getReplicationAPI().replicationStream()
                    .physical().withStartPosition(start).start();
            try {
                execute(d, "CREATE TABLE " + table + " AS SELECT g FROM generate_series(1, 1000) g");
                long[] received = new long[1];
                await().atMost(30, TimeUnit.SECONDS).until(() -> {
                    ByteBuffer message = stream.readPending();
                    if (message != null) {
                        received[0] += message.remaining();
                    }
                    return received[0] > 0;
                });
                assertThat(stream.getLastReceiveLSN().asLong()).isGreaterThanOrEqualTo(start.asLong());
            } finally {
                stream.close();
                execute(d, "DROP TABLE IF EXISTS " + table);
            }
        }
    }
}
