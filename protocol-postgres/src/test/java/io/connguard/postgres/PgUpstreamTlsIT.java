package io.connguard.postgres;

import io.connguard.core.testing.LeakGuard;
import io.connguard.core.testing.TestProxy;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

import java.io.InputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

import static io.connguard.postgres.PgIt.connect;
import static io.connguard.postgres.PgIt.longValue;
import static io.connguard.postgres.PgIt.requireRole;
import static io.connguard.postgres.PgIt.stringValue;
import static io.connguard.postgres.PgIt.unique;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * The proxy speaks TLS to the server while the application's leg stays plaintext: verify-full with the
 * server's CA works (pg_stat_ssl shows the encrypted leg, and a TLS-only user gets in), a wrong CA or a
 * server without TLS fails with a clear error. The CA files come from .ci/setup-postgres.sh.
 */
@ExtendWith(LeakGuard.class)
class PgUpstreamTlsIT {

    private static Path tls;

    @BeforeAll
    static void files() throws SQLException {
        tls = PgIt.tlsDir();
        requireRole("cg_tls");
    }

    private static String config(String mode, Path ca, String upstream) {
        return """
                listeners:
                  - name: pg
                    protocol: postgres
                    listen: 127.0.0.1:0
                    upstream: %s
                    connectTimeout: 5s
                    upstreamTls:
                      mode: %s
                %s
                clients:
                  defaults:
                    maxConnections: 0
                """.formatted(upstream, mode, ca == null ? "" : "      caFile: " + ca);
    }

    private static String sslOf(Connection c) throws SQLException {
        return stringValue(c, "SELECT ssl::text || ' ' || version FROM pg_stat_ssl WHERE pid = pg_backend_pid()");
    }

    @Test
    void verifyFullWithTheServersCaEncryptsTheUpstreamLeg() throws Exception {
        try (TestProxy proxy = TestProxy.start(config("verify-full", tls.resolve("ca.crt"), PgIt.db().hostPort()));
             Connection c = connect(proxy, unique("tls"), "sslmode", "disable")) {
            assertThat(sslOf(c)).startsWith("true TLSv1.");
            assertThat(longValue(c, "SELECT 1")).isEqualTo(1);
        }
    }

    @Test
    void aTlsOnlyUserGetsInOnlyThroughTheTlsListener() throws Exception {
        try (TestProxy plain = PgIt.proxy()) {
            assertThatThrownBy(() -> DriverManagerHelper.login(plain, "cg_tls").close())
                    .isInstanceOf(SQLException.class)
                    .hasMessageContaining("no encryption");
        }
        try (TestProxy proxy = TestProxy.start(config("verify-ca", tls.resolve("ca.crt"), PgIt.db().hostPort()));
             Connection c = DriverManagerHelper.login(proxy, "cg_tls")) {
            assertThat(stringValue(c, "SELECT current_user")).isEqualTo("cg_tls");
            assertThat(sslOf(c)).startsWith("true");
        }
    }

    @Test
    void scramWorksWhenTheServerOffersChannelBindingOnlyToTheProxysTlsLeg() throws Exception {
        requireRole("cg_scram");
        // Over TLS the server offers SCRAM-SHA-256-PLUS too; the client, on plaintext, picks plain SCRAM.
        try (TestProxy proxy = TestProxy.start(config("verify-full", tls.resolve("ca.crt"), PgIt.db().hostPort()))) {
            for (String binding : new String[] {"prefer", "disable"}) {
                java.util.Properties props = PgIt.props(unique("tlsscram"), "channelBinding", binding);
                props.setProperty("user", "cg_scram");
                props.setProperty("password", "cg_scram_pw");
                try (Connection c = java.sql.DriverManager.getConnection(PgIt.jdbcUrl(proxy), props)) {
                    assertThat(stringValue(c, "SELECT current_user")).isEqualTo("cg_scram");
                    assertThat(sslOf(c)).startsWith("true");
                }
            }
        }
    }

    @Test
    void requireEncryptsWithoutCheckingTheCertificate() throws Exception {
        try (TestProxy proxy = TestProxy.start(config("require", null, PgIt.db().hostPort()));
             Connection c = connect(proxy, unique("require"))) {
            assertThat(sslOf(c)).startsWith("true");
        }
    }

    @Test
    void aWrongCaFailsWithAClearError() {
        try (TestProxy proxy = TestProxy.start(config("verify-full", tls.resolve("wrong-ca.crt"), PgIt.db().hostPort()))) {
            assertThatThrownBy(() -> connect(proxy, unique("wrongca")).close())
                    .isInstanceOf(SQLException.class)
                    .satisfies(e -> assertThat(((SQLException) e).getSQLState()).isEqualTo("08006"))
                    .hasMessageContaining("TLS handshake with the database failed")
                    .hasMessageContaining("wrong-ca.crt");
        }
    }

    @Test
    void aServerWithoutTlsFailsWithAClearError() throws Exception {
        // A stand-in for a server with ssl = off: it reads the SSLRequest and answers 'N'.
        try (ServerSocket server = new ServerSocket(0, 5, InetAddress.getLoopbackAddress())) {
            CompletableFuture<Void> answer = CompletableFuture.runAsync(() -> {
                try (Socket socket = server.accept(); InputStream in = socket.getInputStream()) {
                    in.readNBytes(8);
                    socket.getOutputStream().write('N');
                    socket.getOutputStream().flush();
                    in.read();
                } catch (java.io.IOException ignored) {
                    // the proxy hangs up
                }
            });
            try (TestProxy proxy = TestProxy.start(config("require", null, "127.0.0.1:" + server.getLocalPort()))) {
                assertThatThrownBy(() -> connect(proxy, unique("notls")).close())
                        .isInstanceOf(SQLException.class)
                        .satisfies(e -> assertThat(((SQLException) e).getSQLState()).isEqualTo("08006"))
                        .hasMessageContaining("server does not support TLS");
            }
            answer.get(10, TimeUnit.SECONDS);
        }
    }

    @Test
    void cancelStillReachesTheServerBehindATlsListener() throws Exception {
        try (TestProxy proxy = TestProxy.start(config("verify-full", tls.resolve("ca.crt"), PgIt.db().hostPort()));
             Connection c = connect(proxy, unique("tlscancel")); Statement s = c.createStatement()) {
            s.setQueryTimeout(1);
            assertThatThrownBy(() -> s.execute("SELECT pg_sleep(60)"))
                    .isInstanceOf(SQLException.class)
                    .satisfies(e -> assertThat(((SQLException) e).getSQLState()).isEqualTo("57014"));
        }
    }

    /** Logs in as a trust role other than the default one. */
    private static final class DriverManagerHelper {
        static Connection login(TestProxy proxy, String user) throws SQLException {
            java.util.Properties props = PgIt.props(unique("tlsuser"));
            props.setProperty("user", user);
            props.setProperty("password", "");
            props.setProperty("sslmode", "disable");
            return java.sql.DriverManager.getConnection(PgIt.jdbcUrl(proxy), props);
        }
    }
}
