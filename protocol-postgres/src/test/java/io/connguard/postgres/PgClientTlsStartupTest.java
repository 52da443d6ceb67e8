package io.connguard.postgres;

import io.connguard.core.api.ClientIdentity;
import io.connguard.core.api.ClientTlsSession;
import io.connguard.core.api.ListenerInfo.ClientTlsMode;
import io.connguard.core.api.ListenerInfo.UpstreamTlsMode;
import io.connguard.core.api.ProxyError;
import io.connguard.core.testing.LeakGuard;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.Arrays;
import java.util.Map;

import static io.connguard.postgres.PgMessages.concat;
import static io.connguard.postgres.PgMessages.gssEncRequest;
import static io.connguard.postgres.PgMessages.sslRequest;
import static io.connguard.postgres.PgMessages.startup;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * TLS on the client leg at the byte level: what the session answers to SSLRequest, GSSENCRequest and a
 * direct TLS hello under each {@code clientTls} mode, what it hands core to start TLS with, and what it
 * refuses (pipelined plaintext, a second request, direct TLS without ALPN, plaintext under require).
 * Core's handshake is played by the recording context's pending promise.
 */
@ExtendWith(LeakGuard.class)
class PgClientTlsStartupTest {

    /** The first bytes of a TLS 1.2/1.3 ClientHello record. */
    private static final byte[] CLIENT_HELLO = {0x16, 0x03, 0x01, 0x00, (byte) 0xf4, 0x01, 0x00, 0x00, (byte) 0xf0, 0x03};

    private final PgModule module = new PgModule();

    private PgTestContext context(ClientTlsMode mode) {
        return new PgTestContext(module, PgTestContext.listener(UpstreamTlsMode.DISABLE, mode));
    }

    private static ClientTlsSession agreed(String alpn) {
        return new ClientTlsSession("TLSv1.3", "TLS_AES_128_GCM_SHA256", alpn);
    }

    @ParameterizedTest
    @EnumSource(value = ClientTlsMode.class, names = {"ALLOW", "REQUIRE"})
    void sslRequestIsAnsweredSAndTheStartupArrivesOverTls(ClientTlsMode mode) {
        PgTestContext context = context(mode);
        context.client(sslRequest());
        assertThat(context.recording.takeToClient()).containsExactly('S');
        assertThat(context.recording.clientTlsStarts).singleElement().isEqualTo(new byte[0]);
        assertThat(context.session.clientError(new ProxyError(ProxyError.Kind.PROTOCOL_VIOLATION, "x", "")))
                .as("nothing can be sent while the handshake runs").isNull();
        context.recording.clientTlsHandshake.setSuccess(agreed(""));
        byte[] startup = startup("user", "app_user", "database", "orders");
        context.client(Arrays.copyOfRange(startup, 0, 5));
        context.client(Arrays.copyOfRange(startup, 5, startup.length));
        assertThat(context.recording.identities).containsExactly(new ClientIdentity("app_user", "orders", "", false));
        assertThat(context.recording.takeToUpstream()).isEqualTo(startup);
        assertThat(context.recording.violations).isEmpty();
        context.closeAndCheckBuffers();
        assertThat(context.recording.clientTlsRefusals).isEmpty();
    }

    private static byte[] saslInitialResponse(String mechanism) {
        byte[] data = "p=tls-server-end-point,,n=,r=abc".getBytes(java.nio.charset.StandardCharsets.US_ASCII);
        return PgMessages.message('p', PgMessages.cstring(mechanism), PgMessages.int32(data.length), data);
    }

