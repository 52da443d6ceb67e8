package io.connguard.mysql;

import io.connguard.core.testing.Database;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.Unpooled;
import io.netty.buffer.UnpooledByteBufAllocator;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.List;

import static io.connguard.mysql.MySqlPreparedStatements.Injected;
import static io.connguard.mysql.MySqlPreparedStatements.Route;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * One client's prepared statement served by two real server connections in turn: the ids it sees stay
 * the same, the statement is prepared again where it is missing, parameter types bound on one connection
 * are re-sent on the other, an error of the injected prepare reaches the client, and the LRU really closes
 * statements on the server.
 */
class MySqlPreparedStatementsIT {

    private static final byte[] LONGS = {0x08, 0x00, 0x08, 0x00};

    private final UnpooledByteBufAllocator alloc = new UnpooledByteBufAllocator(false);

    @Test
    void aStatementFollowsItsClientAcrossServerConnections() throws IOException {
        Database db = MySqlIt.database();
        MySqlPreparedStatements client = new MySqlPreparedStatements(new MySqlPreparedStatements.Limits(10, 10_000), alloc);
        MySqlServerStatements a = new MySqlServerStatements(8);
        MySqlServerStatements b = new MySqlServerStatements(8);
        try (RawMySql first = open(db); RawMySql second = open(db)) {
            int id = prepare(client, first, a, "SELECT CONCAT(?, '-', ?)");

            byte[] bound = MySqlPreparedStatementsTest.execute(id, 0, true, LONGS, longs(1, 2));
            assertThat(executeOn(client, first, a, bound)).isEqualTo("1-2");
            byte[] again = MySqlPreparedStatementsTest.execute(id, 0, false, null, longs(3, 4));
            assertThat(executeOn(client, second, b, again)).as("prepared on the second connection, types re-sent")
                    .isEqualTo("3-4");
            assertThat(b.preparedCount()).isEqualTo(1);
            byte[] third = MySqlPreparedStatementsTest.execute(id, 0, false, null, longs(5, 6));
            assertThat(executeOn(client, second, b, third)).isEqualTo("5-6");
            byte[] back = MySqlPreparedStatementsTest.execute(id, 0, false, null, longs(7, 8));
            assertThat(executeOn(client, first, a, back)).isEqualTo("7-8");
        } finally {
            client.release();
        }
    }

    @Test
    void anErrorOfTheInjectedPrepareIsTheClientsError() throws IOException {
        Database db = MySqlIt.database();
        MySqlPreparedStatements client = new MySqlPreparedStatements(new MySqlPreparedStatements.Limits(10, 10_000), alloc);
        MySqlServerStatements a = new MySqlServerStatements(8);
        MySqlServerStatements b = new MySqlServerStatements(8);
        try (RawMySql first = open(db); RawMySql second = open(db)) {
            first.query("DROP TABLE IF EXISTS cg_prep_gone");
            first.query("CREATE TABLE cg_prep_gone (a int)");
            int id = prepare(client, first, a, "SELECT a FROM cg_prep_gone");
            first.query("DROP TABLE cg_prep_gone");
            byte[] execute = MySqlPreparedStatementsTest.execute(id, 0, false, null, new byte[0]);
            ByteBuf buf = Unpooled.wrappedBuffer(execute.clone());
            assertThat(client.onCommand(buf, 4, execute.length - 4, execute.length - 4, 0, b)).isEqualTo(Route.PREPARE_FIRST);
            assertThat(inject(client, second, b)).isEqualTo(Injected.FAILED);
            ByteBuf err = client.takeOutput();
            assertThat((int) err.getUnsignedByte(3)).isEqualTo(1);
            assertThat(err.getUnsignedShortLE(5)).as("the server's own error").isEqualTo(1146);
            err.release();
            buf.release();
            assertThat(second.row("SELECT 1")).containsExactly("1");
        } finally {
            client.release();
        }
    }

