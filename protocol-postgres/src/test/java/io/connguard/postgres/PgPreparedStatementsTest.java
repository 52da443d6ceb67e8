package io.connguard.postgres;

import io.connguard.core.testing.LeakGuard;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.UnpooledByteBufAllocator;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static io.connguard.postgres.PgMessages.concat;
import static io.connguard.postgres.PgMessages.query;
import static io.connguard.postgres.PgMessages.sync;
import static io.connguard.postgres.PgModelServer.bind;
import static io.connguard.postgres.PgModelServer.close;
import static io.connguard.postgres.PgModelServer.describe;
import static io.connguard.postgres.PgModelServer.execute;
import static io.connguard.postgres.PgModelServer.parse;
import static org.assertj.core.api.Assertions.assertThat;

@ExtendWith(LeakGuard.class)
class PgPreparedStatementsTest {

    private static final ByteBufAllocator ALLOC = new UnpooledByteBufAllocator(false);
    private static final PgPreparedStatements.Limits LIMITS = new PgPreparedStatements.Limits(100, 1 << 20);

    /** pgjdbc after prepareThreshold: Parse S_n with the first execution, then Bind/Execute, Close when evicted. */
    static final List<byte[]> PGJDBC = List.of(
            concat(parse("S_1", "SELECT a", 23), bind("", "S_1", 10), describe('P', ""), execute(""), sync()),
            concat(bind("", "S_1", 3), execute(""), sync()),
            concat(parse("S_2", "SELECT b"), describe('S', "S_2"), sync()),
            concat(bind("", "S_2", 0), execute(""), sync()),
            concat(close('S', "S_1"), parse("", "SELECT unnamed"), bind("", "", 0), execute(""), sync()),
            concat(bind("", "S_2", 1), execute(""), sync()));

    /** pgbench -M prepared: every statement parsed once, then Bind/Describe/Execute/Sync. */
    static final List<byte[]> PGBENCH = List.of(
            concat(parse("P_0", "SELECT a", 23), sync()),
            concat(bind("", "P_0", 4), describe('P', ""), execute(""), sync()),
            concat(parse("P_1", "SELECT b"), sync(), bind("", "P_1", 0), describe('P', ""), execute(""), sync()),
            concat(bind("", "P_0", 5), describe('P', ""), execute(""), sync()));

    /** node-postgres named query: Parse, Bind, Describe portal, Execute, Sync at once, Parse only the first time. */
    static final List<byte[]> NODE_PG = List.of(
            concat(parse("fetch-user", "SELECT user", 23), bind("", "fetch-user", 2), describe('P', ""), execute(""), sync()),
            concat(bind("", "fetch-user", 2), describe('P', ""), execute(""), sync()),
            concat(bind("", "fetch-user", 2), describe('P', ""), execute(""), sync()));

    // ------------------------------------------------------------------ transparency

    @Test
    void eachClientAloneSeesWhatADirectConnectionAnswers() {
        for (List<byte[]> client : List.of(PGJDBC, PGBENCH, NODE_PG)) {
            for (int mask = 0; mask < 1 << client.size(); mask++) {
                Pool pool = new Pool(2, 100);
                Client c = new Client(client);
                for (int t = 0; t < client.size(); t++) {
                    pool.run(c, t, (mask >> t) & 1, Integer.MAX_VALUE, Integer.MAX_VALUE, false);
                }
                c.assertSawDirectAnswers();
            }
        }
    }

