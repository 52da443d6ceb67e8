package io.connguard.postgres;

import io.connguard.core.testing.LeakGuard;
import org.junit.jupiter.api.extension.ExtendWith;
import io.connguard.core.api.ClientIdentity;
import io.connguard.core.api.ListenerInfo.UpstreamTlsMode;
import io.connguard.core.api.ProxyError;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufUtil;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.Map;

import static io.connguard.postgres.PgMessages.PROTOCOL_3_2;
import static io.connguard.postgres.PgMessages.concat;
import static io.connguard.postgres.PgMessages.gssEncRequest;
import static io.connguard.postgres.PgMessages.int32;
import static io.connguard.postgres.PgMessages.negotiateProtocolVersion;
import static io.connguard.postgres.PgMessages.query;
import static io.connguard.postgres.PgMessages.sslRequest;
import static io.connguard.postgres.PgMessages.startup;
import static org.assertj.core.api.Assertions.assertThat;

/** The start-up phase: encryption requests, the StartupMessage, admission, upstream TLS. */
@ExtendWith(LeakGuard.class)
class PgSessionStartupTest {

    private final PgModule module = new PgModule();

    @Test
    void sslRequestIsRefusedAndTheStartupOnTheSameSocketIdentifiesTheClient() {
        PgTestContext context = new PgTestContext(module);
        context.admitAtOnce = false;
        context.client(sslRequest());
        assertThat(context.recording.takeToClient()).containsExactly('N');
        byte[] startup = startup("user", "app_user", "database", "orders", "application_name", "checkout");
        context.client(startup);
        assertThat(context.recording.identities)
                .containsExactly(new ClientIdentity("app_user", "orders", "checkout", false));
        assertThat(context.recording.takeToUpstream()).as("nothing goes upstream before admission").isEmpty();
        context.session.onUpstreamConnected();
        assertThat(context.recording.takeToUpstream()).isEqualTo(startup);
        assertThat(context.recording.takeToClient()).isEmpty();
        context.closeAndCheckBuffers();
    }

    @Test
    void gssEncryptionThenSslThenPlaintextAsLibpqTriesThem() {
        PgTestContext context = new PgTestContext(module);
        context.client(concat(gssEncRequest(), sslRequest(), startup("user", "u")));
        assertThat(context.recording.takeToClient()).containsExactly('N', 'N');
        assertThat(context.recording.identities).hasSize(1);
        context.closeAndCheckBuffers();
    }

    @ParameterizedTest
    @ValueSource(booleans = {true, false})
    void aSecondSslRequestIsAViolationTheClientIsToldAbout(boolean gss) {
        PgTestContext context = new PgTestContext(module);
        byte[] request = gss ? gssEncRequest() : sslRequest();
        context.client(concat(request, request));
        assertThat(context.recording.violations).hasSize(1);
        byte[] sent = context.recording.takeToClient();
        assertThat(sent[0]).isEqualTo((byte) 'N');
        Map<Character, String> error = PgErrorParser.fields(java.util.Arrays.copyOfRange(sent, 1, sent.length));
        assertThat(error).containsEntry('C', "08P01").containsEntry('S', "FATAL");
        assertThat(context.recording.identities).isEmpty();
        context.closeAndCheckBuffers();
    }

    @Test
    void aDirectTlsHelloIsClosedAndReportedWithNoPlaintextReply() {
        PgTestContext context = new PgTestContext(module);
        context.client(new byte[] {0x16, 0x03, 0x01, 0x00, (byte) 0xf4, 0x01, 0x00});
        assertThat(context.recording.closed).isTrue();
        assertThat(context.recording.violations).isEmpty();
        assertThat(context.recording.takeToClient()).isEmpty();
        assertThat(context.recording.clientTlsRefusals).as("core logs and counts it").hasSize(1);
        assertThat(context.session.clientError(new ProxyError(ProxyError.Kind.PROTOCOL_VIOLATION, "x", ""))).isNull();
        context.closeAndCheckBuffers();
    }

    @Test
    void anOversizedStartupPacketIsAViolationAnsweredWithAnErrorResponse() {
        PgTestContext context = new PgTestContext(module);
        context.client(concat(int32(20_000), int32(3 << 16), new byte[100]));
        assertThat(context.recording.violations).singleElement().asString().contains("invalid length of startup packet");
        assertThat(PgErrorParser.fields(context.recording.takeToClient())).containsEntry('C', "08P01");
        assertThat(context.recording.identities).isEmpty();
        assertThat(context.sessionClosed()).isTrue();
        context.closeAndCheckBuffers();
    }

    @Test
    void protocol32AndNegotiateProtocolVersionPassThroughUnchanged() {
        PgTestContext context = new PgTestContext(module);
        byte[] startup = startup(PROTOCOL_3_2, "user", "u", "_pq_.future", "1");
        context.client(startup);
        assertThat(context.recording.takeToUpstream()).isEqualTo(startup);
        byte[] negotiate = negotiateProtocolVersion(2, "_pq_.future");
        context.server(negotiate);
        assertThat(context.recording.takeToClient()).isEqualTo(negotiate);
        assertThat(context.recording.lostSync).isEmpty();
        context.closeAndCheckBuffers();
    }

