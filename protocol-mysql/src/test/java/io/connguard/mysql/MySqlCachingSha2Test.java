package io.connguard.mysql;

import io.connguard.core.api.ClientTlsSession;
import io.connguard.core.api.EarlyUpstream;
import io.connguard.core.api.ListenerInfo;
import io.connguard.core.api.ListenerInfo.ClientTlsMode;
import io.connguard.core.api.ListenerInfo.UpstreamTlsMode;
import io.connguard.core.api.SessionState;
import io.connguard.core.testing.LeakGuard;
import io.netty.buffer.Unpooled;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;

import static io.connguard.mysql.Packets.packet;
import static io.connguard.mysql.Packets.payload;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * MySQL 8 / 9 {@code caching_sha2_password} through connguard, built from the protocol documentation
 * ("caching_sha2_password information exchanges") since no MySQL 8 server runs here: the fast path, full
 * authentication over TLS on both legs (the client's cleartext password reaches the server over TLS), full
 * authentication with the server's RSA key on plaintext legs (relayed), a server without
 * mysql_native_password (MySQL 9) on the authentication-switch path, and the refusal to forward a cleartext
 * password to a plaintext server leg.
 *
 * @see <a href="https://dev.mysql.com/doc/dev/mysql-server/latest/page_caching_sha2_authentication_exchanges.html">caching_sha2_password exchanges</a>
 */
@ExtendWith(LeakGuard.class)
class MySqlCachingSha2Test {

    private static final String PLUGIN = "caching_sha2_password";
    /** MySQL 8.0's classic capabilities: CLIENT_LONG_PASSWORD (MariaDB's CLIENT_MYSQL) set, SSL offered. */
    private static final long MYSQL8_CAPS = 0xDFFFFFFFL;
    private static final byte[] SCRAMBLE = "0123456789abcdefghij".getBytes(StandardCharsets.US_ASCII);
    private static final byte[] PASSWORD = "cg-secret-pw\0".getBytes(StandardCharsets.US_ASCII);

    private final MySqlModule module = new MySqlModule();

    /** A MySQL 8.0.36 HandshakeV10 as the documentation lays it out, byte by byte. */
    static byte[] mysql8Greeting(long threadId) {
        return packet(0, payload(10, "8.0.36", 0,
                (int) threadId & 0xFF, (int) (threadId >>> 8) & 0xFF, (int) (threadId >>> 16) & 0xFF, (int) (threadId >>> 24) & 0xFF,
                java.util.Arrays.copyOfRange(SCRAMBLE, 0, 8), 0,
                (int) MYSQL8_CAPS & 0xFF, (int) (MYSQL8_CAPS >>> 8) & 0xFF, 255, 2, 0,
                (int) (MYSQL8_CAPS >>> 16) & 0xFF, (int) (MYSQL8_CAPS >>> 24) & 0xFF, 21, new byte[10],
                java.util.Arrays.copyOfRange(SCRAMBLE, 8, 20), 0, PLUGIN, 0));
    }

    /** Connector/J 8's response: caching_sha2_password with a 32-byte scramble answer. */
    static byte[] response(int sequenceId, boolean ssl) {
        long caps = Conversation.CONNECTOR_J_CAPS | (ssl ? MySqlCapabilities.CLIENT_SSL : 0);
        byte[] attributes = payload(12, "program_name", 3, "app");
        return packet(sequenceId, payload((int) caps & 0xFF, (int) (caps >>> 8) & 0xFF, (int) (caps >>> 16) & 0xFF,
                (int) (caps >>> 24) & 0xFF, 0, 0, 0, 1, 255, new byte[23], "cg_sha2", 0, 32, new byte[32], "test", 0,
                PLUGIN, 0, attributes.length, attributes));
    }

    private static ListenerInfo listener(ClientTlsMode client, UpstreamTlsMode upstream) {
        return new ListenerInfo("my8", InetSocketAddress.createUnresolved("127.0.0.1", 3306), upstream, client);
    }

    private static byte[] moreData(int sequenceId, int status) {
        return packet(sequenceId, payload(0x01, status));
    }

    @Test
    void theGreetingOfMySql8IsRelayedWithItsPluginAndScramble() {
        Conversation c = new Conversation(module, listener(ClientTlsMode.DISABLE, UpstreamTlsMode.DISABLE), EarlyUpstream.KEPT);
        c.session.onUpstreamConnected();
        c.server(mysql8Greeting(77));
        byte[] sent = c.toClient();
        MySqlGreeting greeting = MySqlGreeting.decode(Unpooled.wrappedBuffer(sent), 4, sent.length - 4);
        assertThat(greeting.isMariaDb()).isFalse();
        assertThat(greeting.authPluginName()).isEqualTo(PLUGIN);
        assertThat(greeting.scramble()).isEqualTo(SCRAMBLE);
        assertThat(greeting.connectionId()).isEqualTo(77);
        assertThat(greeting.capabilities() & MySqlCapabilities.CLIENT_SSL).as("TLS is not offered under disable").isZero();
        c.finish();
    }

    @Test
    void fastPath() {
        Conversation c = new Conversation(module, listener(ClientTlsMode.DISABLE, UpstreamTlsMode.DISABLE), EarlyUpstream.KEPT);
        c.session.onUpstreamConnected();
        c.server(mysql8Greeting(77));
        c.toClient();
        c.client(response(1, false));
        assertThat(c.toUpstream()).isEqualTo(response(1, false));
        c.server(moreData(2, 0x03)); // fast_auth_success
        assertThat(c.toClient()).isEqualTo(moreData(2, 0x03));
        c.server(Packets.ok(3, 0x0002));
        assertThat(c.toClient()).isEqualTo(Packets.ok(3, 0x0002));
        assertThat(c.state()).isEqualTo(SessionState.IDLE);
        c.finish();
    }

    /** Greeted, SSLRequest, TLS on the client leg, then the response inside TLS (sequence id 2). */
    private Conversation overClientTls(UpstreamTlsMode upstream) {
        Conversation c = new Conversation(module, listener(ClientTlsMode.REQUIRE, upstream), EarlyUpstream.KEPT);
        c.session.onUpstreamConnected();
        c.server(mysql8Greeting(77));
        c.toClient();
        c.client(packet(1, java.util.Arrays.copyOfRange(response(1, true), 4, 36)));
        c.context.recording.clientTlsHandshake.setSuccess(new ClientTlsSession("TLSv1.3", "TLS_AES_128_GCM_SHA256", ""));
        c.client(response(2, true));
        return c;
    }

    @Test
    void fullAuthenticationOverTlsOnBothLegsForwardsTheClearPasswordOverTls() {
        Conversation c = overClientTls(UpstreamTlsMode.REQUIRE);
        byte[] upstream = c.toUpstream();
        assertThat(upstream[3]).as("connguard's SSLRequest").isEqualTo((byte) 1);
        assertThat(upstream[36 + 3]).as("the client's response").isEqualTo((byte) 2);
        c.server(moreData(3, 0x04)); // perform_full_authentication
        assertThat(c.toClient()).isEqualTo(moreData(3, 0x04));
        c.client(packet(4, PASSWORD));
        assertThat(c.toUpstream()).as("the password, to a server leg that is TLS").isEqualTo(packet(4, PASSWORD));
        c.server(Packets.ok(5, 0x0002));
        assertThat(c.toClient()).isEqualTo(Packets.ok(5, 0x0002));
        assertThat(c.state()).isEqualTo(SessionState.IDLE);
        c.finish();
    }

    /** What a client or server does with an RSA key: RSA-OAEP (SHA-1, MGF1) of the password XOR the scramble. */
    private static byte[] rsa(int mode, java.security.Key key, byte[] data) throws Exception {
        javax.crypto.Cipher cipher = javax.crypto.Cipher.getInstance("RSA/ECB/OAEPWithSHA-1AndMGF1Padding");
        cipher.init(mode, key);
        return cipher.doFinal(data);
    }

    private static byte[] xorScramble(byte[] data, byte[] scramble) {
        byte[] out = new byte[data.length];
        for (int i = 0; i < data.length; i++) {
            out[i] = (byte) (data[i] ^ scramble[i % scramble.length]);
        }
        return out;
    }

    @Test
    void withATlsClientAndAPlaintextServerLegConnguardDoesTheRsaExchangeWithTheServer() throws Exception {
        java.security.KeyPair serverKey = MySqlRsa.generate();
        Conversation c = overClientTls(UpstreamTlsMode.DISABLE);
        assertThat(c.toUpstream()[3]).as("the response, no SSLRequest upstream").isEqualTo((byte) 1);
        c.server(moreData(2, 0x04));
        assertThat(c.toClient()).isEqualTo(moreData(3, 0x04));
        c.client(packet(4, PASSWORD));
        assertThat(c.toUpstream()).as("connguard asks for the server's key; the password stays").isEqualTo(packet(3, payload(0x02)));
        c.server(packet(4, payload(0x01, MySqlRsa.pem(serverKey.getPublic()))));
        assertThat(c.toClient()).as("the key is connguard's business").isEmpty();
        byte[] blob = c.toUpstream();
        assertThat(blob[3]).isEqualTo((byte) 5);
        byte[] decrypted = rsa(javax.crypto.Cipher.DECRYPT_MODE, serverKey.getPrivate(), java.util.Arrays.copyOfRange(blob, 4, blob.length));
        assertThat(xorScramble(decrypted, SCRAMBLE)).as("what the server decrypts").isEqualTo(PASSWORD);
        c.server(Packets.ok(6, 0x0002));
        assertThat(c.toClient()).as("the answer to the client's password packet").isEqualTo(Packets.ok(5, 0x0002));
        assertThat(c.state()).isEqualTo(SessionState.IDLE);
        c.finish();
    }

    @Test
    void aPlaintextClientGetsConnguardsOwnKeyWhenTheServerLegIsTls() throws Exception {
        java.security.KeyPair own = module.ownRsaKey().join();
        Conversation c = new Conversation(module, listener(ClientTlsMode.DISABLE, UpstreamTlsMode.REQUIRE), EarlyUpstream.KEPT);
        c.session.onUpstreamConnected();
        c.server(mysql8Greeting(77));
        c.toClient();
        c.client(response(1, false));
        assertThat(c.toUpstream()[36 + 3]).as("the response after connguard's SSLRequest").isEqualTo((byte) 2);
        c.server(moreData(3, 0x04));
        assertThat(c.toClient()).isEqualTo(moreData(2, 0x04));
        c.client(packet(3, payload(0x02))); // allowPublicKeyRetrieval: the client asks for the key
        assertThat(c.toUpstream()).as("the server leg is secure: no key exchange there").isEmpty();
        byte[] key = c.toClient();
        assertThat(key[3]).isEqualTo((byte) 4);
        assertThat(key[4]).isEqualTo((byte) 0x01);
        java.security.PublicKey offered = MySqlRsa.parsePem(java.util.Arrays.copyOfRange(key, 5, key.length));
        assertThat(offered).isEqualTo(own.getPublic());
        c.client(packet(5, rsa(javax.crypto.Cipher.ENCRYPT_MODE, offered, xorScramble(PASSWORD, SCRAMBLE))));
        assertThat(c.toUpstream()).as("the password, over the TLS server leg, where the server expects it")
                .isEqualTo(packet(4, PASSWORD));
        c.server(Packets.ok(5, 0x0002));
        assertThat(c.toClient()).isEqualTo(Packets.ok(6, 0x0002));
        c.finish();
    }

    @Test
    void aClearPasswordIsNeverForwardedToAPlaintextServerLeg() {
        Conversation c = overClientTls(UpstreamTlsMode.DISABLE);
        assertThat(c.toUpstream()[3]).isEqualTo((byte) 1);
        byte[] toClear = packet(2, payload(0xFE, "mysql_clear_password", 0));
        c.server(toClear);
        assertThat(c.toClient()[3]).isEqualTo((byte) 3);
        c.client(packet(4, PASSWORD));
        assertThat(c.toUpstream()).as("nothing reaches the plaintext server leg").isEmpty();
        byte[] err = c.toClient();
        assertThat(err[3]).isEqualTo((byte) 5);
        assertThat(Unpooled.wrappedBuffer(err).getUnsignedShortLE(5)).isEqualTo(1251);
        assertThat(new String(err, StandardCharsets.UTF_8)).contains("upstreamTls");
        assertThat(c.context.recording.closed).isTrue();
        c.finish();
    }

    @Test
    void fullAuthenticationWithTheServersRsaKeyOnPlaintextLegsIsRelayed() {
        Conversation c = new Conversation(module, listener(ClientTlsMode.DISABLE, UpstreamTlsMode.DISABLE), EarlyUpstream.KEPT);
        c.session.onUpstreamConnected();
        c.server(mysql8Greeting(77));
        c.toClient();
        c.client(response(1, false));
        c.toUpstream();
        c.server(moreData(2, 0x04)); // perform_full_authentication
        assertThat(c.toClient()).isEqualTo(moreData(2, 0x04));
        c.client(packet(3, payload(0x02))); // request_public_key
        assertThat(c.toUpstream()).isEqualTo(packet(3, payload(0x02)));
        byte[] key = packet(4, payload(0x01, "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqh\n-----END PUBLIC KEY-----\n"));
        c.server(key);
        assertThat(c.toClient()).isEqualTo(key);
        byte[] encrypted = packet(5, new byte[256]);
        c.client(encrypted);
        assertThat(c.toUpstream()).isEqualTo(encrypted);
        c.server(Packets.ok(6, 0x0002));
        assertThat(c.toClient()).isEqualTo(Packets.ok(6, 0x0002));
        c.finish();
    }

    @Test
    void withoutMysqlNativePasswordTheAuthSwitchPathReachesCachingSha2() {
        MySqlModule cached = new MySqlModule();
        ListenerInfo listener = listener(ClientTlsMode.DISABLE, UpstreamTlsMode.DISABLE);
        byte[] greeting = mysql8Greeting(5);
        cached.remember(listener, MySqlGreeting.decode(Unpooled.wrappedBuffer(greeting), 4, greeting.length - 4));
        Conversation c = new Conversation(cached, listener); // the listener is at its cap: connguard's own greeting
        byte[] own = c.toClient();
        MySqlGreeting proxied = MySqlGreeting.decode(Unpooled.wrappedBuffer(own), 4, own.length - 4);
        assertThat(proxied.authPluginName()).isEqualTo(PLUGIN);
        assertThat(proxied.scramble()).isNotEqualTo(SCRAMBLE);
        c.client(response(1, false));
        c.session.onUpstreamConnected();
        c.server(mysql8Greeting(6));
        byte[] upstream = c.toUpstream();
        MySqlHandshakeResponse sent = MySqlHandshakeResponse.decode(Unpooled.wrappedBuffer(upstream), 4, upstream.length - 4);
        assertThat(sent.authPlugin()).isEqualTo(MySqlHandshakeResponse.SWITCH_PLUGIN);
        // MySQL 9 has no mysql_native_password: the unknown plugin switches to the account's caching_sha2_password
        byte[] fresh = "ABCDEFGHIJKLMNOPQRST".getBytes(StandardCharsets.US_ASCII);
        c.server(packet(2, payload(0xFE, PLUGIN, 0, fresh, 0)));
        assertThat(c.toClient()).isEqualTo(packet(2, payload(0xFE, PLUGIN, 0, fresh, 0)));
        c.client(packet(3, new byte[32]));
        assertThat(c.toUpstream()).isEqualTo(packet(3, new byte[32]));
        c.server(moreData(4, 0x03));
        c.server(Packets.ok(5, 0x0002));
        assertThat(c.toClient()).isEqualTo(Packets.concat(moreData(4, 0x03), Packets.ok(5, 0x0002)));
        assertThat(cached.threadIds(listener).resolve(proxied.connectionId())).isEqualTo(6);
        c.finish();
    }
}
