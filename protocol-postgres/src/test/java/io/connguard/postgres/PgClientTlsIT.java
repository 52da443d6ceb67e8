package io.connguard.postgres;

import io.connguard.core.testing.LeakGuard;
import io.connguard.core.testing.LogCapture;
import io.connguard.core.testing.TestCertificates;
import io.connguard.core.testing.TestProxy;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.io.TempDir;

import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLHandshakeException;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManager;
import javax.net.ssl.X509TrustManager;
import java.io.DataInputStream;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.file.Path;
import java.security.cert.X509Certificate;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;

import static io.connguard.postgres.PgIt.connect;
import static io.connguard.postgres.PgIt.longValue;
import static io.connguard.postgres.PgIt.stringValue;
import static io.connguard.postgres.PgIt.unique;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

/**
 * TLS on the client leg against the real server, through real clients: pgjdbc with sslmode=require
 * (the TLS session seen on the driver's side), verify-full against a mounted certificate, direct TLS
 * with ALPN, psql, plaintext refused under require, TLS refused and reported under disable, the
 * certificate renewed while a TLS session stays open, cancel and a large result over the TLS leg.
 */
@ExtendWith(LeakGuard.class)
class PgClientTlsIT {

    private static final String HANDSHAKES = "connguard_listener_client_tls_handshakes_total";

    @TempDir
    Path dir;

    private static String config(String clientTls) {
        return config(clientTls, "30s");
    }

    private static String config(String clientTls, String handshakeTimeout) {
        return """
                listeners:
                  - name: pg
                    protocol: postgres
                    listen: 127.0.0.1:0
                    upstream: %s
                    handshakeTimeout: %s
                    clientTls:
                %s
                clients:
                  defaults:
                    maxConnections: 0
                """.formatted(PgIt.db().hostPort(), handshakeTimeout, clientTls.indent(6));
    }

    private static Connection recorded(TestProxy proxy, String application, String... pairs) throws SQLException {
        String[] all = new String[pairs.length + 4];
        all[0] = "sslmode";
        all[1] = "require";
        all[2] = "sslfactory";
        all[3] = RecordingSslFactory.class.getName();
        System.arraycopy(pairs, 0, all, 4, pairs.length);
        return connect(proxy, application, all);
    }

    @Test
    void pgjdbcRequireEncryptsTheLocalLegWithTheSelfSignedCertificate() throws Exception {
        try (TestProxy proxy = TestProxy.start(config("mode: allow"));
             Connection c = recorded(proxy, unique("tlsreq"))) {
            assertThat(longValue(c, "SELECT 1")).isEqualTo(1);
            SSLSocket socket = RecordingSslFactory.last();
            assertThat(socket.getSession().getProtocol()).isIn("TLSv1.3", "TLSv1.2");
            assertThat(socket.getSession().getCipherSuite()).startsWith("TLS_");
            X509Certificate presented = (X509Certificate) socket.getSession().getPeerCertificates()[0];
            assertThat(presented.getSubjectX500Principal().getName()).contains("CN=localhost");
            // The proxy terminates TLS: the upstream leg stays plaintext (no upstreamTls here).
            assertThat(stringValue(c, "SELECT ssl::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()"))
                    .isEqualTo("false");
            assertThat(proxy.scrape().value(HANDSHAKES, "listener", "pg", "outcome", "success")).isGreaterThanOrEqualTo(1);
        }
    }