    @Test
    void bytesSentWhileQueuedAreKeptAndFollowTheStartupInOrder() {
        PgTestContext context = new PgTestContext(module);
        context.admitAtOnce = false;
        byte[] startup = startup("user", "u");
        byte[] early = query("SELECT 1");
        context.client(concat(startup, early));
        context.client(early);
        assertThat(context.recording.takeToUpstream()).isEmpty();
        context.session.onUpstreamConnected();
        assertThat(context.recording.takeToUpstream()).isEqualTo(concat(startup, early, early));
        context.closeAndCheckBuffers();
    }

    @Test
    void aClientFloodingTheQueueIsAViolation() {
        PgTestContext context = new PgTestContext(module);
        context.admitAtOnce = false;
        context.client(startup("user", "u"));
        context.client(new byte[PgStartupParser.MAX_EARLY_BYTES]);
        assertThat(context.recording.violations).isEmpty();
        context.client(new byte[PgStartupParser.MAX_PACKET_LENGTH]);
        assertThat(context.recording.violations).hasSize(1);
        assertThat(PgErrorParser.fields(context.recording.takeToClient())).containsEntry('C', "08P01");
        context.closeAndCheckBuffers();
    }

    @Test
    void aQueuedClientRejectedByCoreReadsTooManyConnections() {
        PgTestContext context = new PgTestContext(module);
        context.admitAtOnce = false;
        context.client(concat(sslRequest(), startup("user", "u")));
        context.recording.takeToClient();
        ByteBuf error = context.session.clientError(new ProxyError(ProxyError.Kind.TOO_MANY_CONNECTIONS,
                "too many connections for client user=u", "clients.defaults.maxConnections is 20"));
        assertThat(PgErrorParser.fields(ByteBufUtil.getBytes(error))).containsExactly(
                Map.entry('S', "FATAL"), Map.entry('V', "FATAL"), Map.entry('C', "53300"),
                Map.entry('M', "too many connections for client user=u"),
                Map.entry('D', "clients.defaults.maxConnections is 20"));
        error.release();
        context.closeAndCheckBuffers();
    }

    // ---------------------------------------------------------------- upstream TLS

    @ParameterizedTest
    @EnumSource(value = UpstreamTlsMode.class, names = {"REQUIRE", "VERIFY_CA", "VERIFY_FULL"})
    void upstreamTlsAsksTheServerFirstAndSendsTheStartupOnlyAfterTheHandshake(UpstreamTlsMode mode) {
        PgTestContext context = new PgTestContext(module, PgTestContext.listener(mode));
        byte[] startup = startup("user", "u");
        context.client(concat(sslRequest(), startup));
        assertThat(context.recording.takeToClient()).as("the client leg stays plaintext").containsExactly('N');
        assertThat(context.recording.takeToUpstream()).isEqualTo(sslRequest());
        context.server(new byte[] {'S'});
        assertThat(context.recording.tlsStarts).isEqualTo(1);
        assertThat(context.recording.takeToUpstream()).isEqualTo(startup);
        context.server(PgMessages.loginOk(7, PgMessages.key(4, 1)));
        assertThat(context.recording.lastState()).isEqualTo(io.connguard.core.api.SessionState.IDLE);
        context.closeAndCheckBuffers();
    }

    @Test
    void aServerWithoutTlsFailsTheUpstreamWithAClearReason() {
        PgTestContext context = new PgTestContext(module, PgTestContext.listener(UpstreamTlsMode.VERIFY_FULL));
        context.client(startup("user", "u"));
        context.recording.takeToUpstream();
        context.server(new byte[] {'N'});
        assertThat(context.recording.upstreamFailures).containsExactly(
                "server does not support TLS (it answered the SSLRequest with N) but upstreamTls.mode is verify-full");
        assertThat(context.recording.takeToUpstream()).as("the startup never goes out in plaintext").isEmpty();
        assertThat(PgErrorParser.fields(context.recording.takeToClient())).containsEntry('C', "08006");
        context.closeAndCheckBuffers();
    }

    @Test
    void plaintextAfterTheServersYesIsRefused() {
        PgTestContext context = new PgTestContext(module, PgTestContext.listener(UpstreamTlsMode.REQUIRE));
        context.client(startup("user", "u"));
        context.server(new byte[] {'S', 'R', 0, 0, 0, 8});
        assertThat(context.recording.upstreamFailures).singleElement().asString().contains("unencrypted");
        assertThat(context.recording.tlsStarts).isZero();
        context.closeAndCheckBuffers();
    }

    @Test
    void anythingButSOrNIsAnUnexpectedAnswer() {
        PgTestContext context = new PgTestContext(module, PgTestContext.listener(UpstreamTlsMode.REQUIRE));
        context.client(startup("user", "u"));
        context.server(new byte[] {'E'});
        assertThat(context.recording.upstreamFailures).singleElement().asString().contains("0x45");
        context.closeAndCheckBuffers();
    }
}