    @ParameterizedTest
    @ValueSource(strings = {"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"})
    void withTlsOnBothLegsAClientChoosingChannelBindingIsToldWhatToChange(String mechanism) {
        PgTestContext context = new PgTestContext(module,
                PgTestContext.listener(UpstreamTlsMode.REQUIRE, ClientTlsMode.REQUIRE));
        context.client(sslRequest());
        context.recording.clientTlsHandshake.setSuccess(agreed(""));
        context.client(startup("user", "scram"));
        context.session.onUpstreamBytes(context.inputAlloc.wrap(new byte[] {'S'}));
        context.recording.takeToUpstream();
        byte[] response = saslInitialResponse(mechanism);
        context.client(response);
        assertThat(context.recording.takeToUpstream()).as("relayed unchanged").isEqualTo(response);
        assertThat(context.recording.logLines.stream().filter(line -> line.startsWith("WARN"))
                .filter(line -> line.contains("channel_binding=disable")).count())
                .isEqualTo(mechanism.endsWith("PLUS") ? 1 : 0);
        context.closeAndCheckBuffers();
    }

    @Test
    void gssEncryptionIsStillRefusedBeforeTls() {
        PgTestContext context = context(ClientTlsMode.REQUIRE);
        context.client(gssEncRequest());
        assertThat(context.recording.takeToClient()).containsExactly('N');
        context.client(sslRequest());
        assertThat(context.recording.takeToClient()).containsExactly('S');
        assertThat(context.recording.clientTlsStarts).hasSize(1);
        context.closeAndCheckBuffers();
    }

    @Test
    void plaintextPipelinedAfterTheSslRequestIsRefusedAsPostgresqlDoes() {
        PgTestContext context = context(ClientTlsMode.ALLOW);
        context.client(concat(sslRequest(), startup("user", "injected")));
        byte[] sent = context.recording.takeToClient();
        assertThat(sent[0]).isEqualTo((byte) 'S');
        Map<Character, String> error = PgErrorParser.fields(Arrays.copyOfRange(sent, 1, sent.length));
        assertThat(error).containsEntry('C', "08P01").containsEntry('S', "FATAL")
                .containsEntry('M', "protocol violation: received unencrypted data after SSL request");
        assertThat(context.recording.clientTlsStarts).as("no handshake").isEmpty();
        assertThat(context.recording.identities).isEmpty();
        context.closeAndCheckBuffers();
    }

    @ParameterizedTest
    @ValueSource(booleans = {true, false})
    void neitherRequestIsAcceptedOverTls(boolean gss) {
        PgTestContext context = context(ClientTlsMode.ALLOW);
        context.client(sslRequest());
        context.recording.clientTlsHandshake.setSuccess(agreed(""));
        context.recording.takeToClient();
        context.client(gss ? gssEncRequest() : sslRequest());
        // As on the server, a request after TLS is read as a StartupMessage of version 1234.5679 / 1234.5680.
        assertThat(context.recording.violations).singleElement().asString()
                .startsWith("unsupported frontend protocol 1234." + (gss ? 5680 : 5679));
        assertThat(PgErrorParser.fields(context.recording.takeToClient())).containsEntry('C', "0A000");
        assertThat(context.recording.clientTlsStarts).hasSize(1);
        context.closeAndCheckBuffers();
    }

    @Test
    void aDirectTlsHelloIsHandedToCoreWholeAndNeedsAlpnPostgresql() {
        PgTestContext context = context(ClientTlsMode.REQUIRE);
        context.client(CLIENT_HELLO);
        assertThat(context.recording.takeToClient()).as("no plaintext answer").isEmpty();
        assertThat(context.recording.clientTlsStarts).singleElement().isEqualTo(CLIENT_HELLO);
        context.recording.clientTlsHandshake.setSuccess(agreed("postgresql"));
        context.client(startup("user", "direct"));
        assertThat(context.recording.identities).extracting(ClientIdentity::user).containsExactly("direct");
        context.closeAndCheckBuffers();
    }

