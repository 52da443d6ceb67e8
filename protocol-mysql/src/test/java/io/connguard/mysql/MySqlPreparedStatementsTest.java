package io.connguard.mysql;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.Unpooled;
import io.netty.buffer.UnpooledByteBufAllocator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static io.connguard.mysql.MySqlPreparedStatements.Injected;
import static io.connguard.mysql.MySqlPreparedStatements.Route;
import static io.connguard.mysql.Packets.packet;
import static io.connguard.mysql.Packets.payload;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * Byte sequences as MySQL Connector/J with {@code useServerPrepStmts=true} sends them (PREPARE; EXECUTE
 * binding types once, later EXECUTEs without them; CLOSE) and as MariaDB Connector/J pipelines them
 * (PREPARE + EXECUTE(0xFFFFFFFF) + CLOSE(0xFFFFFFFF)), served by changing server connections.
 */
class MySqlPreparedStatementsTest {

    private static final String SUM = "SELECT ? + ?";
    /** MYSQL_TYPE_LONGLONG twice, and MYSQL_TYPE_VAR_STRING twice. */
    private static final byte[] LONGS = {0x08, 0x00, 0x08, 0x00};
    private static final byte[] STRINGS = {(byte) 0xFD, 0x00, (byte) 0xFD, 0x00};

    private final UnpooledByteBufAllocator alloc = new UnpooledByteBufAllocator(false);
    private final MySqlPreparedStatements client = new MySqlPreparedStatements(
            new MySqlPreparedStatements.Limits(3, 1000), alloc);
    private final MySqlServerStatements a = new MySqlServerStatements(2);
    private final MySqlServerStatements b = new MySqlServerStatements(2);
    private final List<ByteBuf> toRelease = new ArrayList<>();

    @AfterEach
    void release() {
        client.release();
        toRelease.forEach(ByteBuf::release);
    }

    @Test
    void connectorJSequenceFollowsTheClientAcrossConnections() {
        int id = prepare(SUM, a, 7, 1, 2);
        assertThat(id).isEqualTo(1);
        assertThat(a.preparedCount()).isEqualTo(1);

        // EXECUTE binding types on A: the id becomes A's, the types are remembered
        byte[] first = execute(id, 0, true, LONGS, longValues(1, 2));
        ByteBuf buf = command(first);
        assertThat(client.onCommand(buf, 4, buf.readableBytes() - 4, first.length - 4, 0, a)).isEqualTo(Route.FORWARD);
        assertThat(bytes(buf)).isEqualTo(execute(7, 0, true, LONGS, longValues(1, 2)));

        // the next EXECUTE (no types) lands on B, where the statement is not prepared
        byte[] second = execute(id, 0, false, null, longValues(3, 4));
        buf = command(second);
        assertThat(client.onCommand(buf, 4, buf.readableBytes() - 4, second.length - 4, 0, b)).isEqualTo(Route.PREPARE_FIRST);
        ByteBuf injected = own(client.injectedPrepare());
        assertThat(bytes(injected)).isEqualTo(packet(0, payload(0x16, SUM)));
        List<byte[]> response = prepareResponse(3, 1, 2, false);
        for (int i = 0; i < response.size(); i++) {
            ByteBuf packet = own(Unpooled.wrappedBuffer(response.get(i)));
            assertThat(client.onInjectedPacket(packet, 4, response.get(i).length - 4, false, b))
                    .isEqualTo(i == response.size() - 1 ? Injected.DONE : Injected.MORE);
        }
        // B's statement never had types bound: the head is rewritten with the flag and the client's types
        assertThat(client.onCommand(buf, 4, buf.readableBytes() - 4, second.length - 4, 0, b)).isEqualTo(Route.REWRITE_HEAD);
        ByteBuf head = own(client.takeOutput());
        byte[] sent = Packets.concat(bytes(head), bytes(buf.slice(client.replacedBytes(), buf.readableBytes() - client.replacedBytes())));
        assertThat(sent).isEqualTo(execute(3, 0, true, LONGS, longValues(3, 4)));

        // once bound on B, the EXECUTE passes as the client sent it (but for the id)
        byte[] third = execute(id, 0, false, null, longValues(5, 6));
        buf = command(third);
        assertThat(client.onCommand(buf, 4, buf.readableBytes() - 4, third.length - 4, 0, b)).isEqualTo(Route.FORWARD);
        assertThat(bytes(buf)).isEqualTo(execute(3, 0, false, null, longValues(5, 6)));

        // back on A, whose statement still has the client's types bound
        byte[] fourth = execute(id, 0, false, null, longValues(7, 8));
        buf = command(fourth);
        assertThat(client.onCommand(buf, 4, buf.readableBytes() - 4, fourth.length - 4, 0, a)).isEqualTo(Route.FORWARD);
        assertThat(buf.getIntLE(5)).isEqualTo(7);

        // COM_STMT_CLOSE: forgotten by the client, kept prepared on the connections
        buf = command(packet(0, payload(0x19, id, 0, 0, 0)));
        assertThat(client.onCommand(buf, 4, 5, 5, 0, a)).isEqualTo(Route.DROP);
        assertThat(client.statementCount()).isZero();
        assertThat(client.textBytes()).isZero();
        assertThat(a.preparedCount()).isEqualTo(1);
    }

