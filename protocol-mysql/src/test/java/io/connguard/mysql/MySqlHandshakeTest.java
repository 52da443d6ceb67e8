package io.connguard.mysql;

import io.connguard.core.api.ClientIdentity;
import io.connguard.core.api.ListenerInfo;
import io.connguard.core.api.ProxyError;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.connguard.core.testing.LeakGuard;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.util.Random;

import static io.connguard.mysql.Packets.packet;
import static io.connguard.mysql.Packets.payload;
import static org.assertj.core.api.Assertions.assertThat;

/** The connection phase: the proxy's own greeting, the identity before admission, the auth switch upstream. */
@ExtendWith(LeakGuard.class)
class MySqlHandshakeTest {

    private final MySqlModule module = Conversation.moduleWithGreeting();
    private final ListenerInfo plain = Conversation.listener(ListenerInfo.UpstreamTlsMode.DISABLE);

    private static MySqlGreeting decodeGreeting(byte[] packet) {
        return MySqlGreeting.decode(Unpooled.wrappedBuffer(packet), 4, packet.length - 4);
    }

    private static MySqlHandshakeResponse decodeResponse(byte[] packet) {
        return MySqlHandshakeResponse.decode(Unpooled.wrappedBuffer(packet), 4, packet.length - 4);
    }

    @Test
    void greetsTheClientAsTheServerWouldButWithItsOwnIdAndScrambleAndWithoutTlsOrCompression() {
        Conversation conversation = new Conversation(module, plain);
        byte[] sent = conversation.toClient();
        assertThat(sent[3]).isZero();
        MySqlGreeting greeting = decodeGreeting(sent);
        MySqlGreeting server = Conversation.serverGreeting(Conversation.REAL_THREAD_ID);
        assertThat(greeting.serverVersion()).isEqualTo(server.serverVersion()).startsWith("5.5.5-10.11");
        assertThat(greeting.connectionId()).isGreaterThanOrEqualTo(MySqlModule.FIRST_CONNECTION_ID);
        assertThat(greeting.scramble()).hasSize(20).isNotEqualTo(server.scramble()).doesNotContain((byte) 0);
        assertThat(greeting.capabilities() & MySqlCapabilities.CLIENT_SSL).isZero();
        assertThat(greeting.capabilities() & MySqlCapabilities.CLIENT_COMPRESS).isZero();
        assertThat(greeting.capabilities() & MySqlCapabilities.CLIENT_DEPRECATE_EOF).isNotZero();
        assertThat(greeting.isMariaDb()).isTrue();
        assertThat(greeting.capabilities() >>> 32).as("MariaDB extended capabilities").isEqualTo(server.capabilities() >>> 32);
        assertThat(greeting.authPluginName()).isEqualTo("mysql_native_password");
        conversation.finish();
    }

    @Test
    void eachSessionGetsItsOwnConnectionId() {
        Conversation first = new Conversation(module, plain);
        Conversation second = new Conversation(module, plain);
        assertThat(decodeGreeting(first.toClient()).connectionId()).isNotEqualTo(decodeGreeting(second.toClient()).connectionId());
        first.finish();
        second.finish();
    }

    @Test
    void reportsTheIdentityFromTheResponseBeforeAnyUpstreamExists() {
        Conversation conversation = new Conversation(module, plain);
        conversation.toClient();
        byte[] response = Packets.fixture("mariadb-select-transaction").get(1).bytes();
        for (int cut = 1; cut < response.length; cut++) {
            Conversation split = new Conversation(module, plain);
            split.client(java.util.Arrays.copyOfRange(response, 0, cut));
            assertThat(split.context.recording.identities).isEmpty();
            split.client(java.util.Arrays.copyOfRange(response, cut, response.length));
            assertThat(split.context.recording.identities).containsExactly(new ClientIdentity("cg_my_native", "test", "mysql"));
            assertThat(split.toUpstream()).isEmpty();
            split.finish();
        }
        conversation.client(response);
        assertThat(conversation.context.recording.identities).containsExactly(new ClientIdentity("cg_my_native", "test", "mysql"));
        assertThat(conversation.context.recording.violations).isEmpty();
        conversation.finish();
    }

