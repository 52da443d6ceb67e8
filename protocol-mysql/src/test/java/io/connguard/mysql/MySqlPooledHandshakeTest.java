package io.connguard.mysql;

import io.connguard.core.api.ClientIdentity;
import io.connguard.core.api.ListenerInfo;
import io.connguard.core.api.SessionState;
import io.netty.buffer.Unpooled;
import org.junit.jupiter.api.Test;

import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.security.PublicKey;
import java.time.Duration;
import java.util.Arrays;

import static io.connguard.mysql.Packets.packet;
import static io.connguard.mysql.Packets.payload;
import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/**
 * A client of a pooled MySQL listener, byte by byte: connguard greets it with a minted id, gets its password
 * (caching_sha2_password full authentication with connguard's RSA key on a plaintext leg, the marker-less
 * AuthMoreData MySQL Connector/J expects from a "5.5.5-" server, an empty password), then a lent server
 * connection answers it: the client's character set set when it differs, the thread id behind the minted
 * one, the OK in sequence; COM_QUIT never reaches the pooled connection and COM_CHANGE_USER is refused.
 */
class MySqlPooledHandshakeTest {

    private static final ListenerInfo POOLED = new ListenerInfo("my", InetSocketAddress.createUnresolved("127.0.0.1", 3306),
            ListenerInfo.UpstreamTlsMode.DISABLE, ListenerInfo.ClientTlsMode.DISABLE, true);
    private static final long CLIENT = Conversation.CONNECTOR_J_CAPS;

    private final MySqlModule module = Conversation.moduleWithGreeting();
    private final MySqlServerConnectionTest.Context serverContext = new MySqlServerConnectionTest.Context();

    static byte[] response(long capabilities, int collation, String plugin, byte[] attributes) {
        return packet(1, payload((int) capabilities & 0xFF, (int) (capabilities >>> 8) & 0xFF,
                (int) (capabilities >>> 16) & 0xFF, (int) (capabilities >>> 24) & 0xFF, 0, 0, 0, 1, collation,
                new byte[19], new byte[4], "cg_my_pool", 0, 20, new byte[20], "test", 0, plugin, 0,
                attributes.length, attributes));
    }

    private static long greetingId(byte[] greeting) {
        return MySqlGreeting.decode(Unpooled.wrappedBuffer(greeting), 4, greeting.length - 4).connectionId();
    }

    /** A server connection of the pool, logged in for a client with these capabilities and collation. */
    private MySqlServerConnection server(int collation) {
        MySqlServerConnection server = new MySqlServerConnection(serverContext, new ClientIdentity("cg_my_pool", "test", "app"),
                "secret".toCharArray(), new MySqlServerConnection.Client() {
                    @Override
                    public long capabilities() {
                        return CLIENT;
                    }

                    @Override
                    public int collation() {
                        return collation;
                    }

                    @Override
                    public byte[] attributes() {
                        return new byte[0];
                    }

                    @Override
                    public int nextSequenceId() {
                        return 2;
                    }
                });
        server.onServerBytes(serverContext.wrap(Conversation.serverGreetingPacket(4711)));
        serverContext.takeToServer();
        server.onServerBytes(serverContext.wrap(Packets.ok(2, 0x0002)));
        assertThat(serverContext.reports).containsExactly("loggedIn true");
        return server;
    }