    @Test
    void twoClientsOnTwoServerConnectionsInEveryInterleaving() {
        int runs = 0;
        for (List<List<byte[]>> pair : List.of(List.of(PGJDBC, PGBENCH), List.of(PGBENCH, NODE_PG), List.of(NODE_PG, PGJDBC))) {
            List<byte[]> first = pair.get(0).subList(0, Math.min(4, pair.get(0).size()));
            List<byte[]> second = pair.get(1).subList(0, 3);
            int total = first.size() + second.size();
            for (int order = 0; order < 1 << total; order++) {
                if (Integer.bitCount(order) != first.size()) {
                    continue;
                }
                for (int servers = 0; servers < 1 << total; servers++) {
                    for (int capacity : new int[] {1, 100}) {
                        Pool pool = new Pool(2, capacity);
                        Client a = new Client(first);
                        Client b = new Client(second);
                        for (int step = 0; step < total; step++) {
                            Client c = ((order >> step) & 1) != 0 ? a : b;
                            pool.run(c, c.next++, (servers >> step) & 1, Integer.MAX_VALUE, Integer.MAX_VALUE, step % 2 == 0);
                        }
                        a.assertSawDirectAnswers();
                        b.assertSawDirectAnswers();
                        runs++;
                    }
                }
            }
        }
        assertThat(runs).isGreaterThan(5000);
    }

    @Test
    void splitAtEveryOffsetOfEitherStream() {
        byte[] all = concat(PGJDBC.toArray(new byte[0][]));
        for (int split = 0; split <= all.length; split++) {
            for (int serverChunk : new int[] {1, 2, 3, 7, Integer.MAX_VALUE}) {
                runSplit(split, serverChunk);
            }
        }
        for (int clientChunk : new int[] {1, 4, Integer.MAX_VALUE}) {
            for (int serverChunk = 1; serverChunk < 40; serverChunk++) {
                Pool pool = new Pool(2, 100);
                Client c = new Client(PGJDBC);
                for (int t = 0; t < PGJDBC.size(); t++) {
                    pool.run(c, t, t % 2, clientChunk, serverChunk, true);
                }
                c.assertSawDirectAnswers();
            }
        }
    }

    /** The whole pgjdbc stream as one client write cut at {@code split}, served on one connection. */
    private void runSplit(int split, int serverChunk) {
        byte[] all = concat(PGJDBC.toArray(new byte[0][]));
        Pool pool = new Pool(1, 100);
        Client c = new Client(List.of(all));
        pool.feedClient(c, 0, Arrays.copyOfRange(all, 0, split), serverChunk, true);
        pool.feedClient(c, 0, Arrays.copyOfRange(all, split, all.length), serverChunk, true);
        pool.flushServer(c, 0, serverChunk);
        c.assertSawDirectAnswers();
    }

    @Test
    void sameTextIsPreparedOncePerConnectionForAllClients() {
        Pool pool = new Pool(1, 100);
        Client a = new Client(List.of(concat(parse("S_1", "SELECT a", 23), sync())));
        Client b = new Client(List.of(concat(parse("P_0", "SELECT a", 23), bind("", "P_0", 1), execute(""), sync())));
        pool.run(a, 0, 0, Integer.MAX_VALUE, Integer.MAX_VALUE, false);
        pool.run(b, 0, 0, Integer.MAX_VALUE, Integer.MAX_VALUE, false);
        a.assertSawDirectAnswers();
        b.assertSawDirectAnswers();
        assertThat(pool.models[0].received).containsExactly("P cg_1 SELECT a", "S", "B  cg_1", "E ", "S");
    }

    @Test
    void theStatementIsPreparedWhereverTheClientLands() {
        Pool pool = new Pool(2, 100);
        Client c = new Client(PGBENCH.subList(0, 2));
        pool.run(c, 0, 0, Integer.MAX_VALUE, Integer.MAX_VALUE, false);
        pool.run(c, 1, 1, Integer.MAX_VALUE, Integer.MAX_VALUE, false);
        c.assertSawDirectAnswers();
        assertThat(pool.models[1].received).containsExactly("P cg_1 SELECT a", "B  cg_1", "D P ", "E ", "S");
    }

    // ------------------------------------------------------------------ eviction

