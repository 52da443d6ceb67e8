package io.connguard.mysql;

import io.connguard.core.testing.FaultRelay;
import io.connguard.core.testing.LeakGuard;
import io.connguard.core.testing.TestProxy;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.extension.ExtendWith;

import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.time.Duration;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * Relay, session and transaction mode with every byte arriving in a read of its own, both ways on both legs ({@link FaultRelay}s
 * forwarding {@link FaultRelay#byteAtATime} between the clients and connguard and between connguard and the
 * local MariaDB): the login, the tracking set-up, commands, OKs with session-state changes, PREPARE_OKs and
 * EXECUTEs (whose statement ids connguard rewrites), result sets and the resets are all cut at every offset,
 * and two clients (in transaction mode sharing one server connection) still get their own prepared statements
 * and state.
 */
@ExtendWith(LeakGuard.class)
class MySqlSplitReadsIT {

    private static final String URL_PARAMETERS = MySqlTransactionPoolIT.JDBC + "&useServerPrepStmts=true";

    @BeforeAll
    static void account() throws SQLException {
        MySqlTransactionPoolIT.account();
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"relay", "session", "transaction"})
    void preparedStatementsAndStateSurviveBytesSplitAtEveryOffset(String mode) throws Exception {
        String pool = switch (mode) {
            case "session" -> "mode: session\nsize: 2";
            case "transaction" -> "mode: transaction\nsize: 1";   // a and b share one connection
            default -> "";
        };
        try (FaultRelay relay = splitting(MySqlIt.database().hostPort());
             TestProxy proxy = MySqlIt.proxyTo(relay.hostPort(), pool.isEmpty() ? "" : "    pool:\n" + pool.indent(6), """
                         maxConnections: 0
                         queueTimeout: 30s
                         idleInTransactionTimeout: 0
                         leakDetectionThreshold: 0
                     """);
             FaultRelay front = splitting("127.0.0.1:" + proxy.port("my"));
             Connection a = MySqlIt.connect(url(front), MySqlTransactionPoolIT.USER, MySqlTransactionPoolIT.PASSWORD);
             Connection b = MySqlIt.connect(url(front), MySqlTransactionPoolIT.USER, MySqlTransactionPoolIT.PASSWORD)) {
            MySqlTransactionPoolIT.run(a, "SET time_zone = '+05:00'");
            for (int round = 0; round < 3; round++) {
                for (Connection c : new Connection[] {a, b}) {
                    try (PreparedStatement p = c.prepareStatement("SELECT ? + " + round + ", @@SESSION.time_zone")) {
                        p.setInt(1, 1000);
                        try (ResultSet rs = p.executeQuery()) {
                            assertThat(rs.next()).isTrue();
                            assertThat(rs.getInt(1)).isEqualTo(1000 + round);
                            assertThat(rs.getString(2)).as("each client's own time zone")
                                    .isEqualTo(c == a ? "+05:00" : MySqlTransactionPoolIT.text(b, "SELECT @@GLOBAL.time_zone"));
                        }
                    }
                }
            }
            try (PreparedStatement p = a.prepareStatement("SELECT no_such_column FROM cg_tx_rows")) {
                assertThatThrownBy(p::executeQuery).as("a prepare the server refuses, its ERR cut up too")
                        .isInstanceOfSatisfying(SQLException.class, e -> assertThat(e.getErrorCode()).isEqualTo(1054));
            }
            assertThat(MySqlTransactionPoolIT.text(a, "SELECT 'a goes on'")).isEqualTo("a goes on");
            MySqlIt.assertTrackerInSync(proxy);
        }
    }

    /** Through {@code front}, which cuts up what the client sends and what it reads as well. */
    private static String url(FaultRelay front) {
        return MySqlIt.database().jdbcUrl("127.0.0.1", front.port()) + "?" + URL_PARAMETERS;
    }

    /** A relay to {@code hostPort} that forwards every byte, both ways, as a write of its own, 0.1 ms apart. */
    private static FaultRelay splitting(String hostPort) {
        return FaultRelay.to(hostPort).byteAtATime(Duration.ofNanos(100_000));
    }
}
