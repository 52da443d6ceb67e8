package io.connguard.mysql;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.Unpooled;
import io.netty.buffer.UnpooledByteBufAllocator;
import org.bouncycastle.math.ec.rfc8032.Ed25519;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.security.KeyPair;
import java.security.MessageDigest;
import java.util.Arrays;
import java.util.Base64;
import java.util.Random;

import static io.connguard.mysql.MySqlServerLogin.Step;
import static io.connguard.mysql.Packets.packet;
import static io.connguard.mysql.Packets.payload;
import static org.assertj.core.api.Assertions.assertThat;

class MySqlServerLoginTest {

    private static final byte[] PASSWORD = "cg-secret-pw".getBytes(StandardCharsets.UTF_8);
    /** The first 20 bytes of the scramble in {@link MySqlCachingSha2Test#mysql8Greeting}. */
    private static final byte[] MYSQL8_SCRAMBLE = "0123456789abcdefghij".getBytes(StandardCharsets.US_ASCII);

    private final UnpooledByteBufAllocator alloc = new UnpooledByteBufAllocator(false);
    private MySqlServerLogin login;

    @AfterEach
    void release() {
        if (login != null) {
            login.release();
        }
    }

    @Test
    void ed25519DerivesTheKeyMariaDbStoresAndSignaturesVerify() {
        // authentication_string of cg_my_ed25519 (password cg_my_ed25519_pw) on the local MariaDB 10.11
        byte[] stored = Base64.getDecoder().decode("FcH7v8YC5cp8CHbyZqI+q+YhCI6Ol/py5zPFa9pn1NU=");
        byte[] password = "cg_my_ed25519_pw".getBytes(StandardCharsets.UTF_8);
        assertThat(MySqlAuthPlugins.ed25519PublicKey(password)).isEqualTo(stored);
        Random random = new Random(29);
        for (int round = 0; round < 20; round++) {
            byte[] scramble = new byte[32];
            random.nextBytes(scramble);
            byte[] pw = new byte[random.nextInt(40)];
            random.nextBytes(pw);
            byte[] signature = MySqlAuthPlugins.ed25519(pw, scramble);
            assertThat(Ed25519.verify(signature, 0, MySqlAuthPlugins.ed25519PublicKey(pw), 0, scramble, 0, scramble.length))
                    .as("round %d verified by Bouncy Castle", round).isTrue();
            scramble[0] ^= 1;
            assertThat(Ed25519.verify(signature, 0, MySqlAuthPlugins.ed25519PublicKey(pw), 0, scramble, 0, scramble.length)).isFalse();
        }
    }

    @Test
    void nativeAndCachingSha2ScramblesFollowTheirFormulas() throws Exception {
        byte[] scramble = "abcdefghijklmnopqrst".getBytes(StandardCharsets.US_ASCII);
        assertThat(MySqlAuthPlugins.nativePassword(PASSWORD, scramble))
                .isEqualTo(RawMySql.nativePassword("cg-secret-pw", scramble));
        MessageDigest sha256 = MessageDigest.getInstance("SHA-256");
        byte[] stage1 = sha256.digest(PASSWORD);
        byte[] stage2 = sha256.digest(stage1);
        byte[] mix = sha256.digest(Packets.concat(stage2, scramble));
        for (int i = 0; i < mix.length; i++) {
            mix[i] ^= stage1[i];
        }
        assertThat(MySqlAuthPlugins.cachingSha2(PASSWORD, scramble)).isEqualTo(mix);
        assertThat(MySqlAuthPlugins.nativePassword(new byte[0], scramble)).isEmpty();
        assertThat(MySqlAuthPlugins.cachingSha2(new byte[0], scramble)).isEmpty();
    }