    @Test
    void leastRecentlyUsedStatementIsClosedBeyondTheCapacity() {
        Pool pool = new Pool(1, 2);
        Client c = new Client(List.of(
                concat(parse("a", "SELECT 1"), parse("b", "SELECT 2"), sync()),
                concat(bind("", "a", 0), execute(""), sync()),
                concat(parse("c", "SELECT 3"), sync()),
                concat(bind("", "b", 0), execute(""), sync()),
                sync()));
        for (int t = 0; t < 5; t++) {
            pool.run(c, t, 0, Integer.MAX_VALUE, Integer.MAX_VALUE, false);
        }
        c.assertSawDirectAnswers();
        // statements are closed only between transactions, before the next one starts
        assertThat(pool.models[0].received).containsExactly(
                "P cg_1 SELECT 1", "P cg_2 SELECT 2", "S",
                "B  cg_1", "E ", "S",
                "P cg_3 SELECT 3", "S",
                "C S cg_2", "P cg_4 SELECT 2", "B  cg_4", "E ", "S",
                "C S cg_1", "S");
        assertThat(pool.models[0].statementNames()).containsExactlyInAnyOrder("cg_3", "cg_4");
        assertThat(pool.states[0].preparedCount()).isEqualTo(2);
    }

    @Test
    void aStatementIsNotClosedWhileATransactionMayHavePortalsFromIt() {
        Pool pool = new Pool(1, 1);
        Client c = new Client(List.of(
                concat(parse("S_1", "SELECT 1"), parse("S_2", "SELECT 2"), sync()),
                concat(query("BEGIN"), bind("p1", "S_1", 0), bind("p2", "S_2", 0), execute("p1"), execute("p2"), sync()),
                concat(bind("p3", "S_1", 0), execute("p1"), execute("p3"), sync(), query("COMMIT")),
                sync()));
        for (int t = 0; t < 4; t++) {
            pool.run(c, t, 0, Integer.MAX_VALUE, Integer.MAX_VALUE, false);
        }
        c.assertSawDirectAnswers();
        assertThat(pool.states[0].preparedCount()).isEqualTo(1);
    }

    // ------------------------------------------------------------------ errors

    @Test
    void anInjectedParseThatFailsReachesTheClientAsTheErrorOfItsBind() {
        Pool pool = new Pool(2, 100);
        Client c = new Client(List.of(
                concat(parse("S_1", "SELECT dropped"), sync()),
                concat(bind("", "S_1", 0), execute(""), sync()),
                concat(bind("", "S_1", 0), execute(""), sync())));
        pool.run(c, 0, 0, Integer.MAX_VALUE, Integer.MAX_VALUE, false);
        pool.models[1].failParsesOf("SELECT dropped");
        pool.run(c, 1, 1, Integer.MAX_VALUE, Integer.MAX_VALUE, false);
        assertThat(c.received()).endsWith(concat(PgModelServer.errorResponse("42P01", "relation \"dropped\" does not exist"),
                PgMessages.readyForQuery('I')));
        assertThat(pool.states[1].preparedCount()).isZero();
        assertThat(pool.states[1].idle()).isTrue();
        pool.models[1].parsesSucceed();
        pool.run(c, 2, 1, Integer.MAX_VALUE, Integer.MAX_VALUE, false);
        assertThat(pool.models[1].received).containsExactly("P cg_1 SELECT dropped", "skipped B", "skipped E", "S",
                "P cg_2 SELECT dropped", "B  cg_2", "E ", "S");
        assertThat(new String(c.lastResponse())).contains("SELECT dropped");
    }

    @Test
    void aClientParseThatFailsIsForgottenAndItsNameFree() {
        Pool pool = new Pool(1, 100);
        pool.models[0].failParsesOf("SELECT broken");
        Client c = new Client(List.of(
                concat(parse("S_1", "SELECT broken"), bind("", "S_1", 0), execute(""), sync()),
                concat(parse("S_1", "SELECT fixed"), bind("", "S_1", 0), execute(""), sync())));
        pool.run(c, 0, 0, Integer.MAX_VALUE, Integer.MAX_VALUE, false);
        pool.models[0].parsesSucceed();
        pool.run(c, 1, 0, Integer.MAX_VALUE, Integer.MAX_VALUE, false);
        assertThat(new String(c.lastResponse())).contains("SELECT fixed");
        assertThat(c.statements.count()).isEqualTo(1);
        assertThat(pool.states[0].preparedCount()).isEqualTo(1);
    }

