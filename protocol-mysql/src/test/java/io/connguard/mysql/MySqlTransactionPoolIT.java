package io.connguard.mysql;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.connguard.core.testing.LeakGuard;
import io.connguard.core.testing.TestProxy;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/**
 * {@code pool.mode: transaction} on a MySQL listener against the local MariaDB: client connections hold a
 * server connection only while a command or transaction is in flight, their session state (sql_mode,
 * time_zone, autocommit, character set, schema, LAST_INSERT_ID) follows them onto whichever connection serves
 * them, and what cannot follow (user variables, temporary tables, locks ...) pins them. Server threads are
 * counted for this test's own account only ({@code cg_my_tx}).
 */
@ExtendWith(LeakGuard.class)
class MySqlTransactionPoolIT {

    static final String USER = "cg_my_tx";
    static final String PASSWORD = "cg_my_tx_pw";
    static final String JDBC = "sslMode=DISABLED&allowPublicKeyRetrieval=true";

    @BeforeAll
    static void account() throws SQLException {
        try (Connection admin = MySqlIt.database().connectDirect(); Statement s = admin.createStatement()) {
            s.execute("CREATE USER IF NOT EXISTS '" + USER + "'@'%' IDENTIFIED BY '" + PASSWORD + "'");
            s.execute("GRANT ALL PRIVILEGES ON `" + MySqlIt.database().database() + "`.* TO '" + USER + "'@'%'");
            s.execute("CREATE TABLE IF NOT EXISTS cg_tx_ids (id INT AUTO_INCREMENT PRIMARY KEY, who VARCHAR(20))");
            s.execute("CREATE TABLE IF NOT EXISTS cg_tx_rows (n INT, who VARCHAR(20))");
        }
    }

    static TestProxy proxy(String pool) {
        return MySqlIt.proxy("    pool:\n" + pool.indent(6), """
                    maxConnections: 0
                    queueTimeout: 10s
                    idleInTransactionTimeout: 0
                    leakDetectionThreshold: 0
                """);
    }

    static Connection connect(TestProxy proxy) throws SQLException {
        return MySqlIt.connect(MySqlIt.mysqlUrl(proxy, JDBC), USER, PASSWORD);
    }

    /** The thread ids of this test account's connections on the server, seen from a direct connection. */
    static Set<Long> serverThreads() throws SQLException {
        Set<Long> ids = new HashSet<>();
        try (Connection admin = MySqlIt.database().connectDirect(); Statement s = admin.createStatement();
             ResultSet rs = s.executeQuery("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = '" + USER + "'")) {
            while (rs.next()) {
                ids.add(rs.getLong(1));
            }
        }
        return ids;
    }