    @Test
    void sendsTheResponseUpstreamWithAPluginNoAccountUsesSoTheServerSwitchesWithItsRealScramble() {
        Conversation conversation = new Conversation(module, plain);
        conversation.toClient();
        conversation.client(Conversation.handshakeResponse(Conversation.CONNECTOR_J_CAPS, "cg_my_native", "test", "orders"));
        conversation.session.onUpstreamConnected();
        byte[] serverGreeting = Packets.fixture("mariadb-select-transaction").get(0).bytes();
        conversation.server(serverGreeting);
        byte[] upstream = conversation.toUpstream();
        assertThat(upstream[3]).isEqualTo((byte) 1);
        MySqlHandshakeResponse sent = decodeResponse(upstream);
        assertThat(sent.user()).isEqualTo("cg_my_native");
        assertThat(sent.database()).isEqualTo("test");
        assertThat(sent.authPlugin()).isEqualTo(MySqlHandshakeResponse.SWITCH_PLUGIN);
        assertThat(sent.programName()).isEqualTo("orders");
        assertThat(sent.capabilities() & MySqlCapabilities.CLIENT_SSL).isZero();
        assertThat(sent.capabilities() & MySqlCapabilities.CLIENT_MYSQL).as("a MySQL-style client stays one").isNotZero();
        assertThat(sent.capabilities() & MySqlCapabilities.CLIENT_DEPRECATE_EOF).isNotZero();
        // the auth response is empty: user NUL, then a zero length
        int afterUser = 4 + 32 + "cg_my_native".length() + 1;
        assertThat(upstream[afterUser]).isZero();
        assertThat(module.threadIds(plain).resolve(decodeGreeting(new Conversation(module, plain).toClient()).connectionId() - 1))
                .as("the minted id this client was greeted with stands for the real thread").isEqualTo(0x42);
        conversation.finish();
    }

    @Test
    void relaysTheAuthExchangeAndEndsTheHandshakeAtTheServersOk() {
        Conversation conversation = new Conversation(module, plain).authenticate(Conversation.LIBMARIADB_CAPS);
        assertThat(conversation.context.recording.states).containsExactly(io.connguard.core.api.SessionState.IDLE);
        conversation.client(Packets.query("select 1"));
        assertThat(conversation.toUpstream()).isEqualTo(Packets.query("select 1"));
        conversation.finish();
    }

    @Test
    void withUpstreamTlsTheProxySendsTheSslRequestAndShiftsSequenceIdsOnTheClientLeg() {
        ListenerInfo tls = Conversation.listener(ListenerInfo.UpstreamTlsMode.REQUIRE);
        module.remember(tls, Conversation.serverGreeting(7));
        Conversation conversation = new Conversation(module, tls);
        conversation.toClient();
        conversation.client(Conversation.handshakeResponse(Conversation.CONNECTOR_J_CAPS, "u", "", "app"));
        conversation.session.onUpstreamConnected();
        conversation.server(Packets.fixture("mariadb-select-transaction").get(0).bytes());
        byte[] upstream = conversation.toUpstream();
        assertThat(conversation.context.recording.tlsStarts).isEqualTo(1);
        assertThat(upstream[0]).isEqualTo((byte) 32);
        assertThat(upstream[3]).as("SSLRequest sequence id").isEqualTo((byte) 1);
        assertThat(decodeResponse(java.util.Arrays.copyOf(upstream, 36)).sslRequest()).isTrue();
        byte[] response = java.util.Arrays.copyOfRange(upstream, 36, upstream.length);
        assertThat(response[3]).as("response after TLS").isEqualTo((byte) 2);
        assertThat(decodeResponse(response).capabilities() & MySqlCapabilities.CLIENT_SSL).isNotZero();
        conversation.server(packet(3, payload(0xFE, "mysql_native_password", 0, "abcdefghij0123456789", 0)));
        assertThat(conversation.toClient()[3]).as("switch request as the client expects it").isEqualTo((byte) 2);
        conversation.client(packet(3, new byte[20]));
        assertThat(conversation.toUpstream()[3]).isEqualTo((byte) 4);
        conversation.server(Packets.ok(5, 2));
        assertThat(conversation.toClient()[3]).isEqualTo((byte) 4);
        assertThat(conversation.state()).isEqualTo(io.connguard.core.api.SessionState.IDLE);
        conversation.finish();
    }

