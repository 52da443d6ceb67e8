package io.connguard.postgres;

import com.fasterxml.jackson.databind.JsonNode;

import io.connguard.core.testing.LeakGuard;
import io.connguard.core.testing.LogCapture;
import io.connguard.core.testing.TestProxy;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.postgresql.PGConnection;
import org.postgresql.PGNotification;
import org.postgresql.largeobject.LargeObject;
import org.postgresql.largeobject.LargeObjectManager;

import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.Arrays;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static io.connguard.postgres.PgIt.connect;
import static io.connguard.postgres.PgIt.direct;
import static io.connguard.postgres.PgIt.execute;
import static io.connguard.postgres.PgIt.longValue;
import static io.connguard.postgres.PgIt.stringValue;
import static io.connguard.postgres.PgIt.unique;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

/** pgjdbc through the proxy, as an application uses it. */
@ExtendWith(LeakGuard.class)
class PgJdbcIT {

    private static TestProxy proxy;

    @BeforeAll
    static void start() {
        proxy = PgIt.proxy();
    }

    @AfterAll
    static void stop() {
        proxy.close();
    }

    @ParameterizedTest
    @ValueSource(strings = {"simple", "extended", "extendedForPrepared", "extendedCacheEverything"})
    void queriesInEveryQueryModeReturnTheServersRows(String mode) throws SQLException {
        try (Connection c = connect(proxy, unique("mode"), "preferQueryMode", mode)) {
            try (PreparedStatement ps = c.prepareStatement("SELECT g, md5(g::text) FROM generate_series(1, ?) g")) {
                ps.setInt(1, 1000);
                try (ResultSet rs = ps.executeQuery()) {
                    int rows = 0;
                    while (rs.next()) {
                        rows++;
                        assertThat(rs.getString(2)).hasSize(32);
                    }
                    assertThat(rows).isEqualTo(1000);
                }
            }
            assertThat(stringValue(c, "SELECT 'it''s ' || current_database()")).isEqualTo("it's " + PgIt.db().database());
        }
    }

    @Test
    void anApplicationNameSetAfterStartUpReKeysTheSession() throws SQLException {
        String application = unique("late_name");
        // Without assumeMinServerVersion pgjdbc names the application with SET after the start-up.
        try (Connection c = connect(proxy, application, "assumeMinServerVersion", "8.4")) {
            assertThat(stringValue(c, "SHOW application_name")).isEqualTo(application);
            await().atMost(10, TimeUnit.SECONDS).untilAsserted(() -> {
                assertThat(proxy.sessions().findValues("application")).extracting(JsonNode::asText)
                        .contains(application);
                assertThat(proxy.scrape().value("connguard_client_connections", "application", application,
                        "state", "idle")).isEqualTo(1);
            });
            assertThat(proxy.clients().findValues("application")).extracting(JsonNode::asText)
                    .as("nothing left under the empty name").doesNotContain("");
        }
    }

    @Test
    void serverPreparedStatementsAndBatchesCommit() throws SQLException {
        String table = unique("batch");
        try (Connection c = connect(proxy, unique("prepared"), "prepareThreshold", "1")) {
            execute(c, "CREATE TABLE " + table + " (id int PRIMARY KEY, name text)");
            try {
                c.setAutoCommit(false);
                try (PreparedStatement insert = c.prepareStatement("INSERT INTO " + table + " VALUES (?, ?)")) {
                    for (int i = 0; i < 500; i++) {
                        insert.setInt(1, i);
                        insert.setString(2, "name " + i);
                        insert.addBatch();
                    }
                    assertThat(insert.executeBatch()).hasSize(500).containsOnly(1);
                }
                c.commit();
                c.setAutoCommit(true);
                try (PreparedStatement select = c.prepareStatement("SELECT name FROM " + table + " WHERE id = ?")) {
                    for (int i = 0; i < 20; i++) {
                        select.setInt(1, i * 7);
                        try (ResultSet rs = select.executeQuery()) {
                            assertThat(rs.next()).isTrue();
                            assertThat(rs.getString(1)).isEqualTo("name " + i * 7);
                        }
                    }
                    assertThat(select.unwrap(org.postgresql.PGStatement.class).isUseServerPrepare()).isTrue();
                }
                try (Connection d = direct()) {
                    assertThat(longValue(d, "SELECT count(*) FROM " + table)).isEqualTo(500);
                }
            } finally {
                c.setAutoCommit(true);
                execute(c, "DROP TABLE " + table);
            }
        }
    }