    @Test
    void aDirectTlsClientWithoutAlpnIsRefusedOverTheEstablishedConnection() {
        PgTestContext context = context(ClientTlsMode.ALLOW);
        context.client(CLIENT_HELLO);
        context.recording.clientTlsHandshake.setSuccess(agreed(""));
        assertThat(context.recording.violations).singleElement().asString()
                .startsWith("received direct SSL connection request without ALPN protocol negotiation extension");
        assertThat(PgErrorParser.fields(context.recording.takeToClient())).containsEntry('C', "08P01");
        context.client(startup("user", "late"));
        assertThat(context.recording.identities).isEmpty();
        context.closeAndCheckBuffers();
    }

    @Test
    void aDirectTlsHelloAfterAnEncryptionRequestIsReadAsABadLengthAndClosedSilently() {
        PgTestContext context = context(ClientTlsMode.ALLOW);
        context.client(gssEncRequest());
        assertThat(context.recording.takeToClient()).containsExactly('N');
        context.client(CLIENT_HELLO);
        assertThat(context.recording.violations).containsExactly("invalid length of startup packet");
        assertThat(context.recording.takeToClient()).as("as the server: no reply").isEmpty();
        assertThat(context.recording.clientTlsStarts).isEmpty();
        context.closeAndCheckBuffers();
    }

    @Test
    void aFailedHandshakeLeavesTheSessionToCore() {
        PgTestContext context = context(ClientTlsMode.ALLOW);
        context.client(sslRequest());
        context.recording.clientTlsHandshake.setFailure(new javax.net.ssl.SSLHandshakeException("unknown_ca"));
        context.client(startup("user", "never"));
        assertThat(context.recording.identities).isEmpty();
        assertThat(context.recording.violations).isEmpty();
        context.closeAndCheckBuffers();
    }

    @Test
    void requireRefusesAPlaintextStartupWithSqlState28000() {
        PgTestContext context = context(ClientTlsMode.REQUIRE);
        context.client(startup("user", "plain", "database", "orders"));
        assertThat(context.recording.plaintextRefusals).extracting(ClientIdentity::user).containsExactly("plain");
        assertThat(context.recording.identities).as("never admitted").isEmpty();
        assertThat(PgErrorParser.fields(context.recording.takeToClient())).containsEntry('C', "28000");
        assertThat(context.recording.takeToUpstream()).isEmpty();
        context.closeAndCheckBuffers();
    }

    @Test
    void allowAcceptsPlaintextToo() {
        PgTestContext context = context(ClientTlsMode.ALLOW);
        context.client(startup("user", "plain"));
        assertThat(context.recording.identities).hasSize(1);
        assertThat(context.recording.clientTlsStarts).isEmpty();
        context.closeAndCheckBuffers();
    }

    @Test
    void underDisableAClientThatHangsUpAfterNIsReportedAsRefusedTls() {
        PgTestContext context = context(ClientTlsMode.DISABLE);
        context.client(sslRequest());
        assertThat(context.recording.takeToClient()).containsExactly('N');
        context.closeAndCheckBuffers();
        assertThat(context.recording.clientTlsRefusals).containsExactly("SSLRequest, answered N");
    }

    @Test
    void underDisableAClientThatGoesOnInPlaintextIsNotReported() {
        PgTestContext context = context(ClientTlsMode.DISABLE);
        context.client(sslRequest());
        context.client(startup("user", "prefer"));
        context.closeAndCheckBuffers();
        assertThat(context.recording.clientTlsRefusals).isEmpty();
        assertThat(context.recording.identities).hasSize(1);
    }

    @Test
    void underDisableADirectTlsHelloIsReportedAsRefusedTls() {
        PgTestContext context = context(ClientTlsMode.DISABLE);
        context.client(CLIENT_HELLO);
        assertThat(context.recording.closed).isTrue();
        assertThat(context.recording.clientTlsStarts).isEmpty();
        context.closeAndCheckBuffers();
        assertThat(context.recording.clientTlsRefusals).containsExactly("a direct TLS handshake, sslnegotiation=direct");
    }
}