    @Test
    void anotherClientBindingOtherTypesMakesTheTypesGoAgain() {
        int id = prepare(SUM, a, 7, 1, 2);
        assertThat(run(execute(id, 0, true, LONGS, longValues(1, 2)), a)).isEqualTo(Route.FORWARD);
        MySqlPreparedStatements other = new MySqlPreparedStatements(new MySqlPreparedStatements.Limits(3, 1000), alloc);
        ByteBuf otherPrepare = command(packet(0, payload(0x16, SUM)));
        assertThat(other.onPrepare(otherPrepare, 4, otherPrepare.readableBytes() - 4)).isEqualTo(Route.FORWARD);
        ByteBuf ok = command(prepareResponse(9, 1, 2, true).get(0));
        other.onPrepareResponse(ok, 4, ok.readableBytes() - 4, a);
        byte[] strings = execute(1, 0, true, STRINGS, payload(1, "x", 1, "y"));
        ByteBuf otherExecute = command(strings);
        assertThat(other.onCommand(otherExecute, 4, strings.length - 4, strings.length - 4, 0, a)).isEqualTo(Route.FORWARD);
        // the text was prepared again on A: the older id is to be closed, the newer one serves both clients
        assertThat(a.takeCloses()).containsExactly(7);
        assertThat(run(execute(id, 0, false, null, longValues(1, 2)), a)).isEqualTo(Route.REWRITE_HEAD);
        other.release();
    }

    @Test
    void anInjectedPrepareThatFailsAnswersTheClientsOwnCommand() {
        int id = prepare("SELECT * FROM t", a, 4, 1, 0);
        byte[] exec = execute(id, 0, false, null, new byte[0]);
        ByteBuf buf = command(exec);
        assertThat(client.onCommand(buf, 4, exec.length - 4, exec.length - 4, 0, b)).isEqualTo(Route.PREPARE_FIRST);
        own(client.injectedPrepare());
        byte[] err = Packets.err(1, 1146, "Table 'test.t' doesn't exist");
        ByteBuf errBuf = command(err);
        assertThat(client.onInjectedPacket(errBuf, 4, err.length - 4, true, b)).isEqualTo(Injected.FAILED);
        assertThat(bytes(own(client.takeOutput()))).isEqualTo(err);
        assertThat(b.preparedCount()).isZero();

        // SEND_LONG_DATA has no response: its error comes with the next EXECUTE, as the server's would
        byte[] longData = packet(0, payload(0x18, id, 0, 0, 0, 0, 0, "abc"));
        buf = command(longData);
        assertThat(client.onCommand(buf, 4, longData.length - 4, longData.length - 4, 0, b)).isEqualTo(Route.PREPARE_FIRST);
        own(client.injectedPrepare());
        errBuf = command(err);
        assertThat(client.onInjectedPacket(errBuf, 4, err.length - 4, true, b)).isEqualTo(Injected.FAILED);
        assertThat(client.takeOutput()).isNull();
        assertThat(run(exec, b)).isEqualTo(Route.ANSWER);
        assertThat(bytes(own(client.takeOutput()))).isEqualTo(err);
    }

