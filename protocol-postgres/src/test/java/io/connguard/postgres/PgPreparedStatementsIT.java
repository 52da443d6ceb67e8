package io.connguard.postgres;

import io.connguard.core.testing.LeakGuard;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.UnpooledByteBufAllocator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static io.connguard.postgres.PgMessages.concat;
import static io.connguard.postgres.PgMessages.cstring;
import static io.connguard.postgres.PgMessages.int16;
import static io.connguard.postgres.PgMessages.int32;
import static io.connguard.postgres.PgMessages.message;
import static io.connguard.postgres.PgMessages.query;
import static io.connguard.postgres.PgMessages.sync;
import static io.connguard.postgres.PgModelServer.close;
import static io.connguard.postgres.PgModelServer.describe;
import static io.connguard.postgres.PgModelServer.execute;
import static io.connguard.postgres.PgModelServer.parse;
import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.fail;

/**
 * {@link PgPreparedStatements} and {@link PgServerStatements} against the real server: clients' message
 * streams are rewritten onto two server connections opened with plain sockets, and each client must read
 * byte for byte what the same stream gets on a connection of its own; then the failures that only a real
 * server produces (a dropped table under an injected Parse, a cached plan whose result type changed).
 */
@ExtendWith(LeakGuard.class)
class PgPreparedStatementsIT {

    private static final ByteBufAllocator ALLOC = new UnpooledByteBufAllocator(false);
    private static final PgPreparedStatements.Limits LIMITS = new PgPreparedStatements.Limits(100, 1 << 20);
    private static final String APPLICATION = "cg_prepared_it";

    private final List<PgRawConnection> opened = new ArrayList<>();

    /** pgjdbc-like: Parse with the first execution, Describe statement, Close, an unnamed statement. */
    private static final List<byte[]> JDBC = List.of(
            concat(parse("S_1", "SELECT $1::int + 1", 23), bind("S_1", "41"), describe('P', ""), execute(""), sync()),
            concat(bind("S_1", "1"), execute(""), sync()),
            concat(parse("S_2", "SELECT 'two'::text, $1::text", 25), describe('S', "S_2"), sync()),
            concat(bind("S_2", "x"), describe('P', ""), execute(""), sync()),
            concat(close('S', "S_1"), parse("", "SELECT 3"), bind("", null), execute(""), sync()),
            concat(bind("S_2", "y"), execute(""), sync()));

    /** pgbench -M prepared-like, sharing one text with the pgjdbc-like client. */
    private static final List<byte[]> BENCH = List.of(
            concat(parse("P_0", "SELECT $1::int + 1", 23), sync()),
            concat(bind("P_0", "5"), describe('P', ""), execute(""), sync()),
            concat(parse("P_1", "SELECT now() IS NOT NULL"), sync(), bind("P_1", null), describe('P', ""), execute(""), sync()),
            concat(bind("P_0", "6"), describe('P', ""), execute(""), sync()));

    @AfterEach
    void closeConnections() throws IOException {
        for (PgRawConnection raw : opened) {
            raw.close();
        }
    }

    @Test
    void twoClientsOnTwoServerConnectionsReadWhatTheirOwnConnectionWouldSay() throws IOException {
        byte[] jdbcDirect = direct(JDBC);
        byte[] benchDirect = direct(BENCH);
        int[][] orders = {{0, 0, 0, 0, 0, 0, 1, 1, 1, 1}, {0, 1, 0, 1, 0, 1, 0, 1, 0, 0}, {1, 1, 0, 0, 1, 0, 1, 0, 0, 0}};
        for (int capacity : new int[] {1, 100}) {
            for (int[] order : orders) {
                for (int placement = 0; placement < 4; placement++) {
                    Server[] servers = {new Server(capacity), new Server(capacity)};
                    Client jdbc = new Client(JDBC);
                    Client bench = new Client(BENCH);
                    for (int step = 0; step < order.length; step++) {
                        Client client = order[step] == 0 ? jdbc : bench;
                        int server = placement == 0 ? step % 2 : placement == 1 ? 0 : placement == 2 ? 1 : (step / 3) % 2;
                        client.run(client.next++, servers[server]);
                    }
                    assertThat(jdbc.received.toByteArray()).as("pgjdbc-like, capacity %d", capacity).isEqualTo(jdbcDirect);
                    assertThat(bench.received.toByteArray()).as("pgbench-like, capacity %d", capacity).isEqualTo(benchDirect);
                    for (Server server : servers) {
                        assertThat(server.state.lost()).isFalse();
                        // beyond the capacity only by what the last transaction used: closes wait for its end
                        assertThat(server.state.preparedCount()).isLessThanOrEqualTo(capacity + 2);
                        assertThat(server.serverSideNames()).hasSize(server.state.preparedCount());
                    }
                }
            }
        }
    }