    @Test
    void verifyFullChecksTheMountedCertificate() throws Exception {
        TestCertificates ca = TestCertificates.authority("connguard client-leg CA");
        TestCertificates.Issued issued = ca.issue(dir, "proxy", true);
        Path caFile = ca.writeCa(dir.resolve("ca.crt"));
        Path otherCa = TestCertificates.authority("someone else").writeCa(dir.resolve("other-ca.crt"));
        try (TestProxy proxy = TestProxy.start(config("mode: require\ncertFile: " + issued.certFile()
                + "\nkeyFile: " + issued.keyFile()))) {
            try (Connection c = connect(proxy, unique("verify"), "sslmode", "verify-full", "sslrootcert",
                    caFile.toString())) {
                assertThat(longValue(c, "SELECT 1")).isEqualTo(1);
            }
            assertThatThrownBy(() -> connect(proxy, unique("verifywrong"), "sslmode", "verify-full", "sslrootcert",
                    otherCa.toString()).close())
                    .isInstanceOf(SQLException.class)
                    .hasStackTraceContaining("PKIX path");
            await().atMost(Duration.ofSeconds(10)).untilAsserted(() ->
                    assertThat(proxy.scrape().value(HANDSHAKES, "listener", "pg", "outcome", "failure")).isEqualTo(1));
            assertThat(proxy.scrape().value(HANDSHAKES, "listener", "pg", "outcome", "success")).isEqualTo(1);
        }
    }

    @Test
    void pgjdbcDirectTlsNegotiatesAlpnPostgresql() throws Exception {
        try (TestProxy proxy = TestProxy.start(config("mode: require"));
             Connection c = recorded(proxy, unique("direct"), "sslNegotiation", "direct")) {
            assertThat(longValue(c, "SELECT 1")).isEqualTo(1);
            assertThat(RecordingSslFactory.last().getApplicationProtocol()).isEqualTo("postgresql");
        }
    }

    /** Opens a direct TLS connection offering {@code alpn} (none when null), trusting any certificate. */
    private static SSLSocket directTls(TestProxy proxy, String alpn) throws Exception {
        SSLContext context = SSLContext.getInstance("TLS");
        context.init(null, new TrustManager[] {new X509TrustManager() {
            @Override
            public void checkClientTrusted(X509Certificate[] chain, String authType) {
            }

            @Override
            public void checkServerTrusted(X509Certificate[] chain, String authType) {
            }

            @Override
            public X509Certificate[] getAcceptedIssuers() {
                return new X509Certificate[0];
            }
        }}, null);
        Socket plain = new Socket();
        plain.connect(new InetSocketAddress("127.0.0.1", proxy.port("pg")), 5000);
        plain.setSoTimeout(10_000);
        SSLSocket socket = (SSLSocket) context.getSocketFactory().createSocket(plain, "localhost", proxy.port("pg"), true);
        SSLParameters parameters = socket.getSSLParameters();
        if (alpn != null) {
            parameters.setApplicationProtocols(new String[] {alpn});
        }
        socket.setSSLParameters(parameters);
        return socket;
    }

    @Test
    void directTlsSpokenByHandWithAlpnPostgresqlLogsIn() throws Exception {
        try (TestProxy proxy = TestProxy.start(config("mode: allow")); SSLSocket socket = directTls(proxy, "postgresql")) {
            socket.startHandshake();
            assertThat(socket.getApplicationProtocol()).isEqualTo("postgresql");
            socket.getOutputStream().write(PgMessages.startup("user", PgIt.db().user(), "database",
                    PgIt.db().database(), "application_name", unique("byhand")));
            socket.getOutputStream().flush();
            DataInputStream in = new DataInputStream(socket.getInputStream());
            assertThat((char) in.readByte()).as("AuthenticationOk (trust)").isEqualTo('R');
            assertThat(in.readInt()).isEqualTo(8);
            assertThat(in.readInt()).isZero();
        }
    }

    @Test
    void directTlsWithoutAlpnGetsPostgresqlsFatalAndAnotherAlpnFailsTheHandshake() throws Exception {
        try (TestProxy proxy = TestProxy.start(config("mode: allow"))) {
            try (SSLSocket socket = directTls(proxy, null)) {
                socket.startHandshake();
                assertAlpnFatal(socket);
            }
            // The JDK's provider ends the handshake with no_application_protocol; BoringSSL completes it
            // without ALPN, and the same FATAL follows. Either way the client is refused.
            try (SSLSocket socket = directTls(proxy, "http/1.1")) {
                try {
                    socket.startHandshake();
                } catch (SSLHandshakeException e) {
                    assertThat(e).hasMessageContaining("no_application_protocol");
                    return;
                }
                assertThat(socket.getApplicationProtocol()).isEmpty();
                assertAlpnFatal(socket);
            }
        }
    }