    @Test
    void mariaDbGreetingGetsAResponseWithSessionTrackingAndTheNativeAnswer() {
        login = login(false, null);
        byte[] greeting = Conversation.serverGreetingPacket(99);
        assertThat(feed(greeting)).isEqualTo(Step.SEND);
        byte[] response = take();
        assertThat(response[3]).isEqualTo((byte) 1);
        ByteBuf buf = Unpooled.wrappedBuffer(response);
        MySqlHandshakeResponse decoded = MySqlHandshakeResponse.decode(buf, 4, response.length - 4);
        assertThat(decoded.user()).isEqualTo("pool_user");
        assertThat(decoded.database()).isEqualTo("test");
        assertThat(decoded.authPlugin()).isEqualTo(MySqlAuthPlugins.NATIVE);
        assertThat(decoded.programName()).isEqualTo("connguard");
        assertThat(decoded.capabilities() & MySqlServerLogin.REQUIRED).isEqualTo(MySqlServerLogin.REQUIRED);
        assertThat(decoded.capabilities() & MySqlCapabilities.CLIENT_DEPRECATE_EOF).isNotZero();
        assertThat(decoded.capabilities() & MySqlCapabilities.HIDDEN_FROM_CLIENT).as("never compression, query attributes").isZero();
        assertThat(login.threadId()).isEqualTo(99);
        MySqlGreeting parsed = login.greeting();
        byte[] expected = MySqlAuthPlugins.nativePassword(PASSWORD, parsed.scramble());
        assertThat(ByteBufUtil.indexOf(Unpooled.wrappedBuffer(expected), buf)).isPositive();
        buf.release();
        assertThat(feed(Packets.ok(2, 2))).isEqualTo(Step.DONE);
    }

    @Test
    void authSwitchesToEd25519AndNative() {
        login = login(false, null);
        feed(Conversation.serverGreetingPacket(1));
        take();
        byte[] scramble = new byte[32];
        Arrays.fill(scramble, (byte) 7);
        scramble[31] = 0;                                       // not a terminator: ed25519's scramble has none
        assertThat(feed(packet(2, payload(0xFE, "client_ed25519", 0, scramble)))).isEqualTo(Step.SEND);
        byte[] signed = take();
        assertThat(signed[3]).isEqualTo((byte) 3);
        assertThat(Arrays.copyOfRange(signed, 4, signed.length)).isEqualTo(MySqlAuthPlugins.ed25519(PASSWORD, scramble));
        byte[] salt = "ABCDEFGHIJKLMNOPQRST".getBytes(StandardCharsets.US_ASCII);
        assertThat(feed(packet(4, payload(0xFE, "mysql_native_password", 0, salt, 0)))).isEqualTo(Step.SEND);
        assertThat(Arrays.copyOfRange(take(), 4, 24)).isEqualTo(MySqlAuthPlugins.nativePassword(PASSWORD, salt));
        assertThat(feed(Packets.err(6, 1045, "Access denied for user 'pool_user'@'localhost'"))).isEqualTo(Step.FAILED);
        assertThat(login.errorCode()).isEqualTo(1045);
        assertThat(login.sqlState()).isEqualTo("HY000");
        assertThat(login.errorMessage()).startsWith("Access denied");
    }