    @Test
    void aServerWithoutTlsFailsTheUpstreamWhenTheListenerRequiresIt() {
        ListenerInfo tls = Conversation.listener(ListenerInfo.UpstreamTlsMode.VERIFY_CA);
        Conversation conversation = new Conversation(module, tls);
        conversation.client(Conversation.handshakeResponse(Conversation.CONNECTOR_J_CAPS, "u", "", "app"));
        conversation.session.onUpstreamConnected();
        byte[] greeting = Packets.fixture("mariadb-select-transaction").get(0).bytes().clone();
        greeting[4 + 1 + "5.5.5-10.11.19-MariaDB-0+deb12u1".length() + 1 + 4 + 9 + 1] &= ~0x08; // clear CLIENT_SSL
        conversation.server(greeting);
        assertThat(conversation.context.recording.upstreamFailures).singleElement().asString().contains("TLS");
        conversation.finish();
    }

    @Test
    void aWrongPasswordReachesTheClientAsTheServersOwnError() {
        Conversation conversation = new Conversation(module, plain);
        conversation.toClient();
        conversation.client(Conversation.handshakeResponse(Conversation.LIBMARIADB_CAPS, "cg_my_native", "test", "x"));
        conversation.session.onUpstreamConnected();
        conversation.server(Packets.fixture("mariadb-select-transaction").get(0).bytes());
        conversation.server(packet(2, payload(0xFE, "mysql_native_password", 0, "abcdefghij0123456789", 0)));
        conversation.client(packet(3, new byte[20]));
        byte[] denied = Packets.fixture("mariadb-wrong-password").get(2).bytes();
        denied[3] = 4;
        conversation.server(denied);
        byte[] relayed = conversation.toClient();
        assertThat(relayed).endsWith(denied);
        assertThat(new String(denied, StandardCharsets.UTF_8)).contains("28000Access denied");
        assertThat(conversation.context.recording.closed).isTrue();
        conversation.finish();
    }

    @Test
    void aServerThatRefusesBeforeItsGreetingIsRelayedAsTheAnswerToTheClientsResponse() {
        Conversation conversation = new Conversation(module, plain);
        conversation.toClient();
        conversation.client(Conversation.handshakeResponse(Conversation.LIBMARIADB_CAPS, "u", "", "x"));
        conversation.session.onUpstreamConnected();
        conversation.server(packet(0, payload(0xFF, 0x10, 0x04, "Too many connections")));
        byte[] relayed = conversation.toClient();
        assertThat(relayed).isEqualTo(packet(2, payload(0xFF, 0x10, 0x04, "#08004Too many connections")));
        assertThat(conversation.context.recording.closed).isTrue();
        conversation.finish();
    }

    @Test
    void aClientAskingForTlsIsToldTheListenerDoesNotOfferIt() {
        Conversation conversation = new Conversation(module, plain);
        conversation.toClient();
        byte[] sslRequest = java.util.Arrays.copyOf(Conversation.handshakeResponse(
                Conversation.CONNECTOR_J_CAPS | MySqlCapabilities.CLIENT_SSL, "u", "", "x"), 36);
        sslRequest[0] = 32;
        conversation.client(sslRequest);
        byte[] error = conversation.toClient();
        assertThat(error[3]).isEqualTo((byte) 2);
        assertThat(error[4]).isEqualTo((byte) 0xFF);
        assertThat(new String(error, StandardCharsets.UTF_8)).contains("#08S01").contains("does not offer TLS");
        assertThat(conversation.context.recording.clientTlsRefusals).as("core logs and counts it")
                .containsExactly("SSLRequest");
        assertThat(conversation.context.recording.identities).isEmpty();
        assertThat(conversation.context.recording.closed).isTrue();
        conversation.finish();
    }

