package io.connguard.postgres;

import io.connguard.core.testing.FaultRelay;
import io.connguard.core.testing.LeakGuard;
import io.connguard.core.testing.TestProxy;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.extension.ExtendWith;

import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;

import static io.connguard.postgres.PgIt.unique;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * Relay, session and transaction mode with every byte arriving in a read of its own, both ways on both legs ({@link FaultRelay}s
 * forwarding {@link FaultRelay#byteAtATime} between the clients and connguard and between connguard and the
 * local PostgreSQL): the start-up, Parse, Bind and Execute of the prepared statements connguard renames,
 * ParameterStatus, the results, errors and ReadyForQuery are all cut at every offset, and two clients (in
 * transaction mode taking turns on one server connection) still get their own statements and results.
 */
@ExtendWith(LeakGuard.class)
class PgSplitReadsIT {

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"relay", "session", "transaction"})
    void preparedStatementsErrorsAndTransactionsSurviveBytesSplitAtEveryOffset(String mode) throws Exception {
        String pool = switch (mode) {
            case "session" -> "pool:\n  mode: session\n  size: 2";
            case "transaction" -> "pool:\n  mode: transaction\n  size: 1";   // a and b share one connection
            default -> "";
        };
        try (FaultRelay relay = splitting(PgIt.db().hostPort());
             TestProxy proxy = TestProxy.start("""
                     listeners:
                       - name: pg
                         protocol: postgres
                         listen: 127.0.0.1:0
                         upstream: %s
                         handshakeTimeout: 30s
                     %s
                     clients:
                       identity: [user, database]
                       defaults:
                         maxConnections: 0
                         queueTimeout: 30s
                     """.formatted(relay.hostPort(), pool.indent(4).stripTrailing()));
             FaultRelay front = splitting("127.0.0.1:" + proxy.port("pg"));
             Connection a = DriverManager.getConnection(url(front), PgIt.props(unique("split_a"), "prepareThreshold", "1"));
             Connection b = DriverManager.getConnection(url(front), PgIt.props(unique("split_b"), "prepareThreshold", "1"))) {
            for (int round = 0; round < 3; round++) {
                for (Connection c : new Connection[] {a, b}) {
                    try (PreparedStatement p = c.prepareStatement("SELECT ?::int + " + round + ", current_setting('application_name')")) {
                        p.setInt(1, 1000);
                        try (ResultSet rs = p.executeQuery()) {
                            assertThat(rs.next()).isTrue();
                            assertThat(rs.getInt(1)).isEqualTo(1000 + round);
                            assertThat(rs.getString(2)).as("each client's own application_name").startsWith(c == a ? "cg_pg_split_a" : "cg_pg_split_b");
                        }
                    }
                }
            }
            a.setAutoCommit(false);
            try (Statement s = a.createStatement()) {
                s.execute("SET LOCAL statement_timeout = '7s'");
                try (ResultSet rs = s.executeQuery("SELECT current_setting('statement_timeout'), n FROM generate_series(1, 50) n")) {
                    int rows = 0;
                    while (rs.next()) {
                        assertThat(rs.getString(1)).isEqualTo("7s");
                        rows++;
                    }
                    assertThat(rows).isEqualTo(50);
                }
                assertThatThrownBy(() -> s.executeQuery("SELECT no_such_column FROM pg_class"))
                        .isInstanceOfSatisfying(SQLException.class, e -> assertThat(e.getSQLState()).isEqualTo("42703"));
            }
            a.rollback();
            a.setAutoCommit(true);
            try (Statement s = b.createStatement(); ResultSet rs = s.executeQuery("SHOW statement_timeout")) {
                rs.next();
                assertThat(rs.getString(1)).as("nothing of a's transaction is left (on the shared connection in transaction mode)").isNotEqualTo("7s");
            }
            try (Statement s = a.createStatement(); ResultSet rs = s.executeQuery("SELECT 'a goes on'")) {
                rs.next();
                assertThat(rs.getString(1)).isEqualTo("a goes on");
            }
        }
    }

    /** Through {@code front}, which cuts up what the client sends and what it reads as well. */
    private static String url(FaultRelay front) {
        return PgIt.db().jdbcUrl("127.0.0.1", front.port());
    }

    /** A relay to {@code hostPort} that forwards every byte, both ways, as a write of its own, 0.1 ms apart. */
    private static FaultRelay splitting(String hostPort) {
        return FaultRelay.to(hostPort).byteAtATime(Duration.ofNanos(100_000));
    }
}
