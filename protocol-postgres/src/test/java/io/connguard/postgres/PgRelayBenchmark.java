package io.connguard.postgres;

import io.connguard.core.api.ListenerInfo;
import io.connguard.core.api.ProtocolSession;
import io.connguard.core.api.SessionState;
import io.connguard.core.testing.CountingSessionContext;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import org.openjdk.jmh.annotations.AuxCounters;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

import java.io.ByteArrayOutputStream;
import java.net.InetSocketAddress;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * The PostgreSQL half of the relay path on one core: a {@link PgSession} past its start-up is fed the
 * command phase of a recorded conversation, chunk by chunk as TCP delivered it, over and over (scanning
 * both directions, tracking the state, capturing the statement text, handing each buffer on). The
 * {@code bytes} counter is the throughput in bytes per second; {@code -prof gc} shows the allocation per
 * operation, which must be ~0. Not a test: run it with {@code bench/jmh.sh}.
 *
 * <p>Conversations: the pgbench fixtures ({@code -S} in each query mode: tiny messages, a state change per
 * query) and {@code datarows}, a made-up result of 1,000 rows of 110 bytes read in 16 KiB chunks (many
 * messages per buffer, a state change per 110 KB).
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {"-Dio.netty.leakDetection.level=disabled"})
public class PgRelayBenchmark {

    /** Bytes relayed (both directions), reported by JMH as a rate. */
    @AuxCounters(AuxCounters.Type.OPERATIONS)
    @State(Scope.Thread)
    public static class Relayed {
        public long bytes;

        @Setup(Level.Iteration)
        public void reset() {
            bytes = 0;
        }
    }

    @Param({"pgbench-simple", "pgbench-extended", "pgbench-prepared", "datarows"})
    public String conversation;

    private CountingSessionContext context;
    private ProtocolSession session;
    private ByteBuf[] chunks;
    private boolean[] fromClient;
    private long bytesPerPass;

    @Setup(Level.Trial)
    public void start() {
        PgTrace trace = PgTrace.load(conversation.equals("datarows") ? "pgbench-simple" : conversation);
        context = new CountingSessionContext(new ListenerInfo("bench",
                InetSocketAddress.createUnresolved("127.0.0.1", 5432), ListenerInfo.UpstreamTlsMode.DISABLE, ListenerInfo.ClientTlsMode.DISABLE));
        session = new PgModule().newSession(context);
        List<PgTrace.Chunk> commands = startUp(trace.chunks());
        if (conversation.equals("datarows")) {
            commands = dataRows(1000, 16 * 1024);
        }
        chunks = new ByteBuf[commands.size()];
        fromClient = new boolean[commands.size()];
        for (int i = 0; i < chunks.length; i++) {
            byte[] bytes = commands.get(i).bytes();
            chunks[i] = Unpooled.directBuffer(bytes.length).writeBytes(bytes);
            fromClient[i] = commands.get(i).fromClient();
            bytesPerPass += bytes.length;
        }
        pass();
        if (context.problem != null || context.state != SessionState.IDLE) {
            throw new IllegalStateException(conversation + ": " + context.problem + ", state " + context.state);
        }
    }

    /** Replays the start-up and returns the chunks after the first ReadyForQuery, up to Terminate. */
    private List<PgTrace.Chunk> startUp(List<PgTrace.Chunk> all) {
        int i = 0;
        boolean connected = false;
        for (; i < all.size() && context.state != SessionState.IDLE; i++) {
            feed(all.get(i).fromClient(), Unpooled.wrappedBuffer(all.get(i).bytes()));
            if (!connected && context.identity != null) {
                connected = true;
                session.onUpstreamConnected();
            }
        }
        List<PgTrace.Chunk> commands = new ArrayList<>();
        for (; i < all.size() && !(all.get(i).fromClient() && all.get(i).bytes()[0] == 'X'); i++) {
            commands.add(all.get(i));
        }
        return commands;
    }

    /** Query, then RowDescription, {@code rows} DataRows and CommandComplete + ReadyForQuery cut into reads. */
    static List<PgTrace.Chunk> dataRows(int rows, int readSize) {
        ByteArrayOutputStream server = new ByteArrayOutputStream();
        server.writeBytes(message('T', ByteBuffer.allocate(2 + 2 * 25).putShort((short) 2)
                .put(column("aid")).put(column("filler")).array()));
        byte[] filler = "x".repeat(92).getBytes(StandardCharsets.US_ASCII);
        for (int r = 0; r < rows; r++) {
            server.writeBytes(message('D', ByteBuffer.allocate(2 + 4 + 4 + 4 + filler.length).putShort((short) 2)
                    .putInt(4).put(String.format("%04d", r % 10000).getBytes(StandardCharsets.US_ASCII))
                    .putInt(filler.length).put(filler).array()));
        }
        server.writeBytes(message('C', "SELECT 1000\0".getBytes(StandardCharsets.US_ASCII)));
        server.writeBytes(message('Z', new byte[] {'I'}));
        List<PgTrace.Chunk> chunks = new ArrayList<>();
        chunks.add(new PgTrace.Chunk(true, message('Q', "SELECT aid, filler FROM wide\0".getBytes(StandardCharsets.US_ASCII))));
        byte[] stream = server.toByteArray();
        for (int at = 0; at < stream.length; at += readSize) {
            chunks.add(new PgTrace.Chunk(false, java.util.Arrays.copyOfRange(stream, at, Math.min(stream.length, at + readSize))));
        }
        return chunks;
    }

    private static byte[] column(String name) {
        byte[] field = new byte[25];
        byte[] text = name.getBytes(StandardCharsets.US_ASCII);
        System.arraycopy(text, 0, field, 0, Math.min(text.length, 6));
        return field;
    }

    private static byte[] message(char type, byte[] body) {
        return ByteBuffer.allocate(5 + body.length).put((byte) type).putInt(4 + body.length).put(body).array();
    }

    private void feed(boolean client, ByteBuf bytes) {
        if (client) {
            session.onClientBytes(bytes);
        } else {
            session.onUpstreamBytes(bytes);
        }
    }

    private void pass() {
        for (int i = 0; i < chunks.length; i++) {
            ByteBuf chunk = chunks[i];
            chunk.retain().setIndex(0, chunk.capacity());
            feed(fromClient[i], chunk);
        }
    }

    @Benchmark
    public long relay(Relayed relayed) {
        pass();
        relayed.bytes += bytesPerPass;
        return context.stateReports;
    }

    @TearDown(Level.Trial)
    public void stop() {
        session.close();
        for (ByteBuf chunk : chunks) {
            chunk.release();
        }
    }
}