    static String text(Connection c, String sql) throws SQLException {
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery(sql)) {
            rs.next();
            return rs.getString(1);
        }
    }

    static void run(Connection c, String sql) throws SQLException {
        try (Statement s = c.createStatement()) {
            s.execute(sql);
        }
    }

    static JsonNode pool(TestProxy proxy) throws Exception {
        for (JsonNode p : new ObjectMapper().readTree(proxy.get("/pools").body())) {
            if (USER.equals(p.get("user").asText())) {
                return p;
            }
        }
        return null;
    }

    static int lent(TestProxy proxy) throws Exception {
        JsonNode p = pool(proxy);
        JsonNode counts = p == null ? null : p.get("serverConnections");
        return counts == null ? 0 : counts.get("active").asInt() + counts.get("pinned").asInt();
    }

    @Test
    void twoClientsOnOneServerConnectionNeverSeeEachOthersSessionState() throws Exception {
        try (TestProxy proxy = proxy("mode: transaction\nsize: 1");
             Connection a = connect(proxy); Connection b = connect(proxy)) {
            String globalSqlMode = text(b, "SELECT @@GLOBAL.sql_mode");
            String globalTimeZone = text(b, "SELECT @@GLOBAL.time_zone");
            run(a, "SET SESSION sql_mode = 'ANSI_QUOTES'");
            run(a, "SET time_zone = '+05:00'");
            run(a, "SET NAMES latin1");
            run(a, "SET SESSION TRANSACTION ISOLATION LEVEL SERIALIZABLE");
            long thread = Long.parseLong(text(a, "SELECT CONNECTION_ID()"));
            // size 1: b runs on the very server thread a changed
            assertThat(Long.parseLong(text(b, "SELECT CONNECTION_ID()"))).isEqualTo(thread);
            assertThat(text(b, "SELECT @@SESSION.sql_mode")).isEqualTo(globalSqlMode);
            assertThat(text(b, "SELECT @@SESSION.time_zone")).isEqualTo(globalTimeZone);
            assertThat(text(b, "SELECT @@SESSION.character_set_client")).isNotEqualTo("latin1");
            assertThat(text(b, "SELECT @@SESSION.tx_isolation")).isEqualTo(text(b, "SELECT @@GLOBAL.tx_isolation"));
            run(b, "SET time_zone = '-03:00'");
            assertThat(text(a, "SELECT @@SESSION.sql_mode")).isEqualTo("ANSI_QUOTES");
            assertThat(text(a, "SELECT @@SESSION.time_zone")).isEqualTo("+05:00");
            assertThat(text(a, "SELECT @@SESSION.character_set_client")).isEqualTo("latin1");
            assertThat(text(a, "SELECT @@SESSION.tx_isolation")).isEqualTo("SERIALIZABLE");
            assertThat(text(b, "SELECT @@SESSION.time_zone")).isEqualTo("-03:00");
            assertThat(text(b, "SELECT @@SESSION.sql_mode")).isEqualTo(globalSqlMode);
            assertThat(serverThreads()).containsExactly(thread);
            MySqlIt.assertTrackerInSync(proxy);
        }
    }

    @Test
    void interleavedTransactionsKeepTheirOwnAutocommitAndRows() throws Exception {
        try (TestProxy proxy = proxy("mode: transaction\nsize: 2");
             Connection a = connect(proxy); Connection b = connect(proxy)) {
            run(a, "DELETE FROM cg_tx_rows WHERE who IN ('a', 'b')");
            a.setAutoCommit(false);
            run(a, "INSERT INTO cg_tx_rows VALUES (1, 'a')");
            // a holds its connection inside the transaction: b gets the other one and does not see a's row
            assertThat(text(b, "SELECT COUNT(*) FROM cg_tx_rows WHERE who = 'a'")).isEqualTo("0");
            assertThat(text(b, "SELECT @@autocommit")).isEqualTo("1");
            run(b, "INSERT INTO cg_tx_rows VALUES (2, 'b')");
            a.rollback();
            assertThat(text(a, "SELECT @@autocommit")).isEqualTo("0");
            a.commit();
            assertThat(text(b, "SELECT COUNT(*) FROM cg_tx_rows WHERE who = 'a'")).isEqualTo("0");
            assertThat(text(b, "SELECT COUNT(*) FROM cg_tx_rows WHERE who = 'b'")).isEqualTo("1");
            MySqlIt.assertTrackerInSync(proxy);
        }
    }

    @Test
    void thePoolsFirstClientCanLogANewServerConnectionInLater() throws Exception {
        try (TestProxy proxy = proxy("mode: transaction\nsize: 2");
             Connection first = connect(proxy); Connection second = connect(proxy)) {
            // first gave its password to the pool's first login; second holds that connection in a transaction
            second.setAutoCommit(false);
            run(second, "SELECT 1 FROM cg_tx_rows LIMIT 1");
            long started = System.nanoTime();
            assertThat(text(first, "SELECT 'a new server connection'")).isEqualTo("a new server connection");
            assertThat(java.util.concurrent.TimeUnit.NANOSECONDS.toSeconds(System.nanoTime() - started))
                    .as("no wait for a password no one is asked for").isLessThan(5);
            assertThat(serverThreads()).hasSize(2);
            second.commit();
        }
    }

    @Test
    void aClientAdmittedByItsScrambleAnswerIsServedByANewServerConnectionToo() throws Exception {
        try (TestProxy proxy = proxy("mode: transaction\nsize: 2");
             Connection first = connect(proxy); Connection proven = connect(proxy)) {
            // proven's answer to the greeting matched the pool's password: it never sent the password itself
            first.setAutoCommit(false);
            run(first, "SELECT 1 FROM cg_tx_rows LIMIT 1");
            long started = System.nanoTime();
            assertThat(text(proven, "SELECT 'served'")).isEqualTo("served");
            assertThat(java.util.concurrent.TimeUnit.NANOSECONDS.toSeconds(System.nanoTime() - started))
                    .as("the new login used the pool's password, no one was asked").isLessThan(5);
            assertThat(serverThreads()).hasSize(2);
            first.commit();
        }
    }

    @Test
    void capsCountServerConnectionsPerTransactionAndMaxClientConnectionsBoundsClients() throws Exception {
        try (TestProxy proxy = MySqlIt.proxy("    pool:\n      mode: transaction\n      size: 4\n", """
                    maxConnections: 1
                    maxClientConnections: 2
                    queueTimeout: 1s
                    idleInTransactionTimeout: 0
                    leakDetectionThreshold: 0
                """);
             Connection a = connect(proxy); Connection b = connect(proxy)) {
            // a cap of one server connection serves two clients that take turns
            for (int i = 0; i < 3; i++) {
                assertThat(text(a, "SELECT " + i)).isEqualTo(String.valueOf(i));
                assertThat(text(b, "SELECT " + i)).isEqualTo(String.valueOf(i));
            }
            org.assertj.core.api.Assertions.assertThatThrownBy(() -> connect(proxy).close())
                    .as("a third client connection is over maxClientConnections")
                    .isInstanceOfSatisfying(SQLException.class, e -> assertThat(e.getErrorCode()).isIn(1040, 1226));
            a.setAutoCommit(false);
            run(a, "SELECT 1 FROM cg_tx_rows LIMIT 1");
            long started = System.nanoTime();
            org.assertj.core.api.Assertions.assertThatThrownBy(() -> text(b, "SELECT 1"))
                    .as("while a's transaction holds the one server connection b waits, then is refused")
                    .isInstanceOfSatisfying(SQLException.class, e -> assertThat(e.getErrorCode()).isIn(1040, 1226));
            assertThat(java.util.concurrent.TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - started))
                    .as("it waited in the queue").isGreaterThanOrEqualTo(900);
            a.commit();
            assertThat(text(a, "SELECT 'a goes on'")).isEqualTo("a goes on");
        }
    }

    @Test
    void moreStatementsThanAConnectionKeepsAreClosedOnTheServerAsTheyAreEvicted() throws Exception {
        try (TestProxy proxy = proxy("mode: transaction\nsize: 1");
             Connection a = MySqlIt.connect(MySqlIt.mysqlUrl(proxy, JDBC + "&useServerPrepStmts=true"), USER, PASSWORD);
             Connection b = MySqlIt.connect(MySqlIt.mysqlUrl(proxy, JDBC + "&useServerPrepStmts=true"), USER, PASSWORD)) {
            int count = MySqlServerConnection.SERVER_STATEMENTS + 30;
            for (int n = 0; n < count; n++) {
                Connection c = n % 2 == 0 ? a : b;
                try (java.sql.PreparedStatement p = c.prepareStatement("SELECT ? + " + n)) {
                    p.setInt(1, 1000);
                    try (ResultSet rs = p.executeQuery()) {
                        rs.next();
                        assertThat(rs.getInt(1)).isEqualTo(1000 + n);
                    }
                }
            }
            try (java.sql.PreparedStatement p = a.prepareStatement("SELECT ? + 0")) {
                p.setInt(1, 7);
                try (ResultSet rs = p.executeQuery()) {
                    rs.next();
                    assertThat(rs.getInt(1)).as("an evicted text is prepared again").isEqualTo(7);
                }
            }
            MySqlIt.assertTrackerInSync(proxy);
        }
    }

    @Test
    void lastInsertIdFollowsTheClientToAnotherServerConnection() throws Exception {
        try (TestProxy proxy = proxy("mode: transaction\nsize: 1");
             Connection a = connect(proxy); Connection b = connect(proxy)) {
            run(a, "INSERT INTO cg_tx_ids (who) VALUES ('a')");
            long mine = Long.parseLong(text(a, "SELECT MAX(id) FROM cg_tx_ids WHERE who = 'a'"));
            run(b, "INSERT INTO cg_tx_ids (who) VALUES ('b')");
            run(b, "INSERT INTO cg_tx_ids (who) VALUES ('b')");
            assertThat(Long.parseLong(text(a, "SELECT LAST_INSERT_ID()"))).isEqualTo(mine);
            assertThat(Long.parseLong(text(b, "SELECT LAST_INSERT_ID()"))).isEqualTo(mine + 2);
        }
    }

    @Test
    void aPinKeepsTheConnectionUntilItsStateIsGoneAndIsCountedAndShown() throws Exception {
        try (TestProxy proxy = proxy("mode: transaction\nsize: 2");
             Connection a = connect(proxy); Connection b = connect(proxy)) {
            text(a, "SELECT 1");
            await("between transactions a holds nothing").atMost(Duration.ofSeconds(5)).until(() -> lent(proxy) == 0);
            List<String[]> cases = new ArrayList<>();
            cases.add(new String[]{"temp_table", "CREATE TEMPORARY TABLE cg_tx_tmp (n INT)", "DROP TEMPORARY TABLE cg_tx_tmp"});
            cases.add(new String[]{"lock_tables", "LOCK TABLES cg_tx_rows READ", "UNLOCK TABLES"});
            cases.add(new String[]{"get_lock", "SELECT GET_LOCK('cg_tx_lock', 1)", "SELECT RELEASE_ALL_LOCKS()"});
            cases.add(new String[]{"sql_prepare", "PREPARE cg_tx_s FROM 'SELECT 1'", "DEALLOCATE PREPARE cg_tx_s"});
            cases.add(new String[]{"found_rows", "SELECT SQL_CALC_FOUND_ROWS n FROM cg_tx_rows LIMIT 0", "SELECT FOUND_ROWS()"});
            cases.add(new String[]{"next_transaction", "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", "COMMIT"});
            for (String[] pin : cases) {
                run(a, pin[1]);
                assertThat(lent(proxy)).as(pin[0] + " pins").isEqualTo(1);
                if (!pin[0].equals("found_rows") && !pin[0].equals("next_transaction")) { // the next statement ends those
                    text(a, "SELECT 1");
                    assertThat(lent(proxy)).as(pin[0] + " still pins").isEqualTo(1);
                }
                JsonNode session = session(proxy, a);
                assertThat(session.get("pinReason").asText()).isEqualTo(pin[0]);
                run(a, pin[2]);
                await(pin[0] + " ended").atMost(Duration.ofSeconds(5)).until(() -> lent(proxy) == 0);
                assertThat(proxy.metrics()).contains("connguard_client_pins_total{").contains("reason=\"" + pin[0] + "\"");
            }
            run(a, "SET @cg_tx_secret = 42");
            assertThat(session(proxy, a).get("pinReason").asText()).isEqualTo("user_variable");
            assertThat(text(a, "SELECT @cg_tx_secret")).isEqualTo("42");
            assertThat(text(b, "SELECT @cg_tx_secret")).as("b never sees a's variable").isNull();
            assertThat(lent(proxy)).isEqualTo(1);
        }
        try (TestProxy proxy = proxy("mode: transaction\nsize: 1"); Connection a = connect(proxy)) {
            run(a, "SET @cg_tx_secret = 42");
            a.close();
            await().atMost(Duration.ofSeconds(10)).until(() -> lent(proxy) == 0);
            try (Connection b = connect(proxy)) {
                assertThat(text(b, "SELECT @cg_tx_secret")).as("the pinned connection was reset").isNull();
            }
        }
    }

    /** The /sessions entry of the proxy's only pinned or most recent session (a has the lower id). */
    private static JsonNode session(TestProxy proxy, Connection a) throws Exception {
        JsonNode sessions = proxy.sessions();
        JsonNode first = null;
        for (JsonNode s : sessions) {
            if (first == null || s.get("id").asLong() < first.get("id").asLong()) {
                first = s;
            }
        }
        return first;
    }
}
