package io.connguard.mysql;

import io.connguard.core.testing.LeakGuard;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.Unpooled;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

import static io.connguard.mysql.Packets.packet;
import static io.connguard.mysql.Packets.payload;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** MySQL-style and MariaDB-style greetings: decoded, re-issued for the client, and read back. */
@ExtendWith(LeakGuard.class)
class MySqlGreetingTest {

    /** A MySQL 8.0 greeting: CLIENT_MYSQL set, 10 reserved bytes, caching_sha2_password. */
    static final byte[] MYSQL_8 = packet(0, payload(10, "8.0.36", 0, 0x2A, 0, 0, 0, "abcdefgh", 0,
            0xFF, 0xFF, 0xFF, 0x02, 0x00, 0xFF, 0xDF, 21, new byte[10], "ijklmnopqrst", 0, "caching_sha2_password", 0));

    private static MySqlGreeting decode(byte[] packet) {
        return MySqlGreeting.decode(Unpooled.wrappedBuffer(packet), 4, packet.length - 4);
    }

    private static byte[] encode(MySqlGreeting greeting) {
        ByteBuf buf = greeting.encode(ByteBufAllocator.DEFAULT, 0);
        byte[] bytes = new byte[buf.readableBytes()];
        buf.readBytes(bytes);
        buf.release();
        return bytes;
    }

    @Test
    void freshScramblesArePrintableNeverNulAndDoNotRepeat() {
        java.util.Set<String> seen = new java.util.HashSet<>();
        for (int n = 0; n < 1000; n++) {
            byte[] scramble = MySqlGreeting.freshScramble();
            assertThat(scramble).hasSize(20);
            for (byte b : scramble) {
                assertThat(b & 0xFF).isBetween(0x21, 0x7E);
            }
            assertThat(seen.add(new String(scramble, java.nio.charset.StandardCharsets.US_ASCII))).isTrue();
        }
    }

    @Test
    void aMySqlGreetingKeepsItsStyle() {
        MySqlGreeting server = decode(MYSQL_8);
        assertThat(server.serverVersion()).isEqualTo("8.0.36");
        assertThat(server.connectionId()).isEqualTo(42);
        assertThat(server.isMariaDb()).isFalse();
        assertThat(server.authPluginName()).isEqualTo("caching_sha2_password");
        assertThat(new String(server.scramble())).isEqualTo("abcdefghijklmnopqrst");
        assertThat(server.capabilities() & MySqlCapabilities.CLIENT_SSL).isNotZero();
        MySqlGreeting forClient = decode(encode(server.forClient(1_000_000_123L, false)));
        assertThat(forClient.isMariaDb()).isFalse();
        assertThat(forClient.capabilities() >>> 32).isZero();
        assertThat(forClient.connectionId()).isEqualTo(1_000_000_123L);
        assertThat(forClient.capabilities() & MySqlCapabilities.HIDDEN_FROM_CLIENT).isZero();
        assertThat(forClient.capabilities() | MySqlCapabilities.HIDDEN_FROM_CLIENT)
                .isEqualTo(server.capabilities() | MySqlCapabilities.HIDDEN_FROM_CLIENT);
        assertThat(forClient.authPluginName()).isEqualTo("caching_sha2_password");
        assertThat(forClient.scramble()).hasSize(20);
    }

    @Test
    void aMariaDbGreetingKeepsItsVersionPrefixAndExtendedCapabilities() {
        byte[] captured = Packets.fixture("mariadb-select-transaction").get(0).bytes();
        MySqlGreeting server = decode(captured);
        assertThat(server.serverVersion()).startsWith("5.5.5-");
        assertThat(server.isMariaDb()).isTrue();
        assertThat(server.capabilities() & MySqlCapabilities.MARIADB_CLIENT_CACHE_METADATA).isNotZero();
        assertThat(server.capabilities() & MySqlCapabilities.MARIADB_CLIENT_PROGRESS).isNotZero();
        assertThat(decode(encode(server))).usingRecursiveComparison().isEqualTo(server);
        assertThat(encode(server)).isEqualTo(captured);
    }

    @Test
    void negotiationKeepsTheClientsStyleAndOnlyWhatBothSidesSpeak() {
        long mariaDbServer = decode(Packets.fixture("mariadb-select-transaction").get(0).bytes()).capabilities();
        long connectorJ = Conversation.CONNECTOR_J_CAPS;
        long negotiated = MySqlHandshake.negotiate(connectorJ, mariaDbServer);
        assertThat(negotiated & MySqlCapabilities.CLIENT_MYSQL).isNotZero();
        assertThat(negotiated >>> 32).as("no MariaDB extensions for a MySQL-style client").isZero();
        long libmariadb = Conversation.LIBMARIADB_CAPS;
        assertThat(MySqlHandshake.negotiate(libmariadb, mariaDbServer) >>> 32).isEqualTo(libmariadb >>> 32 & mariaDbServer >>> 32);
        assertThat(MySqlHandshake.negotiate(libmariadb | MySqlCapabilities.CLIENT_COMPRESS, mariaDbServer)
                & MySqlCapabilities.CLIENT_COMPRESS).isZero();
    }

    @Test
    void onlyMariaDb105AndLaterPutTheLoginsCharacterSetBackOnReset() {
        assertThat(greeting("5.5.5-10.11.6-MariaDB-0+deb12u1", false).resetRestoresLoginCharset()).isTrue();
        assertThat(greeting("5.5.5-10.5.23-MariaDB", false).resetRestoresLoginCharset()).isTrue();
        assertThat(greeting("11.4.2-MariaDB", false).resetRestoresLoginCharset()).isTrue();
        assertThat(greeting("5.5.5-10.4.34-MariaDB", false).resetRestoresLoginCharset()).isFalse();
        assertThat(greeting("8.0.36", true).resetRestoresLoginCharset()).as("MySQL: back to the globals").isFalse();
        assertThat(greeting("odd", false).resetRestoresLoginCharset()).as("unreadable: set it").isFalse();
    }

    private static MySqlGreeting greeting(String version, boolean mysql) {
        return new MySqlGreeting(version, 1, mysql ? MySqlCapabilities.CLIENT_MYSQL : 0, 45, 2, "mysql_native_password",
                new byte[20]);
    }

    @Test
    void notAGreeting() {
        byte[] error = packet(0, payload(0xFF, 0x69, 0x04, "Host is blocked"));
        assertThatThrownBy(() -> decode(error)).isInstanceOf(MalformedPacketException.class);
        assertThatThrownBy(() -> decode(packet(0, payload(10, "8.0")))).isInstanceOf(MalformedPacketException.class);
    }
}