    @Test
    void aStalePlanErrorReachesTheClientAndTheStatementIsPreparedAfresh() {
        Pool pool = new Pool(1, 100);
        Client c = new Client(List.of(
                concat(parse("S_1", "SELECT *"), bind("", "S_1", 0), execute(""), sync()),
                concat(bind("", "S_1", 0), execute(""), sync()),
                concat(bind("", "S_1", 0), execute(""), sync())));
        pool.run(c, 0, 0, Integer.MAX_VALUE, Integer.MAX_VALUE, false);
        pool.models[0].makeStale("cg_1");
        pool.run(c, 1, 0, Integer.MAX_VALUE, Integer.MAX_VALUE, false);
        assertThat(c.lastResponse()).isEqualTo(concat(
                PgModelServer.errorResponse("0A000", "cached plan must not change result type"), PgMessages.readyForQuery('I')));
        pool.run(c, 2, 0, Integer.MAX_VALUE, Integer.MAX_VALUE, false);
        assertThat(new String(c.lastResponse())).contains("SELECT *");
        assertThat(pool.models[0].received).endsWith("C S cg_1", "P cg_2 SELECT *", "B  cg_2", "E ", "S");
        assertThat(pool.models[0].statementNames()).containsExactly("cg_2");
    }

    @Test
    void duplicateAndUnknownNamesGetTheServersErrorsInOrder() {
        Pool pool = new Pool(2, 100);
        Client c = new Client(List.of(
                concat(parse("S_1", "SELECT a"), sync()),
                concat(bind("", "S_1", 0), execute(""), parse("S_1", "SELECT b"), bind("", "S_1", 0), execute(""), sync()),
                concat(bind("", "nope", 0), execute(""), sync(), describe('S', "nope"), sync()),
                concat(parse("S_1", "SELECT c"), sync(), bind("", "S_1", 1), execute(""), sync())));
        for (int t = 0; t < 4; t++) {
            pool.run(c, t, t % 2, 3, 2, true);
        }
        c.assertSawDirectAnswers();
    }

    @Test
    void closeForgetsTheClientsNameButKeepsTheServerStatement() {
        Pool pool = new Pool(1, 100);
        Client c = new Client(List.of(
                concat(parse("S_1", "SELECT a"), sync()),
                concat(close('S', "S_1"), close('S', "never"), sync()),
                concat(bind("", "S_1", 0), sync()),
                concat(parse("S_1", "SELECT a"), sync())));
        for (int t = 0; t < 4; t++) {
            pool.run(c, t, 0, Integer.MAX_VALUE, Integer.MAX_VALUE, false);
        }
        c.assertSawDirectAnswers();
        assertThat(pool.models[0].received).containsExactly("P cg_1 SELECT a", "S", "S", "S", "S");
    }

    @Test
    void discardAllForgetsTheClientsAndTheConnectionsStatements() {
        Pool pool = new Pool(1, 100);
        Client c = new Client(List.of(
                concat(parse("S_1", "SELECT a"), sync()),
                query("DISCARD ALL"),
                concat(bind("", "S_1", 0), execute(""), sync()),
                concat(parse("S_1", "SELECT a"), bind("", "S_1", 0), execute(""), sync())));
        for (int t = 0; t < 4; t++) {
            pool.run(c, t, 0, Integer.MAX_VALUE, Integer.MAX_VALUE, false);
        }
        c.assertSawDirectAnswers();
        assertThat(pool.models[0].received).endsWith("P cg_2 SELECT a", "B  cg_2", "E ", "S");
    }

