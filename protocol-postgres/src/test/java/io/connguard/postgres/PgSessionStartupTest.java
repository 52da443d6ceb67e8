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
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.MethodSource;
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
        context.client(gssEncRequest());
        context.client(sslRequest());
        context.client(startup("user", "u"));
        assertThat(context.recording.takeToClient()).containsExactly('N', 'N');
        assertThat(context.recording.identities).hasSize(1);
        context.closeAndCheckBuffers();
    }

    @ParameterizedTest
    @ValueSource(booleans = {true, false})
    void aSecondEncryptionRequestIsReadAsProtocol1234AsTheServerReadsIt(boolean gss) {
        PgTestContext context = new PgTestContext(module);
        byte[] request = gss ? gssEncRequest() : sslRequest();
        context.client(request);
        context.client(request);
        assertThat(context.recording.violations).hasSize(1);
        byte[] sent = context.recording.takeToClient();
        assertThat(sent[0]).isEqualTo((byte) 'N');
        Map<Character, String> error = PgErrorParser.fields(java.util.Arrays.copyOfRange(sent, 1, sent.length));
        assertThat(error).containsEntry('C', "0A000").containsEntry('S', "FATAL")
                .containsEntry('M', "unsupported frontend protocol 1234." + (gss ? 5680 : 5679)
                        + ": server supports 3.0 to 3.2");
        assertThat(context.recording.identities).isEmpty();
        context.closeAndCheckBuffers();
    }

    @ParameterizedTest
    @ValueSource(booleans = {true, false})
    void bytesSentWithAnEncryptionRequestBeforeItsAnswerAreRefusedAsTheServerRefusesThem(boolean gss) {
        byte[] request = gss ? gssEncRequest() : sslRequest();
        byte[] stream = concat(request, startup("user", "u"));
        // Whatever arrives with the request, before the answer, is unencrypted data the server refuses.
        for (int cut = request.length + 1; cut <= stream.length; cut++) {
            PgTestContext context = new PgTestContext(module);
            context.client(java.util.Arrays.copyOf(stream, cut));
            context.client(java.util.Arrays.copyOfRange(stream, cut, stream.length));
            byte[] sent = context.recording.takeToClient();
            assertThat(sent[0]).as("cut at %d", cut).isEqualTo((byte) 'N');
            Map<Character, String> error = PgErrorParser.fields(java.util.Arrays.copyOfRange(sent, 1, sent.length));
            assertThat(error).as("cut at %d", cut).containsEntry('C', "08P01").containsEntry('M', gss
                    ? "received unencrypted data after GSSAPI encryption request"
                    : "received unencrypted data after SSL request");
            assertThat(context.recording.identities).isEmpty();
            context.closeAndCheckBuffers();
        }
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

    static java.util.List<Arguments> refusedSilently() {
        byte[] terminate = {'X', 0, 0, 0, 4};
        return java.util.List.of(
                Arguments.of(false, terminate),                             // Terminate first: a driver's connect() + end()
                Arguments.of(false, concat(int32(20_000), int32(3 << 16), new byte[100])), // over the server's limit
                Arguments.of(false, int32(4)),
                Arguments.of(false, concat(int32(8), int32(80877102))),    // a CancelRequest without a key
                Arguments.of(false, concat(int32(11), int32(80877102), new byte[3])), // a key shorter than 4 bytes
                Arguments.of(true, terminate));                            // the same after a refused SSLRequest
    }

    @ParameterizedTest
    @MethodSource("refusedSilently")
    void badLengthsCloseWithoutAReplyAsTheServerDoesWhereverTheyAreCut(boolean afterSslRequest, byte[] packet) {
        for (int cut = 0; cut < packet.length; cut++) {
            PgTestContext context = new PgTestContext(module);
            if (afterSslRequest) {
                context.client(sslRequest());
                assertThat(context.recording.takeToClient()).containsExactly('N');
            }
            if (cut > 0) {
                context.client(java.util.Arrays.copyOf(packet, cut));
            }
            if (!context.sessionClosed()) {
                context.client(java.util.Arrays.copyOfRange(packet, cut, packet.length));
            }
            assertThat(context.recording.violations).as("cut at %d", cut)
                    .containsExactly("invalid length of startup packet");
            assertThat(context.recording.takeToClient()).as("cut at %d: no reply", cut).isEmpty();
            assertThat(context.recording.identities).isEmpty();
            assertThat(context.sessionClosed()).isTrue();
            context.closeAndCheckBuffers();
        }
    }

    @Test
    void aStartupPacketTheServerWouldRefuseGetsTheServersErrorBeforeAnyUpstream() {
        for (var entry : Map.of(
                startup("database", "d"), "28000",
                startup(2 << 16, "user", "u"), "",
                startup(4 << 16, "user", "u"), "0A000",
                startup("user", "u", "replication", "maybe"), "22023",
                concat(int32(8), int32(3 << 16)), "08P01").entrySet()) {
            PgTestContext context = new PgTestContext(module);
            context.client(entry.getKey());
            assertThat(context.recording.violations).hasSize(1);
            assertThat(context.recording.identities).as("nothing is admitted").isEmpty();
            byte[] sent = context.recording.takeToClient();
            if (entry.getValue().isEmpty()) {
                assertThat(new String(sent, java.nio.charset.StandardCharsets.UTF_8)).isEqualTo(
                        "EFATAL:  unsupported frontend protocol 2.0: server supports 3.0 to 3.2\n\0");
            } else {
                assertThat(PgErrorParser.fields(sent)).containsEntry('S', "FATAL").containsEntry('C', entry.getValue());
            }
            context.closeAndCheckBuffers();
        }
    }

    @Test
    void beforeItsStartupMessageAClientIsNeverToldWhyItIsClosed() {
        PgTestContext context = new PgTestContext(module);
        context.client(new byte[] {0, 0, 0});
        for (ProxyError.Kind kind : ProxyError.Kind.values()) {
            assertThat(context.session.clientError(new ProxyError(kind, "handshake not completed", ""))).isNull();
        }
        context.closeAndCheckBuffers();
        assertThat(context.recording.logLines).as("core logged why it ended the session")
                .noneMatch(line -> line.contains("incomplete startup packet"));
    }

    @Test
    void aClientThatLeavesMidPacketIsLoggedOnceInTheServersWords() {
        PgTestContext context = new PgTestContext(module);
        context.client(concat(int32(100), int32(3 << 16)));
        context.closeAndCheckBuffers(); // as core does when the client's channel closes
        assertThat(context.recording.takeToClient()).isEmpty();
        assertThat(context.recording.logLines).filteredOn(line -> line.contains("startup packet"))
                .singleElement().asString().startsWith("INFO incomplete startup packet");
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
        context.client(sslRequest());
        context.client(startup("user", "u"));
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
        context.client(sslRequest());
        context.client(startup);
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