    @Test
    void cachingSha2FastAndFullPaths() {
        // fast path
        login = login(false, null);
        assertThat(feed(MySqlCachingSha2Test.mysql8Greeting(5))).isEqualTo(Step.SEND);
        byte[] response = take();
        assertThat(MySqlHandshakeResponse.decode(Unpooled.wrappedBuffer(response), 4, response.length - 4).authPlugin())
                .isEqualTo(MySqlAuthPlugins.CACHING_SHA2);
        assertThat(feed(packet(2, payload(0x01, 0x03)))).isEqualTo(Step.WAIT);
        assertThat(feed(Packets.ok(3, 2))).isEqualTo(Step.DONE);

        // full path, plaintext, no key: ask for it, then encrypt
        KeyPair keys = MySqlRsa.generate();
        login = login(false, null);
        feed(MySqlCachingSha2Test.mysql8Greeting(5));
        take();
        assertThat(feed(packet(2, payload(0x01, 0x04)))).isEqualTo(Step.SEND);
        assertThat(take()).isEqualTo(packet(3, payload(0x02)));
        assertThat(feed(packet(4, payload(0x01, MySqlRsa.pem(keys.getPublic()))))).isEqualTo(Step.SEND);
        byte[] encrypted = take();
        assertThat(encrypted[3]).isEqualTo((byte) 5);
        assertThat(MySqlRsa.decrypt(Arrays.copyOfRange(encrypted, 4, encrypted.length), MYSQL8_SCRAMBLE, keys.getPrivate()))
                .isEqualTo(Arrays.copyOf(PASSWORD, PASSWORD.length + 1));
        assertThat(feed(Packets.ok(6, 2))).isEqualTo(Step.DONE);

        // full path with a configured key
        login = login(false, keys.getPublic());
        feed(MySqlCachingSha2Test.mysql8Greeting(5));
        take();
        assertThat(feed(packet(2, payload(0x01, 0x04)))).isEqualTo(Step.SEND);
        byte[] direct = take();
        assertThat(MySqlRsa.decrypt(Arrays.copyOfRange(direct, 4, direct.length), MYSQL8_SCRAMBLE, keys.getPrivate()))
                .isEqualTo(Arrays.copyOf(PASSWORD, PASSWORD.length + 1));

        // full path over TLS: SSLRequest, TLS, then the password as it is
        login = login(true, null);
        assertThat(feed(MySqlCachingSha2Test.mysql8Greeting(5))).isEqualTo(Step.START_TLS);
        byte[] sslRequest = take();
        assertThat(sslRequest.length).isEqualTo(4 + 32);
        assertThat(sslRequest[3]).isEqualTo((byte) 1);
        assertThat(login.tlsEstablished()).isEqualTo(Step.SEND);
        assertThat(take()[3]).isEqualTo((byte) 2);
        assertThat(feed(packet(3, payload(0x01, 0x04)))).isEqualTo(Step.SEND);
        assertThat(take()).isEqualTo(packet(4, payload(PASSWORD, 0)));
    }

    @Test
    void sha256PasswordAsksForTheKeyWithoutTls() {
        KeyPair keys = MySqlRsa.generate();
        login = login(false, null);
        feed(Conversation.serverGreetingPacket(1));
        take();
        byte[] salt = "ABCDEFGHIJKLMNOPQRST".getBytes(StandardCharsets.US_ASCII);
        assertThat(feed(packet(2, payload(0xFE, "sha256_password", 0, salt, 0)))).isEqualTo(Step.SEND);
        assertThat(take()).isEqualTo(packet(3, payload(0x01)));
        assertThat(feed(packet(4, payload(0x01, MySqlRsa.pem(keys.getPublic()))))).isEqualTo(Step.SEND);
        byte[] encrypted = take();
        assertThat(MySqlRsa.decrypt(Arrays.copyOfRange(encrypted, 4, encrypted.length), salt, keys.getPrivate()))
                .isEqualTo(Arrays.copyOf(PASSWORD, PASSWORD.length + 1));
        assertThat(feed(Packets.ok(6, 2))).isEqualTo(Step.DONE);
    }