    @Test
    void limitsGiveAnErrorNamingThemInsteadOfGrowing() {
        Pool pool = new Pool(1, 100);
        Client c = new Client(List.of(
                concat(parse("a", "SELECT 1"), parse("b", "SELECT 2"), sync()),
                concat(parse("c", "SELECT 3"), bind("", "a", 0), execute(""), sync()),
                concat(bind("", "a", 0), execute(""), sync())), new PgPreparedStatements.Limits(2, 1000));
        for (int t = 0; t < 3; t++) {
            pool.run(c, t, 0, Integer.MAX_VALUE, Integer.MAX_VALUE, false);
        }
        assertThat(new String(c.received())).contains("C53400", "at most 2 prepared statements");
        assertThat(new String(c.lastResponse())).contains("SELECT 1");
        assertThat(c.statements.count()).isEqualTo(2);

        Client big = new Client(List.of(concat(parse("a", "SELECT '" + "x".repeat(2000) + "'"), sync())),
                new PgPreparedStatements.Limits(10, 1000));
        pool.run(big, 0, 0, Integer.MAX_VALUE, Integer.MAX_VALUE, false);
        assertThat(new String(big.received())).contains("C53400", "at most 1000 bytes");
        assertThat(big.statements.bytes()).isZero();
    }

    @Test
    void pinningTextsArePinnedAtParseAndAtEveryBind() {
        Pool pool = new Pool(1, 100);
        Client c = new Client(List.of(
                concat(parse("lock", "SELECT pg_advisory_lock($1)", 20), sync()),
                concat(bind("", "lock", 1), execute(""), sync()),
                concat(parse("plain", "SELECT 1"), bind("", "plain", 0), execute(""), sync())));
        for (int t = 0; t < 3; t++) {
            pool.run(c, t, 0, Integer.MAX_VALUE, Integer.MAX_VALUE, false);
        }
        assertThat(c.pins).containsExactly(PgPin.ADVISORY_LOCK.bit(), PgPin.ADVISORY_LOCK.bit());
    }

    @Test
    void aBindsParametersAreForwardedAsASliceOfTheClientsBuffer() {
        Pool pool = new Pool(1, 100);
        byte[] big = concat(bind("", "S_1", 1 << 20), execute(""), sync());
        Client c = new Client(List.of(concat(parse("S_1", "SELECT a"), sync()), big));
        pool.run(c, 0, 0, Integer.MAX_VALUE, Integer.MAX_VALUE, false);
        ByteBuf in = ALLOC.heapBuffer(big.length).writeBytes(big);
        List<ByteBuf> written = new ArrayList<>();
        PgPreparedStatements.Output out = new PgPreparedStatements.Output() {
            @Override public void toServer(ByteBuf buf) {
                written.add(buf);
            }
            @Override public void toClient(ByteBuf buf) {
                buf.release();
            }
            @Override public void pinned(int pins) {
            }
            @Override public void lostSync(String reason) {
                throw new AssertionError(reason);
            }
        };
        byte[] array = in.array();
        c.statements.clientBytes(in, pool.states[0], out);
        assertThat(written).anySatisfy(buf -> {
            assertThat(buf.readableBytes()).isGreaterThan(1 << 20);
            assertThat(buf.hasArray() && buf.array() == array).as("a slice of the client's buffer").isTrue();
        });
        ByteArrayOutputStream upstream = new ByteArrayOutputStream();
        for (ByteBuf buf : written) {
            byte[] bytes = new byte[buf.readableBytes()];
            buf.readBytes(bytes);
            upstream.writeBytes(bytes);
            buf.release();
        }
        assertThat(in.refCnt()).isZero();
        byte[] expected = concat(PgMessages.message('B', PgMessages.cstring(""), PgMessages.cstring("cg_1"),
                Arrays.copyOfRange(big, 1 + 4 + 1 + 4, big.length - execute("").length - sync().length)), execute(""), sync());
        assertThat(upstream.toByteArray()).isEqualTo(expected);
    }