    private static void assertAlpnFatal(SSLSocket socket) throws IOException {
        DataInputStream in = new DataInputStream(socket.getInputStream());
        assertThat((char) in.readByte()).isEqualTo('E');
        byte[] body = new byte[in.readInt() - 4];
        in.readFully(body);
        assertThat(PgErrorParser.fields(PgMessages.concat(new byte[] {'E'}, PgMessages.int32(body.length + 4), body)))
                .containsEntry('C', "08P01")
                .hasEntrySatisfying('M', m -> assertThat(m).contains("without ALPN protocol negotiation"));
    }

    @Test
    void aClientThatDoesNotTrustTheCertificateIsCountedAsAFailedHandshake() throws Exception {
        try (TestProxy proxy = TestProxy.start(config("mode: require"))) {
            assertThatThrownBy(() -> connect(proxy, unique("notrust"), "sslmode", "verify-ca", "sslrootcert",
                    PgIt.tlsDir().resolve("ca.crt").toString()).close()).isInstanceOf(SQLException.class);
            await().atMost(Duration.ofSeconds(10)).untilAsserted(() ->
                    assertThat(proxy.scrape().value(HANDSHAKES, "listener", "pg", "outcome", "failure")).isEqualTo(1));
        }
    }

    @Test
    void psqlWithSslmodeRequireShowsTheTlsSession() throws Exception {
        try (TestProxy proxy = TestProxy.start(config("mode: require"))) {
            Map<String, String> env = new HashMap<>(PgTool.env(proxy, unique("psqltls")));
            env.put("PGSSLMODE", "require");
            PgTool.Result result = PgTool.run(env, 60, "psql", "-X", "-At", "-c", "\\conninfo", "-c", "SELECT 42");
            assertThat(result.exitCode()).as(result.toString()).isZero();
            assertThat(result.out()).contains("SSL connection (protocol: TLSv1.").contains("42");
        }
    }

