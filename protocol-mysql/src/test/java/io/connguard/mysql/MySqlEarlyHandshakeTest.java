package io.connguard.mysql;

import io.connguard.core.api.EarlyUpstream;
import io.connguard.core.api.ListenerInfo;
import io.connguard.core.api.ProxyError;
import io.connguard.core.api.SessionState;
import io.connguard.core.testing.LeakGuard;
import io.netty.buffer.Unpooled;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

import java.util.Arrays;

import static io.connguard.mysql.Packets.concat;
import static io.connguard.mysql.Packets.packet;
import static io.connguard.mysql.Packets.payload;
import static io.connguard.mysql.Packets.query;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * The handshake on an upstream core opened before the client was identified: the client is greeted with
 * the server's own thread id and scramble and its response goes upstream as it is (no auth switch); when
 * core closes that upstream the client keeps its id, which then stands for its next upstream's thread; on
 * probation only a KILL of a live thread of the listener runs before the session has a slot.
 */
@ExtendWith(LeakGuard.class)
class MySqlEarlyHandshakeTest {

    private final MySqlModule module = new MySqlModule();
    private final ListenerInfo plain = Conversation.listener(ListenerInfo.UpstreamTlsMode.DISABLE);
    private final ListenerInfo tls = Conversation.listener(ListenerInfo.UpstreamTlsMode.REQUIRE);

    private static MySqlGreeting decodeGreeting(byte[] packet) {
        return MySqlGreeting.decode(Unpooled.wrappedBuffer(packet), 4, packet.length - 4);
    }

    @Test
    void theClientIsGreetedWithTheRealThreadIdAndScrambleAndItsResponseGoesUpstreamAsItIs() {
        Conversation c = new Conversation(module, plain, EarlyUpstream.KEPT);
        assertThat(c.context.recording.earlyUpstreamRequests).isEqualTo(1);
        assertThat(c.toClient()).as("nothing before the server has greeted").isEmpty();
        c.session.onUpstreamConnected();
        byte[] serverGreeting = Conversation.serverGreetingPacket(0x1234);
        c.server(serverGreeting);
        byte[] greeting = c.toClient();
        MySqlGreeting real = decodeGreeting(serverGreeting);
        MySqlGreeting sent = decodeGreeting(greeting);
        assertThat(sent.connectionId()).isEqualTo(0x1234);
        assertThat(sent.scramble()).isEqualTo(real.scramble());
        assertThat(sent.authPluginName()).isEqualTo(real.authPluginName());
        assertThat(sent.capabilities()).isEqualTo(real.capabilities() & ~MySqlCapabilities.HIDDEN_FROM_CLIENT);
        assertThat(module.threadIds(plain).isLive(0x1234)).isTrue();

        byte[] response = Conversation.handshakeResponse(Conversation.LIBMARIADB_CAPS, "cg_my_native", "test", "app");
        c.client(response);
        assertThat(c.context.recording.identities).hasSize(1);
        assertThat(c.toUpstream()).as("the client's own response, auth data and all").isEqualTo(response);
        c.server(Packets.ok(2, 0x0002));
        assertThat(c.toClient()).isEqualTo(Packets.ok(2, 0x0002));
        assertThat(c.state()).isEqualTo(SessionState.IDLE);
        c.client(query("SELECT CONNECTION_ID()"));
        assertThat(c.toUpstream()).isEqualTo(query("SELECT CONNECTION_ID()"));
        assertThat(module.threadIds(plain).resolve(0x1234)).as("its id is the real one").isEqualTo(0x1234);
        c.finish();
        assertThat(module.threadIds(plain).isLive(0x1234)).as("gone with the session").isFalse();
    }

    @Test
    void hiddenCapabilitiesAClientSetsAnywayAreClearedInItsResponse() {
        Conversation c = new Conversation(module, plain, EarlyUpstream.KEPT);
        c.session.onUpstreamConnected();
        c.server(Conversation.serverGreetingPacket(7));
        c.toClient();
        long caps = Conversation.CONNECTOR_J_CAPS | MySqlCapabilities.CLIENT_COMPRESS | MySqlCapabilities.CLIENT_QUERY_ATTRIBUTES;
        c.client(Conversation.handshakeResponse(caps, "u", "test", "app"));
        byte[] upstream = c.toUpstream();
        long sent = Unpooled.wrappedBuffer(upstream).getUnsignedIntLE(4);
        assertThat(sent).isEqualTo(caps & ~MySqlCapabilities.HIDDEN_FROM_CLIENT & 0xFFFF_FFFFL);
        c.finish();
    }