    @Test
    void anInjectedParseOfADroppedTableFailsTheBindAndTheConnectionStaysUsable() throws Exception {
        String table = PgIt.unique("prepared");
        sql("CREATE TABLE " + table + " (a int); INSERT INTO " + table + " VALUES (7)");
        try {
            Server first = new Server(100);
            Server second = new Server(100);
            Client client = new Client(List.of(
                    concat(parse("S_1", "SELECT a FROM " + table), bind("S_1", null), execute(""), sync()),
                    concat(bind("S_1", null), execute(""), sync()),
                    concat(bind("S_1", null), execute(""), sync())));
            client.run(0, first);
            sql("DROP TABLE " + table);
            client.run(1, second);
            assertThat(types(client.last())).isEqualTo("EZ");
            assertThat(new String(client.last(), StandardCharsets.UTF_8)).contains("C42P01", table);
            assertThat(second.state.preparedCount()).isZero();
            sql("CREATE TABLE " + table + " (a int); INSERT INTO " + table + " VALUES (8)");
            client.run(2, second);
            assertThat(types(client.last())).isEqualTo("2DCZ");
            assertThat(new String(client.last(), StandardCharsets.UTF_8)).contains("8");
        } finally {
            sql("DROP TABLE IF EXISTS " + table);
        }
    }

    @Test
    void aCachedPlanWhoseResultTypeChangedFailsOnceThenTheStatementIsPreparedAfresh() throws Exception {
        String table = PgIt.unique("stale");
        sql("CREATE TABLE " + table + " (a int); INSERT INTO " + table + " VALUES (1)");
        try {
            Server server = new Server(100);
            byte[] run = concat(bind("S_1", null), execute(""), sync());
            Client client = new Client(List.of(concat(parse("S_1", "SELECT * FROM " + table), run), run, run, run));
            client.run(0, server);
            sql("ALTER TABLE " + table + " ADD COLUMN b text DEFAULT 'new'");
            client.run(1, server);
            assertThat(types(client.last())).isEqualTo("EZ");
            assertThat(new String(client.last(), StandardCharsets.UTF_8)).contains("C0A000", "cached plan must not change result type");
            client.run(2, server);
            assertThat(types(client.last())).isEqualTo("2DCZ");
            assertThat(new String(client.last(), StandardCharsets.UTF_8)).contains("new");
            client.run(3, server);
            assertThat(types(client.last())).isEqualTo("2DCZ");
            assertThat(server.serverSideNames()).containsExactly("cg_2");
        } finally {
            sql("DROP TABLE IF EXISTS " + table);
        }
    }

    @Test
    void discardAllAndDuplicateNamesAnswerAsTheServerWould() throws IOException {
        List<byte[]> stream = List.of(
                concat(parse("S_1", "SELECT 1"), sync()),
                concat(parse("S_1", "SELECT 2"), bind("S_1", null), execute(""), sync()),
                query("DISCARD ALL"),
                concat(bind("S_1", null), execute(""), sync()),
                concat(parse("S_1", "SELECT 3"), bind("S_1", null), execute(""), sync()));
        byte[] expected = direct(stream);
        Server[] servers = {new Server(100), new Server(100)};
        Client client = new Client(stream);
        for (int t = 0; t < stream.size(); t++) {
            client.run(t, servers[t % 2]);
        }
        assertThat(types(client.received.toByteArray())).isEqualTo(types(expected));
        // connguard's own errors carry S, V, C and M; the server adds where in its source it raised them
        assertThat(withoutSourceFields(client.received.toByteArray())).isEqualTo(withoutSourceFields(expected));
    }