    @Test
    void theLruClosesStatementsOnTheServer() throws IOException {
        Database db = MySqlIt.database();
        MySqlPreparedStatements client = new MySqlPreparedStatements(new MySqlPreparedStatements.Limits(10, 10_000), alloc);
        MySqlServerStatements a = new MySqlServerStatements(1);
        try (RawMySql connection = open(db)) {
            prepare(client, connection, a, "SELECT 1");
            int firstServerId = a.lookup(new MySqlServerStatements.Text("SELECT 1".getBytes(StandardCharsets.UTF_8))).serverId;
            prepare(client, connection, a, "SELECT 2");
            List<Integer> closes = a.takeCloses();
            assertThat(closes).containsExactly(firstServerId);
            ByteBuf close = MySqlServerStatements.closePacket(alloc, closes.get(0));
            connection.write(0, ByteBufUtil.getBytes(close, 4, close.readableBytes() - 4));
            close.release();
            byte[] direct = MySqlPreparedStatementsTest.execute(firstServerId, 0, false, null, new byte[0]);
            byte[] answer = connection.command(java.util.Arrays.copyOfRange(direct, 4, direct.length)).get(0);
            assertThat(answer[0] & 0xFF).isEqualTo(0xFF);
            assertThat((answer[1] & 0xFF) | (answer[2] & 0xFF) << 8).as("Unknown prepared statement handler").isEqualTo(1243);
        } finally {
            client.release();
        }
    }

    @org.junit.jupiter.params.ParameterizedTest
    @org.junit.jupiter.params.provider.ValueSource(strings = {"connectorj-server-prepared", "mariadb-connectorj-server-prepared"})
    void capturedDriverSequencesAlternateBetweenTwoConnections(String fixture) throws IOException {
        Database db = MySqlIt.database();
        MySqlPreparedStatements client = new MySqlPreparedStatements(new MySqlPreparedStatements.Limits(10, 10_000), alloc);
        MySqlServerStatements a = new MySqlServerStatements(8);
        MySqlServerStatements b = new MySqlServerStatements(8);
        List<String> results = new java.util.ArrayList<>();
        try (RawMySql first = open(db); RawMySql second = open(db)) {
            boolean prepared = false;
            int executions = 0;
            int id = 0;
            for (byte[] packet : MySqlPreparedStatementsTest.clientPackets(fixture)) {
                int command = packet[4] & 0xFF;
                if ((command == 0x17 || command == 0x19) && Unpooled.wrappedBuffer(packet).getIntLE(5) != -1) {
                    packet = packet.clone();                    // the driver knows the id connguard gave it
                    Unpooled.wrappedBuffer(packet).setIntLE(5, id);
                }
                if (command == 0x16) {
                    id = prepare(client, first, a, new String(packet, 5, packet.length - 5, StandardCharsets.UTF_8));
                    prepared = true;
                } else if (prepared && command == 0x17) {
                    // the statement prepared last (MariaDB's pipeline) only exists where it was prepared
                    boolean lastPrepared = ((packet[5] & packet[6] & packet[7] & packet[8]) & 0xFF) == 0xFF;
                    boolean onFirst = lastPrepared || executions++ % 2 == 1;
                    results.add(executeOn(client, onFirst ? first : second, onFirst ? a : b, packet));
                } else if (prepared && command == 0x19) {
                    ByteBuf buf = Unpooled.wrappedBuffer(packet.clone());
                    assertThat(client.onCommand(buf, 4, packet.length - 4, packet.length - 4, 0, a)).isEqualTo(Route.DROP);
                    buf.release();
                }
            }
        } finally {
            client.release();
        }
        assertThat(results).containsExactly("1-2", "3-4", "a-b");
        assertThat(client.statementCount()).as("closed by Connector/J, cached by MariaDB Connector/J")
                .isEqualTo(fixture.startsWith("mariadb") ? 1 : 0);
    }

    private static RawMySql open(Database db) throws IOException {
        return new RawMySql(db.host(), db.port(), MySqlIt.NATIVE_USER, MySqlIt.NATIVE_PASSWORD, db.database());
    }

