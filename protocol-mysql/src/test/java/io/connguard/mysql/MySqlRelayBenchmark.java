package io.connguard.mysql;

import io.connguard.core.api.ListenerInfo;
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

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static io.connguard.mysql.Packets.packet;
import static io.connguard.mysql.Packets.payload;

/**
 * The MySQL half of the relay path on one core: an authenticated {@link MySqlSession} is fed the command
 * phase of a conversation recorded from sysbench 1.0 and MariaDB 10.11, chunk by chunk as TCP delivered
 * it, over and over (command scanner, response scanner, command tracker, statement capture, each buffer
 * handed on). The {@code bytes} counter is the throughput in bytes per second; {@code -prof gc} shows the
 * allocation per operation, which must be ~0. Not a test: run it with {@code bench/jmh.sh}.
 *
 * <p>Conversations: {@code sysbench-point-select} (COM_STMT_EXECUTE of a one-row SELECT: small packets, a
 * state change per statement) and {@code sysbench-read-only} (oltp_read_only's transactions with 100-row
 * range queries: many packets per buffer).
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(value = 1, jvmArgsAppend = {"-Dio.netty.leakDetection.level=disabled"})
public class MySqlRelayBenchmark {

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

    private static final byte[] COM_QUIT = {1, 0, 0, 0, 1};

    @Param({"sysbench-point-select", "sysbench-read-only"})
    public String conversation;

    private CountingSessionContext context;
    private MySqlSession session;
    private ByteBuf[] chunks;
    private boolean[] fromClient;
    private long bytesPerPass;

    @Setup(Level.Trial)
    public void start() {
        context = new CountingSessionContext(Conversation.listener(ListenerInfo.UpstreamTlsMode.DISABLE));
        session = (MySqlSession) Conversation.moduleWithGreeting().newSession(context);
        authenticate();
        List<Packets.Chunk> commands = commandPhase(Packets.fixture(conversation));
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

    /** The handshake as in {@link Conversation#authenticate}: greeting, response, auth switch, OK. */
    private void authenticate() {
        client(Conversation.handshakeResponse(Conversation.LIBMARIADB_CAPS, "root", "cg_bench", "sysbench"));
        session.onUpstreamConnected();
        server(Packets.fixture("mariadb-select-transaction").get(0).bytes());
        server(packet(2, payload(0xFE, "mysql_native_password", 0, "abcdefghij0123456789", 0)));
        client(packet(3, new byte[20]));
        server(Packets.ok(4, 0x0002));
        if (context.state != SessionState.IDLE) {
            throw new IllegalStateException("handshake failed: " + context.problem);
        }
    }

    /** The chunks after the recorded handshake's OK, without the client's COM_QUIT at the end. */
    private static List<Packets.Chunk> commandPhase(List<Packets.Chunk> chunks) {
        int from = 1;
        while (chunks.get(from).fromClient() || chunks.get(from).bytes()[4] != 0) {
            from++;
        }
        List<Packets.Chunk> commands = new ArrayList<>(chunks.subList(from + 1, chunks.size()));
        byte[] last = commands.get(commands.size() - 1).bytes();
        int end = last.length - COM_QUIT.length;
        if (!Arrays.equals(last, end, last.length, COM_QUIT, 0, COM_QUIT.length)) {
            throw new IllegalStateException("the conversation does not end with COM_QUIT");
        }
        commands.remove(commands.size() - 1);
        if (end > 0) {
            commands.add(new Packets.Chunk(true, Arrays.copyOf(last, end)));
        }
        return commands;
    }

    private void client(byte[] bytes) {
        session.onClientBytes(Unpooled.wrappedBuffer(bytes));
    }

    private void server(byte[] bytes) {
        session.onUpstreamBytes(Unpooled.wrappedBuffer(bytes));
    }

    private void pass() {
        for (int i = 0; i < chunks.length; i++) {
            ByteBuf chunk = chunks[i];
            chunk.retain().setIndex(0, chunk.capacity());
            if (fromClient[i]) {
                session.onClientBytes(chunk);
            } else {
                session.onUpstreamBytes(chunk);
            }
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
