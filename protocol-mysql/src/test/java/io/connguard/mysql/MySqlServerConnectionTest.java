package io.connguard.mysql;

import io.connguard.core.api.ClientIdentity;
import io.connguard.core.api.ListenerInfo;
import io.connguard.core.api.ServerConnectionContext;
import io.connguard.core.api.SessionLog;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.Unpooled;
import io.netty.buffer.UnpooledByteBufAllocator;
import io.netty.channel.EventLoop;
import io.netty.channel.embedded.EmbeddedChannel;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

import static io.connguard.mysql.Packets.concat;
import static io.connguard.mysql.Packets.packet;
import static io.connguard.mysql.Packets.payload;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * The MySQL half of a pooled server connection, byte by byte: its login waits for the client's password and
 * is framed as the client negotiated, a refusal reaches the client in sequence, the reset between clients is
 * one pipelined write whose answers it counts (without the character set statement on MariaDB 10.5+, whose own reset puts it back) (and the schema check of a pool without a database), and which
 * clients a connection fits.
 */
class MySqlServerConnectionTest {

    private static final long CLIENT = Conversation.CONNECTOR_J_CAPS;
    private final Context context = new Context();

    /** What core does with a server connection's reports, recorded. */
    static final class Context implements ServerConnectionContext {
        final TrackingContext.TrackingAllocator alloc = new TrackingContext.TrackingAllocator();
        final EmbeddedChannel channel = new EmbeddedChannel();
        final ByteArrayOutputStream toServer = new ByteArrayOutputStream();
        final List<String> reports = new ArrayList<>();
        byte[] refusal;
        /** The pool lends per transaction. */
        boolean transactions;

        @Override
        public boolean transactionPooled() {
            return transactions;
        }

        byte[] takeToServer() {
            byte[] bytes = toServer.toByteArray();
            toServer.reset();
            return bytes;
        }

        ByteBuf wrap(byte[] bytes) {
            return alloc.heapBuffer(Math.max(1, bytes.length)).writeBytes(bytes);
        }

        @Override
        public long id() {
            return 1;
        }

        @Override
        public ListenerInfo listener() {
            return Conversation.listener(ListenerInfo.UpstreamTlsMode.DISABLE);
        }

        @Override
        public ByteBufAllocator alloc() {
            return alloc;
        }

        @Override
        public EventLoop eventLoop() {
            return channel.eventLoop();
        }

        @Override
        public SessionLog log() {
            return new SessionLog() {
                @Override
                public void debug(String message, Object... args) {
                }

                @Override
                public void info(String message, Object... args) {
                }

                @Override
                public void warn(String message, Object... args) {
                }
            };
        }

        @Override
        public void toServer(ByteBuf bytes) {
            byte[] copy = new byte[bytes.readableBytes()];
            bytes.readBytes(copy);
            bytes.release();
            toServer.writeBytes(copy);
        }

        @Override
        public void loggedIn(boolean passwordAsked) {
            reports.add("loggedIn " + passwordAsked);
        }

        @Override
        public void passwordNeeded() {
            reports.add("passwordNeeded");
        }

        @Override
        public void loginRefused(ByteBuf clientError, boolean credentials, String reason) {
            reports.add("refused " + credentials + " " + reason);
            if (clientError != null) {
                refusal = new byte[clientError.readableBytes()];
                clientError.readBytes(refusal);
                clientError.release();
            }
        }

        @Override
        public void resetDone() {
            reports.add("resetDone");
        }

        @Override
        public void failed(String reason) {
            reports.add("failed " + reason);
        }
    }

    private static MySqlServerConnection.Client client(long capabilities, int collation, int nextSequenceId) {
        return new MySqlServerConnection.Client() {
            @Override
            public long capabilities() {
                return capabilities;
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
                return nextSequenceId;
            }
        };
    }

    private MySqlServerConnection connection(String database, long capabilities, int collation) {
        return new MySqlServerConnection(context, new ClientIdentity("cg_my_pool", database, "app"), null,
                client(capabilities, collation, 5));
    }

    private void server(MySqlServerConnection c, byte[] bytes) {
        c.onServerBytes(context.wrap(bytes));
    }

    /** Logs {@code c} in to MariaDB 10.11: greeting, password from the client, OK. */
    private void login(MySqlServerConnection c) {
        login(c, Conversation.serverGreetingPacket(4711));
    }

    /** Logs {@code c} in to a server that greets with {@code greeting}. */
    private void login(MySqlServerConnection c, byte[] greeting) {
        server(c, greeting);
        c.password("secret".toCharArray());
        context.takeToServer();
        server(c, Packets.ok(2, 0x0002));
        context.reports.clear();
    }

    @AfterEach
    void released() {
        context.alloc.assertAllReleased();
    }

