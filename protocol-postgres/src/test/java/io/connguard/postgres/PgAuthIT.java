package io.connguard.postgres;

import io.connguard.core.testing.LeakGuard;
import io.connguard.core.testing.TestProxy;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;
import java.util.Properties;

import static io.connguard.postgres.PgIt.jdbcUrl;
import static io.connguard.postgres.PgIt.longValue;
import static io.connguard.postgres.PgIt.requireRole;
import static io.connguard.postgres.PgIt.stringValue;
import static io.connguard.postgres.PgIt.unique;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * Authentication passes through untouched: SCRAM-SHA-256 (with and without channel-binding negotiation
 * on the plaintext leg) and md5 users log in through the proxy, and a wrong password gets the server's
 * own 28P01. The users and their pg_hba.conf lines come from .ci/setup-postgres.sh.
 */
@ExtendWith(LeakGuard.class)
class PgAuthIT {

    private static TestProxy proxy;

    @BeforeAll
    static void start() throws SQLException {
        requireRole("cg_scram");
        requireRole("cg_md5");
        proxy = PgIt.proxy();
    }

    @AfterAll
    static void stop() {
        if (proxy != null) {
            proxy.close();
        }
    }

    private static Connection login(String user, String password, String... pairs) throws SQLException {
        Properties props = new Properties();
        props.setProperty("user", user);
        props.setProperty("password", password);
        props.setProperty("ApplicationName", unique("auth"));
        props.setProperty("assumeMinServerVersion", "9.0");
        for (int i = 0; i < pairs.length; i += 2) {
            props.setProperty(pairs[i], pairs[i + 1]);
        }
        return DriverManager.getConnection(jdbcUrl(proxy), props);
    }

    @ParameterizedTest
    @CsvSource({"cg_scram, cg_scram_pw, disable", "cg_scram, cg_scram_pw, prefer", "cg_md5, cg_md5_pw, prefer"})
    void passwordUsersLogInThroughTheProxy(String user, String password, String channelBinding) throws SQLException {
        try (Connection c = login(user, password, "channelBinding", channelBinding)) {
            assertThat(stringValue(c, "SELECT current_user")).isEqualTo(user);
            assertThat(longValue(c, "SELECT count(*) FROM pg_stat_activity WHERE pid = pg_backend_pid()"
                    + " AND client_addr = '127.0.0.1'")).isEqualTo(1);
        }
    }

    @Test
    void theMethodsReallyAreScramAndMd5() throws SQLException {
        try (Connection d = PgIt.direct()) {
            assertThat(stringValue(d, "SELECT left(rolpassword, 14) FROM pg_authid WHERE rolname = 'cg_scram'"))
                    .isEqualTo("SCRAM-SHA-256$");
            assertThat(stringValue(d, "SELECT left(rolpassword, 3) FROM pg_authid WHERE rolname = 'cg_md5'"))
                    .isEqualTo("md5");
            assertThat(stringValue(d, "SELECT auth_method FROM pg_hba_file_rules WHERE 'cg_scram' = ANY(user_name)"
                    + " ORDER BY line_number LIMIT 1")).isEqualTo("scram-sha-256");
        }
    }

    @ParameterizedTest
    @CsvSource({"cg_scram", "cg_md5"})
    void aWrongPasswordGetsTheServersOwnError(String user) {
        assertThatThrownBy(() -> login(user, "not the password").close())
                .isInstanceOf(SQLException.class)
                .satisfies(e -> assertThat(((SQLException) e).getSQLState()).isEqualTo("28P01"))
                .hasMessageContaining("password authentication failed for user \"" + user + "\"");
    }

    @Test
    void channelBindingRequiredCannotBeMetOnThePlaintextLeg() {
        // The proxy refuses TLS on the client leg, so the server cannot offer SCRAM-SHA-256-PLUS there.
        assertThatThrownBy(() -> login("cg_scram", "cg_scram_pw", "channelBinding", "require").close())
                .isInstanceOf(SQLException.class);
    }
}