    @Test
    void unknownIdsLimitsAndTheLruAnswerAsAServerWould() {
        assertThat(run(execute(42, 0, false, null, new byte[0]), a)).isEqualTo(Route.ANSWER);
        ByteBuf unknown = own(client.takeOutput());
        assertThat((int) unknown.getUnsignedByte(3)).isEqualTo(1);    // sequence id of the response
        assertThat(unknown.getUnsignedShortLE(5)).isEqualTo(1243);

        prepare("SELECT 1", a, 1, 1, 0);
        prepare("SELECT 2", a, 2, 1, 0);
        prepare("SELECT 3", a, 3, 1, 0);
        assertThat(a.takeCloses()).as("the LRU closes the least recently used").containsExactly(1);
        ByteBuf close = own(MySqlServerStatements.closePacket(alloc, 1));
        assertThat(bytes(close)).isEqualTo(packet(0, payload(0x19, 1, 0, 0, 0)));
        ByteBuf fourth = command(packet(0, payload(0x16, "SELECT 4")));
        assertThat(client.onPrepare(fourth, 4, fourth.readableBytes() - 4)).isEqualTo(Route.ANSWER);
        assertThat(own(client.takeOutput()).getUnsignedShortLE(5)).isEqualTo(1461);

        MySqlPreparedStatements small = new MySqlPreparedStatements(new MySqlPreparedStatements.Limits(10, 5), alloc);
        ByteBuf tooLong = command(packet(0, payload(0x16, "SELECT 123")));
        assertThat(small.onPrepare(tooLong, 4, tooLong.readableBytes() - 4)).isEqualTo(Route.ANSWER);
        own(small.takeOutput());
    }

    @Test
    void mariaDbPipelineWithTheLastPreparedId() {
        ByteBuf prep = command(packet(0, payload(0x16, SUM)));
        assertThat(client.onPrepare(prep, 4, prep.readableBytes() - 4)).isEqualTo(Route.FORWARD);
        byte[] exec = execute(0xFFFFFFFF, 0, true, LONGS, longValues(1, 2));
        assertThat(run(exec, a)).isEqualTo(Route.FORWARD);
        ByteBuf close = command(packet(0, payload(0x19, 0xFF, 0xFF, 0xFF, 0xFF)));
        assertThat(client.onCommand(close, 4, 5, 5, 0, a)).isEqualTo(Route.DROP);
        ByteBuf ok = command(prepareResponse(11, 1, 2, true).get(0));
        int id = client.onPrepareResponse(ok, 4, ok.readableBytes() - 4, a);
        assertThat(ok.getIntLE(5)).isEqualTo(id);
        assertThat(client.statementCount()).as("closed in the pipeline").isZero();
        assertThat(a.preparedCount()).isEqualTo(1);

        // without the CLOSE the statement stays, with no known types (the EXECUTE came before the count)
        prep = command(packet(0, payload(0x16, SUM)));
        client.onPrepare(prep, 4, prep.readableBytes() - 4);
        ok = command(prepareResponse(12, 1, 2, true).get(0));
        int second = client.onPrepareResponse(ok, 4, ok.readableBytes() - 4, a);
        assertThat(second).isNotEqualTo(id);
        assertThat(client.statementCount()).isEqualTo(1);
    }

    @Test
    void cursorsAndLongDataKeepTheClientOnItsConnection() {
        int id = prepare("SELECT a FROM t", a, 5, 1, 0);
        assertThat(run(execute(id, 1, false, null, new byte[0]), a)).isEqualTo(Route.FORWARD);
        assertThat(client.needsSameConnection()).isTrue();
        assertThat(run(packet(0, payload(0x1C, id, 0, 0, 0, 10, 0, 0, 0)), a)).isEqualTo(Route.FORWARD);
        assertThat(run(packet(0, payload(0x1A, id, 0, 0, 0)), a)).isEqualTo(Route.FORWARD);
        assertThat(client.needsSameConnection()).isFalse();
        assertThat(run(packet(0, payload(0x18, id, 0, 0, 0, 0, 0, "blob")), a)).isEqualTo(Route.FORWARD);
        assertThat(client.needsSameConnection()).isTrue();
        assertThat(run(execute(id, 0, false, null, new byte[0]), a)).isEqualTo(Route.FORWARD);
        assertThat(client.needsSameConnection()).isFalse();
        client.forgetAll();
        assertThat(client.statementCount()).isZero();
    }