    @Test
    void malformedOrUnsupportedResponsesAreViolations() {
        byte[][] bad = {
                packet(1, payload(0x00, 0x00, 0x00, 0x00)), // pre-4.1
                packet(2, Conversation.handshakeResponse(Conversation.LIBMARIADB_CAPS, "u", "", "x")), // wrong sequence
                Conversation.handshakeResponse(Conversation.LIBMARIADB_CAPS & ~MySqlCapabilities.CLIENT_PLUGIN_AUTH, "u", "", "x"),
                packet(1, payload(0x8c, 0xa2, 0xbf, 0x00, new byte[28], "no-nul-terminator")),
                packet(1, new byte[70000]).length > 0 ? new byte[] {(byte) 0xFF, (byte) 0xFF, (byte) 0xFF, 1} : null,
        };
        for (byte[] input : bad) {
            Conversation conversation = new Conversation(module, plain);
            conversation.toClient();
            conversation.client(input);
            assertThat(conversation.context.recording.violations).as(java.util.HexFormat.of().formatHex(input)).hasSize(1);
            assertThat(conversation.context.recording.identities).isEmpty();
            conversation.finish();
        }
    }

    @Test
    void randomGarbageFromTheClientIsAViolationOrWaitsButNeverThrowsOrLeaks() {
        Random random = new Random(4);
        for (int round = 0; round < 2000; round++) {
            Conversation conversation = new Conversation(module, plain);
            conversation.toClient();
            byte[] garbage = new byte[random.nextInt(200)];
            random.nextBytes(garbage);
            if (round % 2 == 0 && garbage.length > 6) { // plausible headers reach the decoder
                garbage[0] = (byte) (garbage.length - 4);
                garbage[1] = 0;
                garbage[2] = 0;
                garbage[3] = 1;
                garbage[5] |= 0x02; // CLIENT_PROTOCOL_41
            }
            conversation.client(garbage);
            assertThat(conversation.context.recording.violations.size() + conversation.context.recording.identities.size())
                    .isLessThanOrEqualTo(1);
            conversation.finish();
        }
    }

    @Test
    void mutatedResponsesAreDecodedOrRejectedButNeverThrowOrLeak() {
        byte[] response = Packets.fixture("mariadb-select-transaction").get(1).bytes();
        Random random = new Random(41);
        for (int round = 0; round < 3000; round++) {
            byte[] mutated = response.clone();
            for (int flips = 1 + random.nextInt(4); flips > 0; flips--) {
                mutated[4 + random.nextInt(mutated.length - 4)] = (byte) random.nextInt(256);
            }
            Conversation conversation = new Conversation(module, plain);
            conversation.toClient();
            conversation.client(mutated);
            assertThat(conversation.context.recording.violations.size() + conversation.context.recording.identities.size()
                    + (conversation.context.recording.closed ? 1 : 0)).isEqualTo(1);
            conversation.finish();
        }
    }

    @Test
    void errorsBeforeTheGreetingUseThePreHandshakeFormAndLaterOnesTheClientsSequence() {
        MySqlModule empty = new MySqlModule();
        Conversation unGreeted = new Conversation(empty, plain);
        assertThat(unGreeted.toClient()).isEmpty();
        assertThat(unGreeted.context.recording.asideTargets).hasSize(1);
        ByteBuf preHandshake = unGreeted.session.clientError(new ProxyError(ProxyError.Kind.DRAINING, "draining", ""));
        assertThat(bytes(preHandshake)).isEqualTo(packet(0, payload(0xFF, 0x1D, 0x04, "draining")));
        unGreeted.finish();

        Conversation queued = new Conversation(module, plain);
        queued.toClient();
        queued.client(Conversation.handshakeResponse(Conversation.CONNECTOR_J_CAPS, "u", "", "x"));
        ByteBuf tooMany = queued.session.clientError(new ProxyError(ProxyError.Kind.TOO_MANY_CONNECTIONS,
                "too many connections for client u", "clients.defaults.maxConnections", true));
        assertThat(bytes(tooMany)).isEqualTo(packet(2, payload(0xFF, 0xCA, 0x04, "#42000",
                "too many connections for client u (clients.defaults.maxConnections)")));
        queued.finish();
    }

    static byte[] bytes(ByteBuf buf) {
        byte[] out = new byte[buf.readableBytes()];
        buf.readBytes(out);
        buf.release();
        return out;
    }
}