    @Test
    void listenAndNotifyReachTheListener() throws Exception {
        String channel = unique("channel");
        try (Connection listener = connect(proxy, unique("listen"));
             Connection notifier = connect(proxy, unique("notify"))) {
            execute(listener, "LISTEN " + channel);
            execute(notifier, "NOTIFY " + channel + ", 'first'");
            execute(notifier, "SELECT pg_notify('" + channel + "', 'second')");
            PGNotification[] received = listener.unwrap(PGConnection.class).getNotifications(10_000);
            if (received.length < 2) {
                PGNotification[] more = listener.unwrap(PGConnection.class).getNotifications(10_000);
                received = concat(received, more);
            }
            assertThat(Arrays.stream(received).map(PGNotification::getParameter)).containsExactly("first", "second");
            assertThat(received[0].getName()).isEqualTo(channel);
        }
    }

    private static PGNotification[] concat(PGNotification[] a, PGNotification[] b) {
        PGNotification[] out = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }

    @Test
    void statementCancelStopsASleepingQueryAndTheConnectionGoesOn() throws Exception {
        try (Connection c = connect(proxy, unique("cancel"))) {
            Statement sleeping = c.createStatement();
            CompletableFuture<SQLException> outcome = CompletableFuture.supplyAsync(() -> {
                try {
                    sleeping.execute("SELECT pg_sleep(60)");
                    return null;
                } catch (SQLException e) {
                    return e;
                }
            });
            try (Connection d = direct()) {
                await().atMost(10, TimeUnit.SECONDS).until(() ->
                        longValue(d, "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(60)' AND state = 'active'") > 0);
            }
            sleeping.cancel();
            SQLException error = outcome.get(20, TimeUnit.SECONDS);
            assertThat((Object) error).as("the query was cancelled").isNotNull();
            assertThat(error.getSQLState()).isEqualTo("57014");
            assertThat(error.getMessage()).contains("canceling statement due to user request");
            assertThat(longValue(c, "SELECT 42")).isEqualTo(42);
        }
    }

    @Test
    void setQueryTimeoutCancelsThroughTheProxy() throws SQLException {
        try (Connection c = connect(proxy, unique("timeout")); Statement s = c.createStatement()) {
            s.setQueryTimeout(1);
            long start = System.nanoTime();
            assertThatThrownBy(() -> s.execute("SELECT pg_sleep(60)"))
                    .isInstanceOf(SQLException.class)
                    .satisfies(e -> assertThat(((SQLException) e).getSQLState()).isEqualTo("57014"));
            assertThat(TimeUnit.NANOSECONDS.toSeconds(System.nanoTime() - start)).isLessThan(30);
            s.setQueryTimeout(0);
            assertThat(longValue(c, "SELECT 7")).isEqualTo(7);
        }
    }

    @Test
    void largeObjectsInATransaction() throws SQLException {
        byte[] data = new byte[3 * 1024 * 1024 + 17];
        new Random(5).nextBytes(data);
        try (Connection c = connect(proxy, unique("lo"))) {
            c.setAutoCommit(false);
            LargeObjectManager lobs = c.unwrap(PGConnection.class).getLargeObjectAPI();
            long oid = lobs.createLO();
            try (LargeObject lo = lobs.open(oid, LargeObjectManager.WRITE)) {
                lo.write(data);
            }
            c.commit();
            try (LargeObject lo = lobs.open(oid, LargeObjectManager.READ)) {
                assertThat(lo.read(data.length + 10)).isEqualTo(data);
            }
            lobs.delete(oid);
            c.commit();
        }
    }

    @Test
    void sslmodePreferContinuesInPlaintextAndRequireFailsClearly() throws SQLException {
        try (Connection c = connect(proxy, unique("prefer"), "sslmode", "prefer")) {
            assertThat(longValue(c, "SELECT 1")).isEqualTo(1);
        }
        assertThatThrownBy(() -> connect(proxy, unique("require"), "sslmode", "require").close())
                .isInstanceOf(SQLException.class)
                .hasMessageContaining("The server does not support SSL");
    }

    @Test
    void directTlsIsClosedWithAClearLogLine() {
        try (LogCapture log = new LogCapture("io.connguard.session")) {
            assertThatThrownBy(() -> connect(proxy, unique("direct"), "sslmode", "require", "sslNegotiation", "direct",
                    "connectTimeout", "10").close())
                    .isInstanceOf(SQLException.class);
            await().atMost(5, TimeUnit.SECONDS).until(() -> log.lines("WARN", "sslnegotiation=direct").stream()
                    .anyMatch(line -> line.message().contains("clientTls.mode: disable")));
        }
    }

    @Test
    void protocol32IsNegotiatedDownByTheServerThroughTheProxy() throws SQLException {
        try (Connection c = connect(proxy, unique("proto32"), "protocolVersion", "3.2")) {
            assertThat(longValue(c, "SELECT 3")).isEqualTo(3);
        }
    }
}
