package io.connguard.mysql;

import io.connguard.core.testing.TestProxy;
import io.connguard.core.testing.LeakGuard;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.Statement;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * {@code upstreamTls}: the application speaks plaintext to the proxy, the proxy speaks TLS to the server
 * (SSL request, TLS handshake, sequence ids shifted for the client). Needs the server's TLS that
 * {@code .ci/setup-mariadb.sh} turns on, and its CA for the verifying modes.
 */
@ExtendWith(LeakGuard.class)
class MySqlUpstreamTlsIT {

    @ParameterizedTest
    @ValueSource(strings = {"require", "verify-ca", "verify-full"})
    void theUpstreamSessionIsEncrypted(String mode) throws Exception {
        MySqlIt.database();
        assertThat(MySqlIt.localCaReadable()).as("the server's CA %s (run .ci/setup-mariadb.sh as root)", MySqlIt.LOCAL_CA).isTrue();
        String tls = """
                    upstreamTls:
                      mode: %s
                      caFile: %s
                """.formatted(mode, MySqlIt.LOCAL_CA);
        try (TestProxy proxy = MySqlIt.proxy(tls, "")) {
            try (Connection c = MySqlIt.connect(MySqlIt.mysqlUrl(proxy, "sslMode=DISABLED"), MySqlIt.NATIVE_USER, MySqlIt.NATIVE_PASSWORD);
                 Statement s = c.createStatement();
                 ResultSet rs = s.executeQuery("SHOW STATUS LIKE 'Ssl_cipher'")) {
                assertThat(rs.next()).isTrue();
                assertThat(rs.getString(2)).as("the upstream session's cipher").isNotBlank();
            }
            try (Connection c = MySqlIt.connect(MySqlIt.mariadbUrl(proxy, ""), MySqlIt.NATIVE_USER, MySqlIt.NATIVE_PASSWORD);
                 Statement s = c.createStatement();
                 ResultSet rs = s.executeQuery("SHOW STATUS LIKE 'Ssl_version'")) {
                assertThat(rs.next()).isTrue();
                assertThat(rs.getString(2)).startsWith("TLS");
            }
            try (Connection c = MySqlIt.connect(MySqlIt.mysqlUrl(proxy, "sslMode=DISABLED"), MySqlIt.NATIVE_USER, "wrong")) {
                throw new AssertionError("logged in with a wrong password over upstream TLS");
            } catch (java.sql.SQLException denied) {
                assertThat(denied.getErrorCode()).isEqualTo(1045);
            }
            MySqlIt.assertTrackerInSync(proxy);
        }
    }
}