    /** The client's COM_STMT_PREPARE through {@code client} to {@code connection}; the response read whole. */
    private static int prepare(MySqlPreparedStatements client, RawMySql connection, MySqlServerStatements server,
                               String sql) throws IOException {
        byte[] payload = Packets.payload(0x16, sql);
        ByteBuf buf = Unpooled.wrappedBuffer(payload);
        assertThat(client.onPrepare(buf, 0, payload.length)).isEqualTo(Route.FORWARD);
        buf.release();
        connection.write(0, payload);
        byte[] ok = connection.read();
        assertThat(ok[0]).as(new String(ok, StandardCharsets.UTF_8)).isZero();
        ByteBuf okBuf = Unpooled.wrappedBuffer(ok);
        int id = client.onPrepareResponse(okBuf, 0, ok.length, server);
        assertThat(okBuf.getIntLE(1)).isEqualTo(id);
        okBuf.release();
        int columns = (ok[5] & 0xFF) | (ok[6] & 0xFF) << 8;
        int params = (ok[7] & 0xFF) | (ok[8] & 0xFF) << 8;
        int remaining = params + (params > 0 ? 1 : 0) + columns + (columns > 0 ? 1 : 0);
        for (int i = 0; i < remaining; i++) {
            connection.read();
        }
        return id;
    }

    /** Sends the client's EXECUTE as routed to {@code connection}; returns the one string column of its one row. */
    private static String executeOn(MySqlPreparedStatements client, RawMySql connection, MySqlServerStatements server,
                                    byte[] packet) throws IOException {
        ByteBuf buf = Unpooled.wrappedBuffer(packet.clone());
        try {
            Route route = client.onCommand(buf, 4, packet.length - 4, packet.length - 4, 0, server);
            if (route == Route.PREPARE_FIRST) {
                assertThat(inject(client, connection, server)).isEqualTo(Injected.DONE);
                route = client.onCommand(buf, 4, packet.length - 4, packet.length - 4, 0, server);
            }
            byte[] sent;
            if (route == Route.REWRITE_HEAD) {
                ByteBuf head = client.takeOutput();
                sent = Packets.concat(ByteBufUtil.getBytes(head),
                        ByteBufUtil.getBytes(buf, client.replacedBytes(), packet.length - client.replacedBytes()));
                head.release();
            } else {
                assertThat(route).isEqualTo(Route.FORWARD);
                sent = ByteBufUtil.getBytes(buf);
            }
            List<byte[]> response = connection.command(java.util.Arrays.copyOfRange(sent, 4, sent.length));
            assertThat(response.get(0)[0] & 0xFF).as(new String(response.get(0), StandardCharsets.UTF_8)).isNotEqualTo(0xFF);
            byte[] row = response.get(3);                        // column count, definition, EOF, row
            int length = row[2] & 0xFF;                          // header, null bitmap, lenenc string
            return new String(row, 3, length, StandardCharsets.UTF_8);
        } finally {
            buf.release();
        }
    }

    /** Sends the injected COM_STMT_PREPARE and feeds its whole response (packets with EOFs) back. */
    private static Injected inject(MySqlPreparedStatements client, RawMySql connection, MySqlServerStatements server)
            throws IOException {
        ByteBuf prepare = client.injectedPrepare();
        connection.write(0, ByteBufUtil.getBytes(prepare, 4, prepare.readableBytes() - 4));
        prepare.release();
        while (true) {
            byte[] packet = connection.read();
            ByteBuf buf = Unpooled.wrappedBuffer(packet);
            Injected result = client.onInjectedPacket(buf, 0, packet.length, false, server);
            buf.release();
            if (result != Injected.MORE) {
                return result;
            }
        }
    }

    private static byte[] longs(long x, long y) {
        ByteBuf buf = Unpooled.buffer(16).writeLongLE(x).writeLongLE(y);
        byte[] bytes = ByteBufUtil.getBytes(buf);
        buf.release();
        return bytes;
    }
}
