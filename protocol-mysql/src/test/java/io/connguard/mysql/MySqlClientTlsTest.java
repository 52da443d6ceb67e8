package io.connguard.mysql;

import io.connguard.core.api.ClientIdentity;
import io.connguard.core.api.ClientTlsSession;
import io.connguard.core.api.EarlyUpstream;
import io.connguard.core.api.ListenerInfo;
import io.connguard.core.api.ListenerInfo.ClientTlsMode;
import io.connguard.core.api.ListenerInfo.UpstreamTlsMode;
import io.connguard.core.api.ProxyError;
import io.connguard.core.testing.LeakGuard;
import io.netty.buffer.Unpooled;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

import java.net.InetSocketAddress;
import java.util.Arrays;

import static io.connguard.mysql.Packets.concat;
import static io.connguard.mysql.Packets.packet;
import static io.connguard.mysql.Packets.payload;
import static io.connguard.mysql.Packets.query;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * TLS on the client leg: CLIENT_SSL offered in the greeting under clientTls allow/require, the switch to
 * TLS right after the client's SSLRequest (what the client sent after it belongs to the TLS handshake), and
 * the sequence ids of the authentication kept right on both handshake paths, with and without upstream TLS;
 * under require a plaintext client is refused with ERR 3159 naming the setting.
 */
@ExtendWith(LeakGuard.class)
class MySqlClientTlsTest {

    private final MySqlModule module = Conversation.moduleWithGreeting();

    private static ListenerInfo listener(ClientTlsMode client, UpstreamTlsMode upstream) {
        return new ListenerInfo("my", InetSocketAddress.createUnresolved("127.0.0.1", 3306), upstream, client);
    }

    private static MySqlGreeting decodeGreeting(byte[] packet) {
        return MySqlGreeting.decode(Unpooled.wrappedBuffer(packet), 4, packet.length - 4);
    }

    /** The 32-byte SSLRequest a client sends before its TLS handshake. */
    private static byte[] sslRequest(long capabilities) {
        long caps = capabilities | MySqlCapabilities.CLIENT_SSL;
        return packet(1, payload((int) caps & 0xFF, (int) (caps >>> 8) & 0xFF, (int) (caps >>> 16) & 0xFF,
                (int) (caps >>> 24) & 0xFF, 0, 0, 0, 1, 45, new byte[23]));
    }

    /** The full response a TLS client sends inside TLS: CLIENT_SSL set, sequence id 2. */
    private static byte[] responseInsideTls(long capabilities) {
        byte[] response = Conversation.handshakeResponse(capabilities | MySqlCapabilities.CLIENT_SSL, "cg_my_native",
                "test", "app");
        response[3] = 2;
        return response;
    }