    @Test
    void refusals() {
        login = login(false, null);
        feed(Conversation.serverGreetingPacket(1));
        take();
        assertThat(feed(packet(2, payload(0xFE, "mysql_clear_password", 0)))).isEqualTo(Step.FAILED);
        assertThat(login.errorCode()).isEqualTo(MySqlServerLogin.CR_AUTH_PLUGIN_CANNOT_LOAD);
        assertThat(login.errorMessage()).contains("TLS");

        login = login(false, null);
        feed(Conversation.serverGreetingPacket(1));
        take();
        assertThat(feed(packet(2, payload(0xFE, "dialog", 0, "x", 0)))).isEqualTo(Step.FAILED);
        assertThat(login.errorMessage()).contains("dialog");

        login = login(false, null);
        feed(Conversation.serverGreetingPacket(1));
        take();
        assertThat(feed(packet(2, payload(0xFE)))).isEqualTo(Step.FAILED);

        login = login(false, null);
        assertThat(feed(packet(0, payload(0xFF, 1040 & 0xFF, 1040 >> 8, "Too many connections")))).isEqualTo(Step.FAILED);
        assertThat(login.errorCode()).isEqualTo(1040);

        login = login(true, null);
        byte[] noTls = Conversation.serverGreetingPacket(1).clone();
        MySqlGreeting greeting = MySqlGreeting.decode(Unpooled.wrappedBuffer(noTls), 4, noTls.length - 4);
        int capsAt = indexOfCapabilities(noTls, greeting);
        noTls[capsAt + 1] &= (byte) ~(MySqlCapabilities.CLIENT_SSL >>> 8);
        assertThat(feed(noTls)).isEqualTo(Step.FAILED);
        assertThat(login.errorCode()).isEqualTo(MySqlServerLogin.CR_SSL_CONNECTION_ERROR);
    }

    @Test
    void resetConnectionPacket() {
        ByteBuf reset = MySqlServerLogin.resetConnection(alloc);
        assertThat(ByteBufUtil.getBytes(reset)).isEqualTo(packet(0, payload(0x1F)));
        reset.release();
    }

    @Test
    void garbageEndsInFailedNeverInAnException() {
        Random random = new Random(31);
        byte[] greeting = Conversation.serverGreetingPacket(1);
        for (int round = 0; round < 3000; round++) {
            login = login(round % 2 == 0, null);
            byte[] bad = greeting.clone();
            int length = 4 + random.nextInt(bad.length - 4);
            for (int flips = random.nextInt(4); flips > 0; flips--) {
                bad[4 + random.nextInt(bad.length - 4)] = (byte) random.nextInt(256);
            }
            Step step = login.onPacket(Unpooled.wrappedBuffer(bad), 4, length - 4, 0);
            if (step == Step.SEND) {
                take();
                byte[] junk = new byte[random.nextInt(40)];
                random.nextBytes(junk);
                if (junk.length > 0) {
                    login.onPacket(Unpooled.wrappedBuffer(junk), 0, junk.length, 2);
                }
            }
            login.release();
        }
    }

    // ------------------------------------------------------------------ helpers

    private MySqlServerLogin login(boolean tls, java.security.PublicKey key) {
        if (login != null) {
            login.release();
        }
        byte[] attributes = payload(12, "program_name", 9, "connguard");
        return new MySqlServerLogin(new MySqlServerLogin.Credentials("pool_user", PASSWORD.clone(), "test", 45, attributes),
                MySqlCapabilities.CLIENT_DEPRECATE_EOF | MySqlCapabilities.CLIENT_TRANSACTIONS | MySqlCapabilities.CLIENT_COMPRESS
                        | MySqlCapabilities.CLIENT_QUERY_ATTRIBUTES, tls, key, alloc);
    }

    private Step feed(byte[] packet) {
        ByteBuf buf = Unpooled.wrappedBuffer(packet);
        Step step = login.onPacket(buf, 4, packet.length - 4, packet[3] & 0xFF);
        assertThat(buf.refCnt()).isEqualTo(1);
        return step;
    }

    private byte[] take() {
        ByteBuf out = login.takeOutput();
        byte[] bytes = ByteBufUtil.getBytes(out);
        out.release();
        return bytes;
    }

    /** Where the lower capability flags sit in a greeting packet: after version, NUL, id, 8 bytes, filler. */
    private static int indexOfCapabilities(byte[] packet, MySqlGreeting greeting) {
        return 4 + 1 + greeting.serverVersion().getBytes(StandardCharsets.UTF_8).length + 1 + 4 + 8 + 1;
    }
}