    @Test
    void theLoginWaitsForThePasswordAndIsFramedAsTheClientNegotiated() {
        long client = CLIENT & ~MySqlCapabilities.CLIENT_SESSION_TRACK;
        MySqlServerConnection c = connection("test", client, 33);
        server(c, Conversation.serverGreetingPacket(4711));
        assertThat(context.reports).containsExactly("passwordNeeded");
        assertThat(context.takeToServer()).as("nothing before the password").isEmpty();
        c.password("secret".toCharArray());
        byte[] response = context.takeToServer();
        assertThat(response[3]).isEqualTo((byte) 1);
        long capabilities = (response[4] & 0xFFL) | (response[5] & 0xFFL) << 8 | (response[6] & 0xFFL) << 16
                | (response[7] & 0xFFL) << 24;
        assertThat(capabilities & MySqlCapabilities.CLIENT_SESSION_TRACK).as("not asked: the client did not").isZero();
        assertThat(capabilities & MySqlCapabilities.CLIENT_DEPRECATE_EOF).isNotZero();
        assertThat(capabilities & MySqlCapabilities.CLIENT_CONNECT_WITH_DB).isNotZero();
        assertThat(response[12] & 0xFF).as("the client's collation").isEqualTo(33);
        assertThat(new String(response, StandardCharsets.ISO_8859_1)).contains("cg_my_pool\0").contains("test\0");
        server(c, Packets.ok(2, 0x0002));
        assertThat(context.reports).containsExactly("passwordNeeded", "loggedIn true");
        assertThat(c.threadId()).isEqualTo(4711);
        assertThat(c.collation()).isEqualTo(33);
        assertThat(c.fits(client)).isTrue();
        assertThat(c.fits(client & ~MySqlCapabilities.CLIENT_DEPRECATE_EOF)).as("other EOF framing").isFalse();
        assertThat(c.fits(CLIENT)).as("other OK framing (session tracking)").isFalse();
        assertThat(c.fits(client & ~MySqlCapabilities.CLIENT_CONNECT_WITH_DB)).as("no schema in the response").isTrue();
        c.close();
    }

    @Test
    void aRefusalReachesTheClientInItsSequenceAndCountsAsCredentialsFor1045Only() {
        MySqlServerConnection c = connection("test", CLIENT, 45);
        server(c, Conversation.serverGreetingPacket(4711));
        c.password("wrong".toCharArray());
        context.takeToServer();
        server(c, packet(2, payload(0xFF, 0x15, 0x04, "#28000", "Access denied for user 'cg_my_pool'@'x' (using password: YES)")));
        assertThat(context.reports).containsExactly("passwordNeeded",
                "refused true ERROR 1045 (28000): Access denied for user 'cg_my_pool'@'x' (using password: YES)");
        assertThat(context.refusal[3]).as("the client's next sequence id").isEqualTo((byte) 5);
        assertThat(new String(context.refusal, 4, context.refusal.length - 4, StandardCharsets.ISO_8859_1))
                .isEqualTo("\u00ff\u0015\u0004#28000Access denied for user 'cg_my_pool'@'x' (using password: YES)");

        MySqlServerConnection unknownDb = connection("nope", CLIENT, 45);
        server(unknownDb, Conversation.serverGreetingPacket(4712));
        unknownDb.password("secret".toCharArray());
        context.takeToServer();
        server(unknownDb, packet(2, payload(0xFF, 0x19, 0x04, "#42000", "Unknown database 'nope'")));
        assertThat(context.reports).last().asString().startsWith("refused false ERROR 1049 (42000)");
        c.close();
        unknownDb.close();
    }

    /** The captured MariaDB 10.11 greeting as a MySQL 8.0 server sends it (CLIENT_MYSQL, version 8.0.36). */
    private static byte[] mysqlGreeting() {
        byte[] mariadb = Conversation.serverGreetingPacket(4711);
        MySqlGreeting g = MySqlGreeting.decode(Unpooled.wrappedBuffer(mariadb), 4, mariadb.length - 4);
        ByteBuf out = new MySqlGreeting("8.0.36", 4711, g.capabilities() | MySqlCapabilities.CLIENT_MYSQL, g.charset(),
                g.status(), g.authPluginName(), g.scramble()).encode(UnpooledByteBufAllocator.DEFAULT, 0);
        byte[] bytes = ByteBufUtil.getBytes(out);
        out.release();
        return bytes;
    }

    @Test
    void onMariaDbTheResetIsTwoPipelinedCommandsItsOwnResetPutsTheLoginsCharacterSetBack() {
        MySqlServerConnection c = connection("test", CLIENT, 33);
        login(c);
        c.reset(true);
        assertThat(context.takeToServer()).isEqualTo(concat(
                packet(0, payload(0x1F)),
                packet(0, payload(0x02, "test"))));
        server(c, Packets.ok(1, 0x0002));
        assertThat(context.reports).isEmpty();
        server(c, Packets.ok(1, 0x0000));
        assertThat(context.reports).containsExactly("resetDone");
        assertThat(c.status()).as("the last OK's status, autocommit off").isZero();
        assertThat(c.collation()).isEqualTo(33);
        c.close();
    }

