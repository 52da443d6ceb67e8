package io.connguard.core.metrics;

import io.connguard.core.api.SessionState;
import io.micrometer.core.instrument.Tags;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Threads;
import org.openjdk.jmh.annotations.Warmup;

import java.util.concurrent.TimeUnit;

/**
 * What a query costs in per-client accounting: two state changes (idle → active → idle) of a session
 * of one client whose sessions are spread over two event loops, both loops busy at once. Each loop keeps
 * its own {@link ClientSeries.Shard}, so the two threads should not slow each other down: compare the
 * time per operation with {@code -t 1}. Not a test: run it with {@code bench/jmh.sh core}.
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(1)
@Threads(2)
public class ClientSeriesBenchmark {

    /** One client's series, shared by the loops, as in the proxy. */
    @State(Scope.Benchmark)
    public static class Client {
        final ClientSeries series = new ClientSeries(new SimpleMeterRegistry(), Tags.of("client", "app"),
                System::nanoTime);
    }

    /** One event loop's session of that client. */
    @State(Scope.Thread)
    public static class Loop {
        ClientSeries.Shard counts;

        @Setup
        public void enter(Client client) {
            counts = client.series.shard();
            counts.enter(SessionState.IDLE, false);
        }
    }

    @Benchmark
    public void query(Loop loop) {
        loop.counts.change(SessionState.IDLE, false, SessionState.ACTIVE, false);
        loop.counts.change(SessionState.ACTIVE, false, SessionState.IDLE, false);
    }
}