    @Test
    void aPlaintextClientGivesItsPasswordEncryptedWithConnguardsKeyAndGetsTheLentConnection() {
        Conversation c = new Conversation(module, POOLED);
        byte[] greeting = c.toClient();
        long given = greetingId(greeting);
        assertThat(MySqlModule.isMinted(given)).isTrue();
        assertThat(c.context.recording.grantEarlyUpstream).isFalse();
        c.client(response(CLIENT, 45, "mysql_native_password", new byte[0]));
        assertThat(c.context.recording.identities).containsExactly(new ClientIdentity("cg_my_pool", "test", ""));

        c.session.requestPassword();
        byte[] authSwitch = c.toClient();
        assertThat(Arrays.copyOfRange(authSwitch, 3, 27)).isEqualTo(concatBytes(new byte[] {2, (byte) 0xFE},
                "caching_sha2_password\0".getBytes(StandardCharsets.US_ASCII)));
        byte[] scramble = Arrays.copyOfRange(authSwitch, 27, 47);
        assertThat(authSwitch[47]).isZero();
        c.client(packet(3, new byte[32]));
        assertThat(c.toClient()).isEqualTo(packet(4, payload(0x01, 0x04)));
        PublicKey key = module.ownRsaKey().join().getPublic();
        c.client(packet(5, payload(0x02)));
        byte[] keyPacket = c.toClient();
        assertThat(keyPacket[3]).isEqualTo((byte) 6);
        assertThat(keyPacket[4]).as("AuthMoreData").isEqualTo((byte) 0x01);
        assertThat(MySqlRsa.parsePem(Arrays.copyOfRange(keyPacket, 5, keyPacket.length))).isEqualTo(key);
        c.client(packet(7, MySqlRsa.encrypt("s\u00e9cret\0".getBytes(StandardCharsets.UTF_8), scramble, key)));
        await().atMost(Duration.ofSeconds(10)).until(() -> {
            c.context.recording.runPendingTasks();
            return !c.context.recording.passwords.isEmpty();
        });
        assertThat(c.context.recording.passwords).containsExactly("s\u00e9cret");

        MySqlServerConnection server = server(45);
        c.session.onServerLent(server);
        assertThat(c.toUpstream()).as("same character set: nothing to set").isEmpty();
        assertThat(c.toClient()).isEqualTo(packet(8, payload(0, 0, 0, 2, 0, 0, 0)));
        assertThat(c.state()).isEqualTo(SessionState.IDLE);
        assertThat(module.threadIds(POOLED).resolve(given)).as("KILL <minted id> reaches the lent thread").isEqualTo(4711);
        assertThat(c.session.serverFits(server)).isTrue();

        c.client(packet(0, payload(0x03, "SELECT 1")));
        assertThat(c.toUpstream()).isEqualTo(packet(0, payload(0x03, "SELECT 1")));
        c.server(concat(packet(1, payload(1)), packet(2, payload(3, "def", 0, 0, 0, 1, "1", 0, 0x0C, 0x3F, 0, 1, 0, 0, 0, 8, 0x81, 0, 0, 0)),
                packet(3, payload(1, "1")), Packets.okEof(4, 0x0002)));
        c.toClient();
        assertThat(c.session.serverReusable()).isTrue();
        c.client(packet(0, payload(0x01)));
        assertThat(c.toUpstream()).as("COM_QUIT stays off the pooled connection").isEmpty();
        assertThat(c.context.recording.closed).isTrue();
        assertThat(c.session.clientSaidGoodbye()).isTrue();
        assertThat(c.session.upstreamGoodbye()).isNull();
        c.finish();
        server.close();
        serverContext.alloc.assertAllReleased();
        assertThat(module.threadIds(POOLED).isLive(4711)).isFalse();
    }

