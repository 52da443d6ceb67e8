package io.connguard.core.config;

import io.connguard.core.api.ListenerInfo.ClientTlsMode;
import io.connguard.core.config.ListenerConfig.ClientTls;
import io.connguard.core.testing.TestCertificates;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static org.assertj.core.api.Assertions.assertThat;

/** {@code clientTls}: the modes, and the certificate and key files checked once, completely, at load. */
class ClientTlsConfigTest {

    private final ConfigLoader loader = new ConfigLoader(Map.<String, String>of()::get, Set.of("postgres", "mysql"));

    @TempDir
    Path dir;

    private static String yaml(String clientTls) {
        return """
                listeners:
                  - name: pg
                    protocol: postgres
                    listen: 127.0.0.1:6432
                    upstream: db:5432
                    clientTls:
                %s""".formatted(clientTls.indent(6));
    }

    private ClientTls load(String clientTls) throws ConfigException {
        return loader.parse(yaml(clientTls)).listeners().get(0).clientTls();
    }

    private List<String> errors(String clientTls) {
        try {
            loader.parse(yaml(clientTls));
        } catch (ConfigException e) {
            return e.errors().stream().map(ConfigError::toString).toList();
        }
        throw new AssertionError("expected configuration errors for:\n" + clientTls);
    }

    @Test
    void modesParseAndNoFilesMeansASelfSignedCertificate() throws Exception {
        assertThat(load("mode: allow")).isEqualTo(new ClientTls(ClientTlsMode.ALLOW, null, null));
        assertThat(load("mode: REQUIRE")).isEqualTo(new ClientTls(ClientTlsMode.REQUIRE, null, null));
        assertThat(load("mode: disable\ncertFile: \"\"\nkeyFile: \"\"")).isEqualTo(ClientTls.DISABLED);
        assertThat(load("mode: allow").fromFiles()).isFalse();
        assertThat(loader.parse(yaml("mode: require")).listeners().get(0).info().clientTls())
                .isEqualTo(ClientTlsMode.REQUIRE);
    }

    @Test
    void anUnknownModeListsTheModes() {
        assertThat(errors("mode: verify-full")).containsExactly(
                "listeners[0].clientTls.mode (line 7): expected one of disable, allow, require, got 'verify-full'");
    }

    @Test
    void aCertificateAndItsKeyInEitherPemFormLoad() throws Exception {
        TestCertificates ca = TestCertificates.authority("connguard test");
        for (boolean pkcs1 : new boolean[] {true, false}) {
            TestCertificates.Issued issued = ca.issue(dir, "proxy" + pkcs1, pkcs1);
            ClientTls tls = load("mode: require\ncertFile: " + issued.certFile() + "\nkeyFile: " + issued.keyFile());
            assertThat(tls).isEqualTo(new ClientTls(ClientTlsMode.REQUIRE, issued.certFile(), issued.keyFile()));
            assertThat(TlsIdentity.read(issued.certFile(), issued.keyFile()).chain()).containsExactly(issued.certificate());
        }
    }

    @Test
    void certFileAndKeyFileGoTogether() {
        assertThat(errors("mode: allow\ncertFile: /etc/tls/tls.crt")).containsExactly(
                "listeners[0].clientTls.keyFile (line 7): certFile and keyFile go together: give both (PEM files) "
                        + "or neither (a self-signed certificate is made at start)");
        assertThat(errors("mode: allow\nkeyFile: /etc/tls/tls.key")).singleElement().asString()
                .startsWith("listeners[0].clientTls.certFile (line 7): certFile and keyFile go together");
    }

    @Test
    void unreadableFilesAreNamed() {
        assertThat(errors("mode: allow\ncertFile: /nonexistent/tls.crt\nkeyFile: /nonexistent/tls.key"))
                .containsExactly("listeners[0].clientTls.certFile (line 8): cannot read /nonexistent/tls.crt",
                        "listeners[0].clientTls.keyFile (line 9): cannot read /nonexistent/tls.key");
    }

    @Test
    void aKeyOfAnotherCertificateIsRefused() {
        TestCertificates ca = TestCertificates.authority("connguard test");
        TestCertificates.Issued one = ca.issue(dir, "one", false);
        TestCertificates.Issued other = ca.issue(dir, "other", true);
        assertThat(errors("mode: require\ncertFile: " + one.certFile() + "\nkeyFile: " + other.keyFile()))
                .singleElement().asString()
                .startsWith("listeners[0].clientTls.keyFile (line 9): the key in " + other.keyFile()
                        + " does not belong to the certificate in " + one.certFile());
    }

    @Test
    void filesThatAreNotPemAreRefused() throws Exception {
        TestCertificates.Issued issued = TestCertificates.authority("connguard test").issue(dir, "proxy", false);
        Path garbage = Files.writeString(dir.resolve("garbage.pem"), "not a certificate\n");
        assertThat(errors("mode: allow\ncertFile: " + garbage + "\nkeyFile: " + issued.keyFile()))
                .singleElement().asString().startsWith("listeners[0].clientTls.certFile (line 8): ");
        assertThat(errors("mode: allow\ncertFile: " + issued.certFile() + "\nkeyFile: " + issued.certFile()))
                .containsExactly("listeners[0].clientTls.keyFile (line 9): no PEM private key in " + issued.certFile());
    }

    @Test
    void withDisableTheFilesAreNotRead() throws Exception {
        assertThat(load("mode: disable\ncertFile: /nonexistent/tls.crt\nkeyFile: /nonexistent/tls.key"))
                .isEqualTo(ClientTls.DISABLED);
    }
}