    @Test
    void mariaDbBulkExecuteIsRoutedLikeAnExecute() {
        int id = prepare("INSERT INTO t VALUES (?, ?)", a, 21, 0, 2);
        // COM_STMT_BULK_EXECUTE: id, flags 128 (types sent), types, then rows of indicator + value
        byte[] bulk = packet(0, payload(0xFA, id, 0, 0, 0, 0x80, 0x00, LONGS, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0));
        ByteBuf buf = command(bulk);
        assertThat(client.onCommand(buf, 4, bulk.length - 4, bulk.length - 4, 0, b)).isEqualTo(Route.PREPARE_FIRST);
        own(client.injectedPrepare());
        for (byte[] packet : prepareResponse(5, 0, 2, true)) {
            client.onInjectedPacket(command(packet), 4, packet.length - 4, true, b);
        }
        assertThat(client.onCommand(buf, 4, bulk.length - 4, bulk.length - 4, 0, b)).isEqualTo(Route.FORWARD);
        assertThat(buf.getIntLE(5)).isEqualTo(5);
        assertThat(run(bulk, a)).isEqualTo(Route.FORWARD);
    }

    @Test
    void malformedCommandsGoToTheServerWhichAnswersThem() {
        int id = prepare(SUM, a, 7, 1, 2);
        // new_params_bound_flag set, but the packet ends before the types
        assertThat(run(packet(0, payload(0x17, id, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 8)), a)).isEqualTo(Route.FORWARD);
        assertThat(run(packet(0, payload(0x17, id, 0)), a)).isEqualTo(Route.FORWARD);
        assertThat(run(packet(0, payload(0x19, id)), a)).isEqualTo(Route.DROP);
        ByteBuf empty = command(packet(0, new byte[0]));
        assertThat(client.onCommand(empty, 4, 0, 0, 0, a)).isEqualTo(Route.FORWARD);
        assertThat(client.statementCount()).isEqualTo(1);
    }

    @Test
    void aTruncatedExecuteHeadIsRefused() {
        int id = prepare(SUM, a, 7, 1, 2);
        byte[] exec = execute(id, 0, true, LONGS, longValues(1, 2));
        ByteBuf buf = command(exec);
        assertThat(client.executeHeadLength(id)).isEqualTo(11 + 1 + 4);
        assertThatThrownBy(() -> client.onCommand(buf, 4, 12, exec.length - 4, 0, a))
                .isInstanceOf(IllegalArgumentException.class);
    }

    @org.junit.jupiter.params.ParameterizedTest
    @org.junit.jupiter.params.provider.ValueSource(strings = {"connectorj-server-prepared", "mariadb-connectorj-server-prepared"})
    void capturedDriverSequencesOnOneConnection(String fixture) {
        // What Connector/J 9.7 and MariaDB Connector/J 3.5 sent with useServerPrepStmts=true, and MariaDB's answers.
        List<byte[][]> packets = packets(fixture);
        int serverId = -1;
        int clientId = -1;
        boolean prepareSent = false;
        int executes = 0;
        for (byte[][] packet : packets) {
            byte[] bytes = packet[1];
            boolean fromClient = packet[0][0] == 1;
            ByteBuf buf = command(bytes);
            if (fromClient && bytes[4] == 0x16) {
                assertThat(client.onPrepare(buf, 4, bytes.length - 4)).isEqualTo(Route.FORWARD);
                prepareSent = true;
            } else if (!fromClient && prepareSent && bytes[3] == 1 && bytes[4] == 0) {
                serverId = buf.getIntLE(5);
                clientId = client.onPrepareResponse(buf, 4, bytes.length - 4, a);
                assertThat(buf.getIntLE(5)).isEqualTo(clientId);
                prepareSent = false;
            } else if (fromClient && (bytes[4] == 0x17 || bytes[4] == 0x19) && serverId != -1 || fromClient && bytes[4] == 0x17) {
                int id = buf.getIntLE(5);
                if (id == serverId) {
                    id = clientId;                              // the driver knows the id connguard gave it
                    buf.setIntLE(5, id);
                }
                Route route = client.onCommand(buf, 4, bytes.length - 4, bytes.length - 4, bytes[3], a);
                if (bytes[4] == 0x19) {
                    assertThat(route).isEqualTo(Route.DROP);
                } else {
                    assertThat(route).isEqualTo(Route.FORWARD);
                    executes++;
                    if (id != MySqlPreparedStatements.LAST_PREPARED) {
                        assertThat(id).as("the client's id").isEqualTo(clientId);
                        assertThat(buf.getIntLE(5)).as("rewritten to the server's").isEqualTo(serverId);
                    }
                }
            }
        }
        assertThat(executes).isEqualTo(3);
        // Connector/J closes its statement; MariaDB Connector/J keeps it in its cache until the connection ends
        assertThat(client.statementCount()).isEqualTo(fixture.startsWith("mariadb") ? 1 : 0);
        assertThat(a.lookup(new MySqlServerStatements.Text("SELECT CONCAT(?, '-', ?)".getBytes(java.nio.charset.StandardCharsets.UTF_8))))
                .isNotNull();
    }