    @Test
    void withUpstreamTlsTheProxysSslRequestGoesFirstAndSequenceIdsAreTranslated() {
        Conversation c = new Conversation(module, tls, EarlyUpstream.KEPT);
        c.session.onUpstreamConnected();
        c.server(Conversation.serverGreetingPacket(9));
        c.toClient();
        byte[] response = Conversation.handshakeResponse(Conversation.CONNECTOR_J_CAPS, "u", "test", "app");
        c.client(response);
        assertThat(c.context.recording.tlsStarts).isEqualTo(1);
        byte[] upstream = c.toUpstream();
        assertThat(upstream.length).isEqualTo(4 + 32 + response.length);
        assertThat(upstream[3]).as("the SSLRequest").isEqualTo((byte) 1);
        byte[] second = Arrays.copyOfRange(upstream, 36, upstream.length);
        assertThat(second[3]).as("the client's response after TLS").isEqualTo((byte) 2);
        assertThat(Unpooled.wrappedBuffer(second).getUnsignedIntLE(4) & MySqlCapabilities.CLIENT_SSL).isNotZero();
        c.server(packet(3, payload(0xFE, "mysql_native_password", 0, "abcdefghij0123456789", 0)));
        assertThat(c.toClient()[3]).isEqualTo((byte) 2);
        c.client(packet(3, new byte[20]));
        assertThat(c.toUpstream()[3]).isEqualTo((byte) 4);
        c.server(Packets.ok(5, 0x0002));
        assertThat(c.toClient()).isEqualTo(Packets.ok(4, 0x0002));
        c.finish();
    }

    @Test
    void whenCoreClosesTheEarlyUpstreamTheClientsIdStandsForItsNextThread() {
        Conversation c = new Conversation(module, plain, EarlyUpstream.CLOSED);
        c.session.onUpstreamConnected();
        c.server(Conversation.serverGreetingPacket(0x50));
        c.toClient();
        c.client(Conversation.handshakeResponse(Conversation.CONNECTOR_J_CAPS, "u", "test", "app"));
        assertThat(c.toUpstream()).as("nothing went to the closed upstream").isEmpty();
        assertThat(module.threadIds(plain).isLive(0x50)).isFalse();
        // admitted later: a new upstream, today's auth-switch path
        c.session.onUpstreamConnected();
        c.server(Conversation.serverGreetingPacket(0x77));
        byte[] upstream = c.toUpstream();
        MySqlHandshakeResponse sent = MySqlHandshakeResponse.decode(Unpooled.wrappedBuffer(upstream), 4, upstream.length - 4);
        assertThat(sent.authPlugin()).isEqualTo(MySqlHandshakeResponse.SWITCH_PLUGIN);
        assertThat(module.threadIds(plain).resolve(0x50)).as("the id it was greeted with").isEqualTo(0x77);
        c.server(packet(2, payload(0xFE, "mysql_native_password", 0, "abcdefghij0123456789", 0)));
        c.client(packet(3, new byte[20]));
        c.server(Packets.ok(4, 0x0002));
        c.toClient();
        c.toUpstream();
        c.client(query("KILL QUERY 80")); // 0x50
        assertThat(c.toUpstream()).isEqualTo(query("KILL QUERY 119"));
        c.finish();
        assertThat(module.threadIds(plain).resolve(0x50)).isEqualTo(0x50);
    }

    @Test
    void aServerThatRefusesBeforeGreetingHasItsErrRelayedAsItIs() {
        Conversation c = new Conversation(module, plain, EarlyUpstream.KEPT);
        c.session.onUpstreamConnected();
        byte[] refusal = packet(0, payload(0xFF, 0x10, 0x04, "Too many connections"));
        c.server(refusal);
        assertThat(c.toClient()).isEqualTo(refusal);
        assertThat(c.context.recording.closed).isTrue();
        c.finish();
    }

    @Test
    void beforeTheServerGreetsAnErrorHasThePreGreetingForm() {
        Conversation c = new Conversation(module, plain, EarlyUpstream.KEPT);
        byte[] err = MySqlHandshakeTest.bytes(c.session.clientError(new ProxyError(ProxyError.Kind.UPSTREAM_UNAVAILABLE,
                "connguard could not connect to the database server db:3306: connection refused", "")));
        assertThat(err).isEqualTo(packet(0, payload(0xFF, 0xC2, 0x04,
                "connguard could not connect to the database server db:3306: connection refused")));
        c.finish();
    }

    /** A session on probation, authenticated on its early upstream, with a victim session live on thread 0x42. */
    private Conversation onProbation(Conversation victim) {
        victim.authenticateEarly(Conversation.CONNECTOR_J_CAPS, 0x42);
        Conversation c = new Conversation(module, plain, EarlyUpstream.PROBATION);
        c.authenticateEarly(Conversation.CONNECTOR_J_CAPS, 0x43);
        return c;
    }