    @Test
    void randomMessagesNeverThrowNorLeak() {
        java.util.Random random = new java.util.Random(17);
        byte[] types = "PBDCESQFHcfdXpZ12n3tTIs".getBytes(java.nio.charset.StandardCharsets.US_ASCII);
        for (int round = 0; round < 2000; round++) {
            PgServerStatements server = new PgServerStatements(1 + random.nextInt(3), ALLOC);
            PgPreparedStatements client = new PgPreparedStatements(new PgPreparedStatements.Limits(3, 200), ALLOC);
            List<String> lost = new ArrayList<>();
            PgPreparedStatements.Output out = new PgPreparedStatements.Output() {
                @Override public void toServer(ByteBuf buf) {
                    buf.release();
                }
                @Override public void toClient(ByteBuf buf) {
                    buf.release();
                }
                @Override public void pinned(int pins) {
                }
                @Override public void lostSync(String reason) {
                    lost.add(reason);
                }
            };
            for (int i = 0; i < 20; i++) {
                ByteArrayOutputStream stream = new ByteArrayOutputStream();
                for (int m = random.nextInt(4); m >= 0; m--) {
                    byte[] body = new byte[random.nextInt(12)];
                    for (int b = 0; b < body.length; b++) {
                        body[b] = random.nextInt(3) == 0 ? 0 : (byte) "SP_ab".charAt(random.nextInt(5));
                    }
                    stream.writeBytes(PgMessages.message((char) types[random.nextInt(types.length)], body));
                }
                byte[] bytes = stream.toByteArray();
                if (random.nextInt(50) == 0) {
                    bytes[1] = (byte) 0xFF;         // a negative length now and then
                }
                for (int at = 0; at < bytes.length; ) {
                    int n = 1 + random.nextInt(bytes.length - at);
                    ByteBuf in = ALLOC.heapBuffer(n).writeBytes(bytes, at, n);
                    if (random.nextBoolean()) {
                        client.clientBytes(in, server, out);
                    } else {
                        server.serverBytes(in, client, out);
                    }
                    assertThat(in.refCnt()).isZero();
                    at += n;
                }
            }
        }
    }

    // ------------------------------------------------------------------ the rig

    /** A client: its transactions, its PgPreparedStatements, what it received. */
    static final class Client implements PgPreparedStatements.Output {
        final List<byte[]> transactions;
        final PgPreparedStatements statements;
        final ByteArrayOutputStream received = new ByteArrayOutputStream();
        final ByteArrayOutputStream upstream = new ByteArrayOutputStream();
        final List<Integer> pins = new ArrayList<>();
        int next;
        int lastStart;

        Client(List<byte[]> transactions) {
            this(transactions, LIMITS);
        }

        Client(List<byte[]> transactions, PgPreparedStatements.Limits limits) {
            this.transactions = transactions;
            this.statements = new PgPreparedStatements(limits, ALLOC);
        }

        @Override
        public void toServer(ByteBuf buf) {
            upstream.writeBytes(drain(buf));
        }

        @Override
        public void toClient(ByteBuf buf) {
            received.writeBytes(drain(buf));
        }

        @Override
        public void pinned(int mask) {
            pins.add(mask);
        }

        @Override
        public void lostSync(String reason) {
            throw new AssertionError("lost sync: " + reason);
        }

        byte[] received() {
            return received.toByteArray();
        }

        byte[] lastResponse() {
            byte[] all = received();
            return Arrays.copyOfRange(all, lastStart, all.length);
        }

        /** Everything received equals what one direct connection answers to the whole stream. */
        void assertSawDirectAnswers() {
            byte[] expected = new PgModelServer().receive(concat(transactions.toArray(new byte[0][])));
            assertThat(types(received())).isEqualTo(types(expected));
            assertThat(received()).isEqualTo(expected);
        }
    }