    private static final byte[] CLIENT_HELLO_START = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01};

    /** Greeted, SSLRequest sent with the start of the ClientHello, TLS established. */
    private static void switchToTls(Conversation c) {
        byte[] greeting = c.toClient();
        assertThat(decodeGreeting(greeting).capabilities() & MySqlCapabilities.CLIENT_SSL).as("CLIENT_SSL offered")
                .isNotZero();
        c.client(concat(sslRequest(Conversation.CONNECTOR_J_CAPS), CLIENT_HELLO_START));
        assertThat(c.context.recording.clientTlsStarts).hasSize(1);
        assertThat(c.context.recording.clientTlsStarts.get(0)).as("the bytes after the SSLRequest go to TLS")
                .isEqualTo(CLIENT_HELLO_START);
        assertThat(c.toUpstream()).isEmpty();
        c.context.recording.clientTlsHandshake.setSuccess(new ClientTlsSession("TLSv1.3", "TLS_AES_128_GCM_SHA256", ""));
    }

    @Test
    void underDisableCLIENT_SSLIsNotOffered() {
        Conversation c = new Conversation(module, listener(ClientTlsMode.DISABLE, UpstreamTlsMode.DISABLE));
        assertThat(decodeGreeting(c.toClient()).capabilities() & MySqlCapabilities.CLIENT_SSL).isZero();
        c.finish();
    }

    @Test
    void onTheEarlyUpstreamTheResponseGoesUpWithSequenceOneAndTheServersPacketsComeBackOneAhead() {
        Conversation c = new Conversation(module, listener(ClientTlsMode.ALLOW, UpstreamTlsMode.DISABLE), EarlyUpstream.KEPT);
        c.session.onUpstreamConnected();
        c.server(Conversation.serverGreetingPacket(0x42));
        switchToTls(c);
        byte[] response = responseInsideTls(Conversation.CONNECTOR_J_CAPS);
        c.client(response);
        byte[] upstream = c.toUpstream();
        assertThat(upstream[3]).as("the server leg has no SSLRequest").isEqualTo((byte) 1);
        assertThat(Unpooled.wrappedBuffer(upstream).getUnsignedIntLE(4) & MySqlCapabilities.CLIENT_SSL)
                .as("the server leg is plaintext").isZero();
        assertThat(Arrays.copyOfRange(upstream, 8, upstream.length)).as("otherwise the client's own response")
                .isEqualTo(Arrays.copyOfRange(response, 8, response.length));
        c.server(packet(2, payload(0xFE, "mysql_native_password", 0, "abcdefghij0123456789", 0)));
        assertThat(c.toClient()[3]).isEqualTo((byte) 3);
        c.client(packet(4, new byte[20]));
        assertThat(c.toUpstream()[3]).isEqualTo((byte) 3);
        c.server(Packets.ok(4, 0x0002));
        assertThat(c.toClient()).isEqualTo(Packets.ok(5, 0x0002));
        c.client(query("SELECT 1"));
        assertThat(c.toUpstream()).isEqualTo(query("SELECT 1"));
        c.finish();
    }

    @Test
    void withUpstreamTlsTooBothLegsCountAlike() {
        Conversation c = new Conversation(module, listener(ClientTlsMode.REQUIRE, UpstreamTlsMode.REQUIRE), EarlyUpstream.KEPT);
        c.session.onUpstreamConnected();
        c.server(Conversation.serverGreetingPacket(0x42));
        switchToTls(c);
        c.client(responseInsideTls(Conversation.CONNECTOR_J_CAPS));
        byte[] upstream = c.toUpstream();
        assertThat(upstream[3]).as("connguard's own SSLRequest").isEqualTo((byte) 1);
        assertThat(upstream[36 + 3]).as("then the response").isEqualTo((byte) 2);
        c.server(Packets.ok(3, 0x0002));
        assertThat(c.toClient()).isEqualTo(Packets.ok(3, 0x0002));
        c.finish();
    }

    @Test
    void onTheAuthSwitchPathTheSequenceIdsAreKeptRightToo() {
        Conversation c = new Conversation(module, listener(ClientTlsMode.ALLOW, UpstreamTlsMode.DISABLE));
        switchToTls(c);
        c.client(responseInsideTls(Conversation.LIBMARIADB_CAPS));
        assertThat(c.context.recording.identities).containsExactly(new ClientIdentity("cg_my_native", "test", "app"));
        c.session.onUpstreamConnected();
        c.server(Conversation.serverGreetingPacket(0x42));
        byte[] upstream = c.toUpstream();
        assertThat(upstream[3]).isEqualTo((byte) 1);
        MySqlHandshakeResponse sent = MySqlHandshakeResponse.decode(Unpooled.wrappedBuffer(upstream), 4, upstream.length - 4);
        assertThat(sent.authPlugin()).isEqualTo(MySqlHandshakeResponse.SWITCH_PLUGIN);
        assertThat(sent.capabilities() & MySqlCapabilities.CLIENT_SSL).isZero();
        c.server(packet(2, payload(0xFE, "mysql_native_password", 0, "abcdefghij0123456789", 0)));
        assertThat(c.toClient()[3]).as("the AuthSwitchRequest after the client's seq-2 response").isEqualTo((byte) 3);
        c.client(packet(4, new byte[20]));
        assertThat(c.toUpstream()[3]).isEqualTo((byte) 3);
        c.server(Packets.ok(4, 0x0002));
        assertThat(c.toClient()).isEqualTo(Packets.ok(5, 0x0002));
        c.finish();
    }

    @Test
    void underRequireAPlaintextClientIsRefusedNamingTheSetting() {
        Conversation c = new Conversation(module, listener(ClientTlsMode.REQUIRE, UpstreamTlsMode.DISABLE));
        c.toClient();
        c.client(Conversation.handshakeResponse(Conversation.CONNECTOR_J_CAPS, "cg_my_native", "test", "app"));
        assertThat(c.context.recording.plaintextRefusals).containsExactly(new ClientIdentity("cg_my_native", "test", "app"));
        assertThat(c.context.recording.identities).as("never admitted").isEmpty();
        byte[] err = MySqlHandshakeTest.bytes(c.session.clientError(new ProxyError(ProxyError.Kind.TLS_REQUIRED,
                "connection without TLS refused: connguard listener my accepts only TLS connections (clientTls.mode: require)", "")));
        assertThat(err[3]).as("the answer to the response").isEqualTo((byte) 2);
        assertThat(Unpooled.wrappedBuffer(err).getUnsignedShortLE(5)).isEqualTo(3159);
        assertThat(new String(err, java.nio.charset.StandardCharsets.UTF_8)).contains("clientTls.mode: require");
        c.finish();
    }

    @Test
    void underAllowAPlaintextClientGoesOn() {
        Conversation c = new Conversation(module, listener(ClientTlsMode.ALLOW, UpstreamTlsMode.DISABLE));
        c.toClient();
        c.client(Conversation.handshakeResponse(Conversation.CONNECTOR_J_CAPS, "cg_my_native", "test", "app"));
        assertThat(c.context.recording.plaintextRefusals).isEmpty();
        assertThat(c.context.recording.identities).hasSize(1);
        assertThat(c.context.recording.clientTlsStarts).isEmpty();
        c.finish();
    }
}