    /** The stream with the F, L and R fields (file, line, routine) removed from every ErrorResponse. */
    private static byte[] withoutSourceFields(byte[] stream) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteBuffer in = ByteBuffer.wrap(stream);
        while (in.hasRemaining()) {
            byte type = in.get();
            byte[] body = new byte[in.getInt() - 4];
            in.get(body);
            if (type == 'E') {
                ByteArrayOutputStream fields = new ByteArrayOutputStream();
                int at = 0;
                while (body[at] != 0) {
                    int end = at;
                    while (body[end] != 0) {
                        end++;
                    }
                    if (body[at] != 'F' && body[at] != 'L' && body[at] != 'R') {
                        fields.write(body, at, end - at + 1);
                    }
                    at = end + 1;
                }
                fields.write(0);
                body = fields.toByteArray();
            }
            out.writeBytes(message((char) type, body));
        }
        return out.toByteArray();
    }

    // ------------------------------------------------------------------ helpers

    /** A Bind of the unnamed portal with one text parameter (none when {@code value} is null). */
    private static byte[] bind(String statement, String value) {
        if (value == null) {
            return message('B', cstring(""), cstring(statement), int16(0), int16(0), int16(0));
        }
        byte[] bytes = value.getBytes(StandardCharsets.UTF_8);
        return message('B', cstring(""), cstring(statement), int16(0), int16(1), int32(bytes.length), bytes, int16(0));
    }

    /** What the stream reads on a connection of its own. */
    private byte[] direct(List<byte[]> stream) throws IOException {
        PgRawConnection raw = open();
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (byte[] transaction : stream) {
            raw.write(transaction);
            int ready = 0;
            int owed = count(transaction, 'S') + count(transaction, 'Q');
            while (ready < owed) {
                byte[] message = raw.readMessage();
                out.writeBytes(message);
                if (message[0] == 'Z') {
                    ready++;
                }
            }
        }
        return out.toByteArray();
    }

    private static void sql(String sql) throws SQLException {
        try (Connection connection = PgIt.direct(); Statement statement = connection.createStatement()) {
            statement.execute(sql);
        }
    }

    private PgRawConnection open() throws IOException {
        PgRawConnection raw = new PgRawConnection(PgIt.db(), APPLICATION);
        opened.add(raw);
        return raw;
    }

    private static int count(byte[] stream, char type) {
        int n = 0;
        for (int at = 0; at < stream.length; at += 1 + ByteBuffer.wrap(stream, at + 1, 4).getInt()) {
            if (stream[at] == type) {
                n++;
            }
        }
        return n;
    }

    private static String types(byte[] stream) {
        return PgPreparedStatementsTest.types(stream);
    }

    /** One server connection: a socket and its PgServerStatements. */
    private final class Server {
        final PgRawConnection raw;
        final PgServerStatements state;

        Server(int capacity) throws IOException {
            raw = open();
            state = new PgServerStatements(capacity, ALLOC);
        }

        List<String> serverSideNames() throws IOException {
            return raw.preparedStatementNames();
        }
    }

    /** A client: its transactions, its statements, what it read. */
    private static final class Client implements PgPreparedStatements.Output {
        final List<byte[]> transactions;
        final PgPreparedStatements statements = new PgPreparedStatements(LIMITS, ALLOC);
        final ByteArrayOutputStream received = new ByteArrayOutputStream();
        private Server serving;
        private int lastStart;
        int next;

        Client(List<byte[]> transactions) {
            this.transactions = transactions;
        }

        /** Runs transaction {@code t} on {@code server} and reads until the server connection is idle. */
        void run(int t, Server server) throws IOException {
            serving = server;
            lastStart = received.size();
            byte[] bytes = transactions.get(t);
            statements.clientBytes(ALLOC.heapBuffer(bytes.length).writeBytes(bytes), server.state, this);
            while (!server.state.idle()) {
                byte[] message = server.raw.readMessage();
                server.state.serverBytes(ALLOC.heapBuffer(message.length).writeBytes(message), statements, this);
            }
        }

        byte[] last() {
            byte[] all = received.toByteArray();
            return Arrays.copyOfRange(all, lastStart, all.length);
        }

        @Override
        public void toServer(ByteBuf buf) {
            try {
                byte[] bytes = new byte[buf.readableBytes()];
                buf.readBytes(bytes);
                serving.raw.write(bytes);
            } catch (IOException e) {
                throw new IllegalStateException(e);
            } finally {
                buf.release();
            }
        }

        @Override
        public void toClient(ByteBuf buf) {
            byte[] bytes = new byte[buf.readableBytes()];
            buf.readBytes(bytes);
            buf.release();
            received.writeBytes(bytes);
        }

        @Override
        public void pinned(int pins) {
        }

        @Override
        public void lostSync(String reason) {
            fail("lost sync: " + reason);
        }
    }
}