    @Test
    void onProbationAKillOfALiveThreadOfTheListenerRunsAtOnce() {
        Conversation victim = new Conversation(module, plain, EarlyUpstream.KEPT);
        Conversation canceller = onProbation(victim);
        canceller.client(query("KILL QUERY 66"));
        assertThat(canceller.toUpstream()).isEqualTo(query("KILL QUERY 66"));
        assertThat(canceller.context.recording.slotRequests).isZero();
        canceller.server(Packets.ok(1, 0x0002));
        canceller.client(packet(0, payload(0x0C, 0x42, 0, 0, 0)));
        assertThat(canceller.toUpstream()).as("COM_PROCESS_KILL").isEqualTo(packet(0, payload(0x0C, 0x42, 0, 0, 0)));
        canceller.server(Packets.ok(1, 0x0002));
        canceller.client(packet(0, payload(0x01)));
        assertThat(canceller.toUpstream()).as("COM_QUIT").isEqualTo(packet(0, payload(0x01)));
        assertThat(canceller.context.recording.slotRequests).isZero();
        canceller.finish();
        victim.finish();
    }

    @Test
    void onProbationAnythingElseIsHeldBackUntilTheSlotComesHoweverItIsCut() {
        byte[] sent = concat(query("SELECT @@max_allowed_packet"), query("KILL QUERY 66"));
        for (int cut = 0; cut <= sent.length; cut++) {
            Conversation victim = new Conversation(module, plain, EarlyUpstream.KEPT);
            Conversation c = onProbation(victim);
            c.client(Arrays.copyOfRange(sent, 0, cut));
            if (cut < sent.length) {
                c.client(Arrays.copyOfRange(sent, cut, sent.length));
            }
            assertThat(c.toUpstream()).as("cut at %d", cut).isEmpty();
            assertThat(c.context.recording.slotRequests).as("cut at %d", cut).isEqualTo(1);
            assertThat(c.session.errorForNextRequest(new ProxyError(ProxyError.Kind.TOO_MANY_CONNECTIONS, "m", "")))
                    .as("the held command is answered by the ERR itself").isNull();
            c.session.slotGranted();
            assertThat(c.toUpstream()).as("cut at %d", cut).isEqualTo(sent);
            c.finish();
            victim.finish();
        }
    }

    @Test
    void aHeldBackCommandThatGetsNoSlotIsAnsweredWithTheErr() {
        Conversation victim = new Conversation(module, plain, EarlyUpstream.KEPT);
        Conversation c = onProbation(victim);
        c.client(query("SELECT 1"));
        byte[] err = MySqlHandshakeTest.bytes(c.session.clientError(new ProxyError(ProxyError.Kind.TOO_MANY_CONNECTIONS,
                "too many connections for client u", "")));
        assertThat(err).isEqualTo(packet(1, payload(0xFF, 0x10, 0x04, "#08004", "too many connections for client u")));
        assertThat(MySqlHandshakeTest.bytes(c.session.upstreamGoodbye())).isEqualTo(packet(0, payload(0x01)));
        c.finish();
        victim.finish();
    }

    @Test
    void onProbationAKillOfAThreadThatIsNotTheListenersWaits() {
        Conversation victim = new Conversation(module, plain, EarlyUpstream.KEPT);
        Conversation c = onProbation(victim);
        c.client(query("KILL QUERY 12345"));
        assertThat(c.toUpstream()).isEmpty();
        assertThat(c.context.recording.slotRequests).isEqualTo(1);
        c.finish();
        victim.finish();
    }

    @Test
    void aSlotGrantedDuringAuthenticationLiftsTheProbation() {
        Conversation victim = new Conversation(module, plain, EarlyUpstream.KEPT);
        victim.authenticateEarly(Conversation.CONNECTOR_J_CAPS, 0x42);
        Conversation c = new Conversation(module, plain, EarlyUpstream.PROBATION);
        c.session.onUpstreamConnected();
        c.server(Conversation.serverGreetingPacket(0x43));
        c.toClient();
        c.client(Conversation.handshakeResponse(Conversation.CONNECTOR_J_CAPS, "u", "test", "app"));
        c.session.slotGranted(); // its probation ran out and it was admitted while still authenticating
        c.server(Packets.ok(2, 0x0002));
        c.toUpstream();
        c.client(query("SELECT 1"));
        assertThat(c.toUpstream()).isEqualTo(query("SELECT 1"));
        assertThat(c.context.recording.slotRequests).isZero();
        c.finish();
        victim.finish();
    }
}