    /** The packets of a captured conversation in order: {{1 client / 0 server}, packet bytes}. */
    static List<byte[][]> packets(String fixture) {
        List<byte[][]> packets = new ArrayList<>();
        for (Packets.Chunk chunk : Packets.fixture(fixture)) {
            byte[] bytes = chunk.bytes();
            int i = 0;
            while (i + 4 <= bytes.length) {
                int length = (bytes[i] & 0xFF) | (bytes[i + 1] & 0xFF) << 8 | (bytes[i + 2] & 0xFF) << 16;
                packets.add(new byte[][] {{(byte) (chunk.fromClient() ? 1 : 0)}, java.util.Arrays.copyOfRange(bytes, i, i + 4 + length)});
                i += 4 + length;
            }
        }
        return packets;
    }

    /** The client's command packets of a captured conversation (after the handshake's two client packets). */
    static List<byte[]> clientPackets(String fixture) {
        List<byte[]> out = new ArrayList<>();
        for (byte[][] packet : packets(fixture)) {
            if (packet[0][0] == 1 && packet[1][3] == 0) {
                out.add(packet[1]);
            }
        }
        return out;
    }

    // ------------------------------------------------------------------ helpers

    private int prepare(String sql, MySqlServerStatements server, int serverId, int columns, int params) {
        ByteBuf prep = command(packet(0, payload(0x16, sql)));
        assertThat(client.onPrepare(prep, 4, prep.readableBytes() - 4)).isEqualTo(Route.FORWARD);
        ByteBuf ok = command(prepareResponse(serverId, columns, params, true).get(0));
        int id = client.onPrepareResponse(ok, 4, ok.readableBytes() - 4, server);
        assertThat(ok.getIntLE(5)).isEqualTo(id);
        return id;
    }

    private Route run(byte[] packet, MySqlServerStatements server) {
        ByteBuf buf = command(packet);
        return client.onCommand(buf, 4, packet.length - 4, packet.length - 4, 0, server);
    }

    /** PREPARE_OK and its definitions: parameters, EOF, columns, EOF ({@code deprecateEof}: no EOFs). */
    static List<byte[]> prepareResponse(int serverId, int columns, int params, boolean deprecateEof) {
        List<byte[]> packets = new ArrayList<>();
        int seq = 1;
        packets.add(packet(seq++, payload(0x00, serverId & 0xFF, serverId >>> 8 & 0xFF, 0, 0, columns, 0, params, 0, 0, 0, 0)));
        for (int i = 0; i < params; i++) {
            packets.add(Packets.columnDefinition(seq++, "?"));
        }
        if (params > 0 && !deprecateEof) {
            packets.add(Packets.eof(seq++, 2));
        }
        for (int i = 0; i < columns; i++) {
            packets.add(Packets.columnDefinition(seq++, "c" + i));
        }
        if (columns > 0 && !deprecateEof) {
            packets.add(Packets.eof(seq++, 2));
        }
        return packets;
    }

    /** COM_STMT_EXECUTE: id, flags, iteration count 1, a null bitmap when there are values, the bound flag, types. */
    static byte[] execute(int id, int flags, boolean bound, byte[] types, byte[] values) {
        int params = types != null ? types.length / 2 : values.length == 0 ? 0 : 2;
        byte[] head = payload(0x17, id & 0xFF, id >>> 8 & 0xFF, id >>> 16 & 0xFF, id >>> 24 & 0xFF, flags, 1, 0, 0, 0);
        if (params == 0) {
            return packet(0, head);
        }
        byte[] nullBitmap = new byte[(params + 7) / 8];
        return packet(0, Packets.concat(head, nullBitmap, new byte[] {(byte) (bound ? 1 : 0)},
                bound ? types : new byte[0], values));
    }

    private static byte[] longValues(long x, long y) {
        ByteBuf buf = Unpooled.buffer(16).writeLongLE(x).writeLongLE(y);
        byte[] bytes = ByteBufUtil.getBytes(buf);
        buf.release();
        return bytes;
    }

    private ByteBuf command(byte[] packet) {
        return own(Unpooled.wrappedBuffer(packet.clone()));
    }

    private ByteBuf own(ByteBuf buf) {
        toRelease.add(buf);
        return buf;
    }

    private static byte[] bytes(ByteBuf buf) {
        return ByteBufUtil.getBytes(buf);
    }
}