    @Test
    void onMySqlTheResetIsOnePipelinedWriteWhoseThreeAnswersItCounts() {
        MySqlServerConnection c = connection("test", CLIENT, 33);
        login(c, mysqlGreeting());
        c.reset(true);
        String set = MySqlServerConnection.charsetStatement(33);
        assertThat(context.takeToServer()).isEqualTo(concat(
                packet(0, payload(0x1F)),
                packet(0, payload(0x03, set)),
                packet(0, payload(0x02, "test"))));
        server(c, concat(Packets.ok(1, 0x0002), Packets.ok(1, 0x0002)));
        assertThat(context.reports).isEmpty();
        server(c, Packets.ok(1, 0x0000));
        assertThat(context.reports).containsExactly("resetDone");
        assertThat(c.status()).as("the last OK's status, autocommit off").isZero();
        assertThat(c.collation()).isEqualTo(33);
        c.close();
    }

    @Test
    void aCollationTheServerDoesNotKnowLeavesTheCharacterSetUnknownButTheConnectionUsable() {
        MySqlServerConnection c = connection("test", CLIENT, 255);
        login(c, mysqlGreeting());
        c.reset(true);
        context.takeToServer();
        server(c, concat(Packets.ok(1, 0x0002), packet(1, payload(0xFF, 0x73, 0x04, "#HY000", "Unknown collation: '255'")),
                Packets.ok(1, 0x0002)));
        assertThat(context.reports).containsExactly("resetDone");
        assertThat(c.collation()).isEqualTo(-1);
        c.close();
    }

    @Test
    void aPoolWithoutADatabaseChecksThatNoSchemaIsSelected() {
        byte[] columnCount = packet(1, payload(1));
        byte[] column = packet(2, payload(3, "def", 0, 0, 0, 10, "DATABASE()", 0, 0x0C, 0x21, 0, 0, 1, 0, 0, 0xFD, 0, 0, 0x27, 0, 0));
        MySqlServerConnection none = connection("", CLIENT, 45);
        login(none, mysqlGreeting());
        none.reset(true);
        assertThat(context.takeToServer()).endsWith(packet(0, payload(0x03, "SELECT DATABASE()")));
        server(none, concat(Packets.ok(1, 2), Packets.ok(1, 2), columnCount, column, packet(3, payload(0xFB)),
                Packets.okEof(4, 0x0002)));
        assertThat(context.reports).containsExactly("resetDone");

        context.reports.clear();
        none.reset(true);
        context.takeToServer();
        server(none, concat(Packets.ok(1, 2), Packets.ok(1, 2), columnCount, column, packet(3, payload(4, "test"))));
        assertThat(context.reports).containsExactly(
                "failed a client selected a schema, which MySQL cannot unselect on a pool without a database");
        none.close();

        MySqlServerConnection withEof = connection("", CLIENT & ~MySqlCapabilities.CLIENT_DEPRECATE_EOF, 45);
        context.reports.clear();
        login(withEof, mysqlGreeting());
        withEof.reset(true);
        context.takeToServer();
        server(withEof, concat(Packets.ok(1, 2), Packets.ok(1, 2), columnCount, column, Packets.eof(3, 2),
                packet(4, payload(0xFB)), Packets.eof(5, 0x0002)));
        assertThat(context.reports).containsExactly("resetDone");
        withEof.close();

        MySqlServerConnection mariaDb = connection("", CLIENT, 45);
        context.reports.clear();
        login(mariaDb);
        mariaDb.reset(true);
        assertThat(context.takeToServer()).as("no character set statement").isEqualTo(concat(
                packet(0, payload(0x1F)), packet(0, payload(0x03, "SELECT DATABASE()"))));
        server(mariaDb, concat(Packets.ok(1, 2), columnCount, column, packet(3, payload(0xFB)), Packets.okEof(4, 0x0002)));
        assertThat(context.reports).containsExactly("resetDone");
        mariaDb.close();
    }

    @Test
    void anErrorOnAnIdleConnectionOrDuringTheResetClosesIt() {
        MySqlServerConnection idle = connection("test", CLIENT, 45);
        login(idle);
        server(idle, packet(0, payload(0xFF, 0x87, 0x07, "#70100", "Connection was killed")));
        assertThat(context.reports).containsExactly("failed the server ended the idle connection: ERROR 1927: Connection was killed");
        idle.close();

        MySqlServerConnection resetting = connection("test", CLIENT, 45);
        context.reports.clear();
        login(resetting);
        resetting.reset(true);
        context.takeToServer();
        server(resetting, packet(1, payload(0xFF, 0x2F, 0x04, "#08S01", "Unknown command")));
        assertThat(context.reports).containsExactly("failed reset failed: ERROR 1071: Unknown command");
        resetting.close();
    }

    @Test
    void withoutResetTheCharacterSetIsNoLongerKnown() {
        MySqlServerConnection c = connection("test", CLIENT, 45);
        login(c);
        c.reset(false);
        assertThat(context.takeToServer()).isEmpty();
        assertThat(context.reports).containsExactly("resetDone");
        assertThat(c.collation()).isEqualTo(-1);
        assertThat(c.goodbye()).satisfies(b -> {
            assertThat(b.readableBytes()).isEqualTo(5);
            b.release();
        });
        c.close();
    }
}
