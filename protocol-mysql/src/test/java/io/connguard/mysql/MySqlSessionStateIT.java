package io.connguard.mysql;

import com.fasterxml.jackson.databind.JsonNode;
import io.connguard.core.testing.TestProxy;
import io.connguard.core.testing.LeakGuard;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.Statement;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/** What an operator sees in {@code /sessions} while an application works through the proxy. */
@ExtendWith(LeakGuard.class)
class MySqlSessionStateIT {

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

    private static JsonNode session(String application) {
        for (JsonNode session : proxy.sessions()) {
            if (application.equals(session.path("application").asText())) {
                return session;
            }
        }
        throw new AssertionError("no session of application " + application + " in " + proxy.sessions());
    }

    private static Connection connect(String application) throws Exception {
        return MySqlIt.connect(MySqlIt.mysqlUrl(proxy, "sslMode=DISABLED&connectionAttributes=program_name:" + application),
                MySqlIt.NATIVE_USER, MySqlIt.NATIVE_PASSWORD);
    }

    @Test
    void autocommitIdleThenAnOpenTransactionThenIdleAgain() throws Exception {
        String app = "cg-my-state-tx";
        try (Connection c = connect(app); Statement s = c.createStatement()) {
            JsonNode fresh = session(app);
            assertThat(fresh.path("state").asText()).isEqualTo("idle");
            assertThat(fresh.path("user").asText()).isEqualTo(MySqlIt.NATIVE_USER);
            assertThat(fresh.path("database").asText()).isEqualTo(MySqlIt.database().database());
            s.execute("START TRANSACTION");
            s.executeQuery("SELECT 1").close();
            JsonNode open = session(app);
            assertThat(open.path("state").asText()).isEqualTo("idle_in_transaction");
            assertThat(open.path("inTransaction").asBoolean()).isTrue();
            assertThat(open.path("lastStatement").asText()).isEqualTo("SELECT ?");
            s.execute("COMMIT");
            assertThat(session(app).path("state").asText()).isEqualTo("idle");
        }
    }

    @Test
    void autocommitOffPlusADmlIsIdleInTransaction() throws Exception {
        String app = "cg-my-state-dml";
        String table = "cg_my_state_" + ProcessHandle.current().pid();
        try (Connection c = connect(app); Statement s = c.createStatement()) {
            s.execute("CREATE TABLE " + table + " (id INT PRIMARY KEY)");
            try {
                s.execute("SET autocommit=0");
                s.executeUpdate("INSERT INTO " + table + " VALUES (1)");
                assertThat(session(app).path("state").asText()).isEqualTo("idle_in_transaction");
                assertThat(session(app).path("lastStatement").asText()).isEqualTo("INSERT INTO " + table + " VALUES (?)");
                s.execute("ROLLBACK");
                s.execute("SET autocommit=1");
                assertThat(session(app).path("state").asText()).isEqualTo("idle");
            } finally {
                s.execute("DROP TABLE " + table);
            }
        }
    }

    @Test
    void aLongQueryIsActiveUntilItsResultArrives() throws Exception {
        String app = "cg-my-state-sleep";
        try (Connection c = connect(app); Statement s = c.createStatement()) {
            CompletableFuture<Integer> sleeping = CompletableFuture.supplyAsync(() -> {
                try (ResultSet rs = s.executeQuery("SELECT SLEEP(3)")) {
                    rs.next();
                    return rs.getInt(1);
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
            });
            await().atMost(Duration.ofSeconds(3)).untilAsserted(() ->
                    assertThat(session(app).path("state").asText()).isEqualTo("active"));
            assertThat(session(app).path("lastStatement").asText()).isEqualTo("SELECT SLEEP(?)");
            assertThat(sleeping.get()).isZero();
            assertThat(session(app).path("state").asText()).isEqualTo("idle");
        }
    }
}
