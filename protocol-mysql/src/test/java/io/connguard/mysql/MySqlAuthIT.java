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
import java.sql.SQLException;
import java.sql.Statement;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** Authentication through the proxy: plugins, TLS requests on the plaintext leg, COM_CHANGE_USER. */
@ExtendWith(LeakGuard.class)
class MySqlAuthIT {

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

    private static String currentUser(Connection c) throws SQLException {
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT CURRENT_USER()")) {
            assertThat(rs.next()).isTrue();
            return rs.getString(1);
        }
    }

    @Test
    void mysqlNativePasswordWithBothDrivers() throws Exception {
        try (Connection c = MySqlIt.connect(MySqlIt.mysqlUrl(proxy, "sslMode=DISABLED"), MySqlIt.NATIVE_USER, MySqlIt.NATIVE_PASSWORD)) {
            assertThat(currentUser(c)).isEqualTo(MySqlIt.NATIVE_USER + "@%");
        }
        try (Connection c = MySqlIt.connect(MySqlIt.mariadbUrl(proxy, ""), MySqlIt.NATIVE_USER, MySqlIt.NATIVE_PASSWORD)) {
            assertThat(currentUser(c)).isEqualTo(MySqlIt.NATIVE_USER + "@%");
        }
    }

    @Test
    void ed25519WithTheMariaDbDriver() throws Exception {
        assertThat(MySqlIt.hasEd25519()).as("the server's ed25519 plugin (run .ci/setup-mariadb.sh)").isTrue();
        try (Connection c = MySqlIt.connect(MySqlIt.mariadbUrl(proxy, ""), MySqlIt.ED25519_USER, MySqlIt.ED25519_PASSWORD)) {
            assertThat(currentUser(c)).isEqualTo(MySqlIt.ED25519_USER + "@%");
        }
        assertThatThrownBy(() -> MySqlIt.connect(MySqlIt.mariadbUrl(proxy, ""), MySqlIt.ED25519_USER, "wrong").close())
                .isInstanceOf(SQLException.class)
                .satisfies(e -> assertThat(((SQLException) e).getErrorCode()).isEqualTo(1045));
    }

    @Test
    void sslModePreferredContinuesInPlaintext() throws Exception {
        try (Connection c = MySqlIt.connect(MySqlIt.mysqlUrl(proxy, "sslMode=PREFERRED"), MySqlIt.NATIVE_USER, MySqlIt.NATIVE_PASSWORD)) {
            assertThat(currentUser(c)).startsWith(MySqlIt.NATIVE_USER);
        }
    }

    @Test
    void sslModeRequiredFailsWithAClearError() {
        assertThatThrownBy(() -> MySqlIt.connect(MySqlIt.mysqlUrl(proxy, "sslMode=REQUIRED"), MySqlIt.NATIVE_USER,
                MySqlIt.NATIVE_PASSWORD).close())
                .isInstanceOf(SQLException.class)
                .hasMessageContaining("SSL");
        assertThatThrownBy(() -> MySqlIt.connect(MySqlIt.mariadbUrl(proxy, "sslMode=trust"), MySqlIt.NATIVE_USER,
                MySqlIt.NATIVE_PASSWORD).close())
                .isInstanceOf(SQLException.class)
                .hasMessageContainingAll("ssl", "not enabled");
    }

    @Test
    void changeUserReAuthenticatesAndMovesTheSessionToTheNewClient() throws Exception {
        try (Connection c = MySqlIt.connect(MySqlIt.mysqlUrl(proxy, "sslMode=DISABLED&connectionAttributes=program_name:cg-my-change"),
                MySqlIt.NATIVE_USER, MySqlIt.NATIVE_PASSWORD)) {
            assertThat(currentUser(c)).startsWith(MySqlIt.NATIVE_USER);
            c.unwrap(com.mysql.cj.jdbc.JdbcConnection.class).changeUser(MySqlIt.OTHER_USER, MySqlIt.OTHER_PASSWORD);
            assertThat(currentUser(c)).isEqualTo(MySqlIt.OTHER_USER + "@%");
            JsonNode mine = null;
            for (JsonNode session : proxy.sessions()) {
                if ("cg-my-change".equals(session.path("application").asText())) {
                    mine = session;
                }
            }
            assertThat(mine).as("the session in /sessions").isNotNull();
            assertThat(mine.path("user").asText()).isEqualTo(MySqlIt.OTHER_USER);
            assertThatThrownBy(() -> c.unwrap(com.mysql.cj.jdbc.JdbcConnection.class).changeUser(MySqlIt.OTHER_USER, "wrong"))
                    .isInstanceOf(SQLException.class)
                    .satisfies(e -> assertThat(((SQLException) e).getErrorCode()).isEqualTo(1045));
        }
    }
}
