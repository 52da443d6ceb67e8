package io.connguard.core.server;

import io.connguard.core.api.ListenerInfo.ClientTlsMode;
import io.connguard.core.config.ListenerConfig.ClientTls;
import io.connguard.core.config.TlsIdentity;
import io.connguard.core.testing.TestCertificates;
import io.netty.buffer.ByteBufAllocator;
import io.netty.handler.ssl.OpenSsl;
import io.netty.handler.ssl.SslHandler;
import io.netty.handler.ssl.SslProvider;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import javax.net.ssl.SSLEngine;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.cert.X509Certificate;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The client leg's TLS context: no context under disable, a self-signed certificate for the loopback
 * names, TLS 1.2 and 1.3 only, and certificate files re-read when they change (a broken pair keeps the
 * certificate in force).
 */
class ClientTlsContextTest {

    @TempDir
    Path dir;

    @Test
    void disableHasNoContext() throws Exception {
        assertThat(ClientTlsContext.build("pg", ClientTls.DISABLED, List.of())).isNull();
    }

    @Test
    void theSelfSignedCertificateNamesTheLoopbackAddresses() throws Exception {
        X509Certificate certificate = SelfSignedCertificate.create().chain().get(0);
        certificate.checkValidity();
        certificate.verify(certificate.getPublicKey());
        assertThat(certificate.getSubjectX500Principal().getName()).contains("CN=localhost");
        assertThat(certificate.getSubjectAlternativeNames().stream().map(name -> String.valueOf(name.get(1))))
                .containsExactlyInAnyOrder("localhost", "127.0.0.1", "0:0:0:0:0:0:0:1");
        assertThat(certificate.getExtendedKeyUsage()).containsExactly("1.3.6.1.5.5.7.3.1");
    }

    @Test
    void boringSslIsUsedOnLinuxAndTheJdkOnRequest() {
        assertThat(OpenSsl.isAvailable()).as("netty-tcnative-boringssl-static for linux-x86_64 must load: %s",
                OpenSsl.unavailabilityCause()).isTrue();
        assertThat(ClientTlsContext.provider()).isEqualTo(SslProvider.OPENSSL);
        System.setProperty("connguard.tls", "jdk");
        try {
            assertThat(ClientTlsContext.provider()).isEqualTo(SslProvider.JDK);
        } finally {
            System.clearProperty("connguard.tls");
        }
    }

    @Test
    void onlyTls12And13AreEnabled() throws Exception {
        ClientTlsContext tls = ClientTlsContext.build("pg", new ClientTls(ClientTlsMode.ALLOW, null, null),
                List.of("postgresql"));
        SslHandler handler = tls.newHandler(ByteBufAllocator.DEFAULT);
        SSLEngine engine = handler.engine();
        assertThat(engine.getUseClientMode()).isFalse();
        assertThat(engine.getEnabledProtocols()).contains("TLSv1.2", "TLSv1.3")
                .doesNotContain("SSLv3", "TLSv1", "TLSv1.1");
        assertThat(tls.describe()).startsWith("a self-signed certificate (subject ");
    }

    @Test
    void changedFilesAreUsedForNewHandshakesAndABrokenPairKeepsTheOldCertificate() throws Exception {
        TestCertificates ca = TestCertificates.authority("connguard test");
        TestCertificates.Issued first = ca.issue(dir, "tls", false);
        ClientTls config = new ClientTls(ClientTlsMode.REQUIRE, first.certFile(), first.keyFile());
        ClientTlsContext tls = ClientTlsContext.build("pg", config, List.of());
        assertThat(tls.describe()).contains("CN=tls").contains("certFile " + first.certFile());
        assertThat(tls.reloadIfChanged()).as("unchanged files").isFalse();

        // A half-updated Secret: the new certificate beside the old key.
        Path oldKey = Files.copy(first.keyFile(), dir.resolve("old.key"));
        TestCertificates.Issued second = ca.issue(dir, "tls", true);
        Files.copy(oldKey, second.keyFile(), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        String before = tls.describe();
        assertThat(tls.reloadIfChanged()).isFalse();
        assertThat(tls.describe()).isEqualTo(before);

        TestCertificates.Issued third = ca.issue(dir, "tls", true);
        assertThat(tls.reloadIfChanged()).isTrue();
        assertThat(tls.describe()).isNotEqualTo(before);
        assertThat(TlsIdentity.read(third.certFile(), third.keyFile()).chain().get(0)).isEqualTo(third.certificate());
        assertThat(tls.reloadIfChanged()).as("read once per change").isFalse();
    }
}