    @Test
    void psqlWithSslnegotiationDirectOpensWithTls() throws Exception {
        Map<String, String> direct = new HashMap<>(PgTool.libpq(17));
        direct.put("PGSSLMODE", "require");
        direct.put("PGSSLNEGOTIATION", "direct");
        try (TestProxy proxy = TestProxy.start(config("mode: require"))) {
            Map<String, String> env = new HashMap<>(PgTool.env(proxy, unique("psqldirect")));
            env.putAll(direct);
            PgTool.Result result = PgTool.run(env, 60, "psql", "-X", "-At", "-c", "\\conninfo", "-c", "SELECT 42");
            assertThat(result.exitCode()).as(result.toString()).isZero();
            assertThat(result.out()).contains("SSL connection (protocol: TLSv1.").contains("42");
        }
        // The same client under disable: connguard sees a TLS ClientHello where a start-up packet belongs, so
        // libpq really opened with TLS rather than with an SSLRequest.
        try (TestProxy proxy = TestProxy.start(config("mode: disable"));
             LogCapture log = new LogCapture("io.connguard.session")) {
            Map<String, String> env = new HashMap<>(PgTool.env(proxy, unique("psqldirectoff")));
            env.putAll(direct);
            PgTool.Result result = PgTool.run(env, 60, "psql", "-X", "-At", "-c", "SELECT 1");
            assertThat(result.exitCode()).as(result.toString()).isNotZero();
            await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> assertThat(
                    proxy.scrape().value("connguard_listener_client_tls_refused_total", "listener", "pg")).isEqualTo(1));
            assertThat(log.lines("WARN", "does not offer TLS to clients (clientTls.mode: disable)")).singleElement()
                    .satisfies(line -> assertThat(line.message()).contains("sslnegotiation=direct"));
        }
    }

    @Test
    void plaintextClientsUnderRequireGetAClearErrorLoggedOnce() throws Exception {
        try (TestProxy proxy = TestProxy.start(config("mode: require"));
             LogCapture log = new LogCapture("io.connguard.session")) {
            String application = unique("plain");
            for (int attempt = 0; attempt < 2; attempt++) {
                assertThatThrownBy(() -> connect(proxy, application, "sslmode", "disable").close())
                        .isInstanceOf(SQLException.class)
                        .satisfies(e -> assertThat(((SQLException) e).getSQLState()).isEqualTo("28000"))
                        .hasMessageContaining("clientTls.mode: require");
            }
            Map<String, String> env = new HashMap<>(PgTool.env(proxy, application));
            env.put("PGSSLMODE", "disable");
            PgTool.Result psql = PgTool.run(env, 60, "psql", "-X", "-c", "SELECT 1");
            assertThat(psql.exitCode()).isNotZero();
            assertThat(psql.err()).contains("FATAL:  connection without TLS refused").contains("clientTls.mode: require");
            assertThat(proxy.scrape().value("connguard_listener_client_plaintext_refused_total", "listener", "pg"))
                    .isEqualTo(3);
            assertThat(log.lines("WARN", "requires it (clientTls.mode: require)"))
                    .as("once per client key (pgjdbc and psql share user, database and application)").hasSize(1);
        }
    }

    @Test
    void underDisableATlsRequiringClientIsCountedAndLoggedOnce() throws Exception {
        try (TestProxy proxy = TestProxy.start(config("mode: disable"));
             LogCapture log = new LogCapture("io.connguard.session")) {
            for (int attempt = 0; attempt < 2; attempt++) {
                assertThatThrownBy(() -> connect(proxy, unique("wantstls"), "sslmode", "require").close())
                        .isInstanceOf(SQLException.class).hasMessageContaining("does not support SSL");
            }
            await().atMost(Duration.ofSeconds(10)).untilAsserted(() -> assertThat(
                    proxy.scrape().value("connguard_listener_client_tls_refused_total", "listener", "pg")).isEqualTo(2));
            assertThat(log.lines("WARN", "does not offer TLS to clients (clientTls.mode: disable)")).singleElement()
                    .satisfies(line -> assertThat(line.message()).contains("at 127.0.0.1").contains("SSLRequest"));
            try (Connection c = connect(proxy, unique("prefer"), "sslmode", "prefer")) {
                assertThat(longValue(c, "SELECT 1")).as("prefer goes on in plaintext, not counted").isEqualTo(1);
            }
            assertThat(proxy.scrape().value("connguard_listener_client_tls_refused_total", "listener", "pg")).isEqualTo(2);
        }
    }

    @Test
    void aRenewedCertificateIsUsedForNewHandshakesWhileOpenTlsSessionsStay() throws Exception {
        TestCertificates ca = TestCertificates.authority("connguard client-leg CA");
        TestCertificates.Issued first = ca.issue(dir, "tls", false);
        try (TestProxy proxy = TestProxy.start(config("mode: require\ncertFile: " + first.certFile()
                + "\nkeyFile: " + first.keyFile()));
             Connection open = recorded(proxy, unique("renew"))) {
            SSLSocket openSocket = RecordingSslFactory.last();
            assertThat(openSocket.getSession().getPeerCertificates()[0]).isEqualTo(first.certificate());

            TestCertificates.Issued renewed = ca.issue(dir, "tls", true);
            await().atMost(Duration.ofSeconds(20)).pollInterval(Duration.ofMillis(500)).untilAsserted(() -> {
                try (Connection fresh = recorded(proxy, unique("renewed"))) {
                    assertThat(RecordingSslFactory.last().getSession().getPeerCertificates()[0])
                            .isEqualTo(renewed.certificate());
                }
            });
            assertThat(longValue(open, "SELECT 7")).as("the open session keeps working").isEqualTo(7);
            assertThat(openSocket.getSession().getPeerCertificates()[0]).isEqualTo(first.certificate());
        }
    }

    @Test
    void withTlsOnBothLegsScramNeedsChannelBindingOffAndConnguardSaysSo() throws Exception {
        PgIt.requireRole("cg_scram");
        String yaml = """
                listeners:
                  - name: pg
                    protocol: postgres
                    listen: 127.0.0.1:0
                    upstream: %s
                    upstreamTls: { mode: require }
                    clientTls: { mode: allow }
                clients:
                  defaults:
                    maxConnections: 0
                """.formatted(PgIt.db().hostPort());
        try (TestProxy proxy = TestProxy.start(yaml); LogCapture log = new LogCapture("io.connguard.session")) {
            Map<String, String> env = new HashMap<>(PgTool.env(proxy, unique("binding")));
            env.put("PGUSER", "cg_scram");
            env.put("PGPASSWORD", "cg_scram_pw");
            env.put("PGSSLMODE", "require");
            env.put("PGCHANNELBINDING", "prefer");
            PgTool.Result prefer = PgTool.run(env, 60, "psql", "-X", "-At", "-c", "SELECT 1");
            assertThat(prefer.exitCode()).isNotZero();
            assertThat(prefer.err()).contains("channel binding");
            assertThat(log.lines("WARN", "channel_binding=disable")).hasSize(1);
            env.put("PGCHANNELBINDING", "disable");
            PgTool.Result disable = PgTool.run(env, 60, "psql", "-X", "-At", "-c", "SELECT current_user");
            assertThat(disable.exitCode()).as(disable.toString()).isZero();
            assertThat(disable.out()).contains("cg_scram");
            java.util.Properties props = PgIt.props(unique("bindingjdbc"), "sslmode", "require", "channelBinding",
                    "disable");
            props.setProperty("user", "cg_scram");
            props.setProperty("password", "cg_scram_pw");
            try (Connection c = java.sql.DriverManager.getConnection(PgIt.jdbcUrl(proxy), props)) {
                assertThat(stringValue(c, "SELECT current_user")).isEqualTo("cg_scram");
            }
        }
    }

    @Test
    void cancelAndALargeResultWorkOverTheTlsLeg() throws Exception {
        try (TestProxy proxy = TestProxy.start(config("mode: require"));
             Connection c = recorded(proxy, unique("tlsbig")); Statement s = c.createStatement()) {
            long rows = 0;
            long bytes = 0;
            try (ResultSet rs = s.executeQuery("SELECT repeat('x', 1000) FROM generate_series(1, 20000)")) {
                while (rs.next()) {
                    rows++;
                    bytes += rs.getString(1).length();
                }
            }
            assertThat(rows).isEqualTo(20000);
            assertThat(bytes).isEqualTo(20_000_000);
            s.setQueryTimeout(1);
            assertThatThrownBy(() -> s.execute("SELECT pg_sleep(60)"))
                    .isInstanceOf(SQLException.class)
                    .satisfies(e -> assertThat(((SQLException) e).getSQLState()).isEqualTo("57014"));
        }
    }

    @Test
    void aClientThatStallsInTheTlsHandshakeIsClosedByHandshakeTimeout() throws Exception {
        try (TestProxy proxy = TestProxy.start(config("mode: allow", "2s")); Socket socket = new Socket()) {
            socket.connect(new InetSocketAddress("127.0.0.1", proxy.port("pg")), 5000);
            socket.setSoTimeout(20_000);
            socket.getOutputStream().write(PgMessages.sslRequest());
            assertThat(socket.getInputStream().read()).isEqualTo('S');
            // No ClientHello follows: handshakeTimeout (2 s) ends the connection with at most a TLS alert
            // record (0x15), never a plaintext ErrorResponse the client could not read.
            byte[] rest = socket.getInputStream().readAllBytes();
            if (rest.length > 0) {
                assertThat(rest[0]).isEqualTo((byte) 0x15);
            }
        }
    }
}