    /** Server connections: each a PgServerStatements in front of a model backend. */
    static final class Pool {
        final PgServerStatements[] states;
        final PgModelServer[] models;
        final ByteArrayOutputStream[] pendingUpstream;

        Pool(int size, int capacity) {
            states = new PgServerStatements[size];
            models = new PgModelServer[size];
            pendingUpstream = new ByteArrayOutputStream[size];
            for (int i = 0; i < size; i++) {
                states[i] = new PgServerStatements(capacity, ALLOC);
                models[i] = new PgModelServer();
                pendingUpstream[i] = new ByteArrayOutputStream();
            }
        }

        /**
         * Runs transaction {@code t} of {@code client} on connection {@code server}: the client's bytes in
         * pieces of {@code clientChunk}, the server's answers in pieces of {@code serverChunk}; with
         * {@code interleaved} the server answers each piece before the client sends the next.
         */
        void run(Client client, int t, int server, int clientChunk, int serverChunk, boolean interleaved) {
            assertThat(states[server].idle()).isTrue();
            assertThat(client.statements.atBoundary()).isTrue();
            client.lastStart = client.received.size();
            byte[] bytes = client.transactions.get(t);
            for (int at = 0; at < bytes.length; at += clientChunk) {
                feedClient(client, server, Arrays.copyOfRange(bytes, at, (int) Math.min(bytes.length, (long) at + clientChunk)),
                        serverChunk, interleaved);
            }
            flushServer(client, server, serverChunk);
            assertThat(states[server].idle()).as("idle after the transaction").isTrue();
        }

        void feedClient(Client client, int server, byte[] bytes, int serverChunk, boolean interleaved) {
            ByteBuf in = ALLOC.heapBuffer(Math.max(bytes.length, 1)).writeBytes(bytes);
            client.statements.clientBytes(in, states[server], client);
            assertThat(in.refCnt()).isZero();
            pendingUpstream[server].writeBytes(client.upstream.toByteArray());
            client.upstream.reset();
            if (interleaved) {
                flushServer(client, server, serverChunk);
            }
        }

        /** The model answers every whole message sent so far; the answers go back in pieces. */
        void flushServer(Client client, int server, int serverChunk) {
            byte[] pending = pendingUpstream[server].toByteArray();
            int whole = wholeMessages(pending);
            pendingUpstream[server].reset();
            pendingUpstream[server].write(pending, whole, pending.length - whole);
            byte[] answers = models[server].receive(Arrays.copyOf(pending, whole));
            for (int at = 0; at < answers.length; at += serverChunk) {
                byte[] piece = Arrays.copyOfRange(answers, at, (int) Math.min(answers.length, (long) at + serverChunk));
                ByteBuf in = ALLOC.heapBuffer(piece.length).writeBytes(piece);
                states[server].serverBytes(in, client.statements, client);
                assertThat(in.refCnt()).isZero();
            }
        }

        private static int wholeMessages(byte[] bytes) {
            int at = 0;
            while (bytes.length - at >= 5) {
                int length = ByteBuffer.wrap(bytes, at + 1, 4).getInt();
                if (bytes.length - at < 1 + length) {
                    break;
                }
                at += 1 + length;
            }
            return at;
        }
    }

    private static byte[] drain(ByteBuf buf) {
        byte[] bytes = new byte[buf.readableBytes()];
        buf.readBytes(bytes);
        buf.release();
        return bytes;
    }

    /** Message types in order, for readable failures. */
    static String types(byte[] stream) {
        StringBuilder out = new StringBuilder();
        ByteBuffer in = ByteBuffer.wrap(stream);
        while (in.remaining() >= 5) {
            char type = (char) in.get();
            int length = in.getInt();
            out.append(type);
            in.position(Math.min(in.limit(), in.position() + length - 4));
        }
        return out.toString();
    }
}