    @Test
    void connectorJOnAMariaDbVersionGetsAuthMoreDataWithoutItsMarkerAndAnotherCharacterSetIsSet() {
        Conversation c = new Conversation(module, POOLED);
        c.toClient();
        byte[] attributes = payload(12, "_client_name", 17, "MySQL Connector/J");
        c.client(response(CLIENT, 33, "caching_sha2_password", attributes));
        c.session.requestPassword();
        assertThat(c.toClient()).as("its response already used caching_sha2_password: full authentication at once")
                .isEqualTo(packet(2, payload(0x04)));
        c.client(packet(3, payload(0)));
        assertThat(c.context.recording.passwords).as("an empty password").containsExactly("");

        MySqlServerConnection server = server(45);
        c.session.onServerLent(server);
        assertThat(c.toClient()).as("no OK before the character set is set").isEmpty();
        assertThat(c.toUpstream()).isEqualTo(packet(0, payload(0x03, MySqlServerConnection.charsetStatement(33))));
        assertThat(c.session.serverFits(server)).isTrue();
        c.server(Packets.ok(1, 0x0002));
        assertThat(c.toClient()).isEqualTo(packet(4, payload(0, 0, 0, 2, 0, 0, 0)));
        assertThat(server.collation()).isEqualTo(33);
        assertThat(c.state()).isEqualTo(SessionState.IDLE);

        c.client(packet(0, payload(0x11, "cg_my_other", 0, 0, "test", 0)));
        assertThat(c.toUpstream()).isEmpty();
        assertThat(c.context.recording.violations).singleElement().asString().startsWith("COM_CHANGE_USER is not supported");
        c.finish();
        server.close();
        serverContext.alloc.assertAllReleased();
    }

    @Test
    void aClientWhoseResponseProvesThePoolsPasswordIsAdmittedWithoutGivingItUntilANewLoginNeedsIt() {
        module.accepted(MySqlModule.poolKey("my", "cg_my_pool", "test"), "secret".getBytes(StandardCharsets.UTF_8));
        Conversation c = new Conversation(module, POOLED);
        byte[] greeting = c.toClient();
        byte[] scramble = MySqlGreeting.decode(Unpooled.wrappedBuffer(greeting), 4, greeting.length - 4).scramble();
        byte[] answer = MySqlAuthPlugins.nativePassword("secret".getBytes(StandardCharsets.UTF_8), scramble);
        byte[] response = response(CLIENT, 45, "mysql_native_password", new byte[0]);
        int at = indexOf(response, "cg_my_pool\0".getBytes(StandardCharsets.US_ASCII)) + 11 + 1; // after the user and the length
        System.arraycopy(answer, 0, response, at, 20);
        c.client(response);
        c.session.requestPassword();
        assertThat(c.context.recording.proven).isEqualTo(1);
        assertThat(c.toClient()).as("nothing asked of the client").isEmpty();
        c.session.requestPassword(); // a new server connection needs the password itself
        byte[] authSwitch = c.toClient();
        assertThat(Arrays.copyOfRange(authSwitch, 3, 27)).isEqualTo(concatBytes(new byte[] {2, (byte) 0xFE},
                "caching_sha2_password\0".getBytes(StandardCharsets.US_ASCII)));
        c.finish();

        Conversation wrong = new Conversation(module, POOLED);
        wrong.toClient();
        wrong.client(response(CLIENT, 45, "mysql_native_password", new byte[0]));
        wrong.session.requestPassword();
        assertThat(wrong.context.recording.proven).isZero();
        assertThat(wrong.toClient()[4]).as("the exchange: AuthSwitchRequest").isEqualTo((byte) 0xFE);
        wrong.finish();
    }

    private static int indexOf(byte[] haystack, byte[] needle) {
        outer:
        for (int i = 0; i + needle.length <= haystack.length; i++) {
            for (int j = 0; j < needle.length; j++) {
                if (haystack[i + j] != needle[j]) {
                    continue outer;
                }
            }
            return i;
        }
        return -1;
    }

    @Test
    void aClientWhoseFramingDiffersDoesNotFitAConnection() {
        Conversation c = new Conversation(module, POOLED);
        c.toClient();
        c.client(response(CLIENT & ~MySqlCapabilities.CLIENT_DEPRECATE_EOF, 45, "mysql_native_password", new byte[0]));
        MySqlServerConnection server = server(45);
        assertThat(c.session.serverFits(server)).isFalse();
        c.finish();
        server.close();
        serverContext.alloc.assertAllReleased();
    }

    private static byte[] concatBytes(byte[] a, byte[] b) {
        return Packets.concat(a, b);
    }

    private static byte[] concat(byte[]... parts) {
        return Packets.concat(parts);
    }
}
