package io.connguard.core.metrics;

import io.connguard.core.api.SessionState;
import io.micrometer.core.instrument.Tags;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.atomic.AtomicLong;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The session-state gauges and the busy / in-transaction integrals of one client, which every event
 * loop updates in a shard of its own: the sums a scrape reads must be exact whatever thread made each
 * change.
 */
class ClientSeriesTest {

    private static final long S = 1_000_000_000L;

    private final AtomicLong clock = new AtomicLong(1_000 * S);
    private final SimpleMeterRegistry registry = new SimpleMeterRegistry();
    private final ClientSeries series = new ClientSeries(registry, Tags.of("client", "app"), clock::get);

    @Test
    void countsAndIntegralsAreExactAcrossThreads() throws Exception {
        series.shard().enter(SessionState.ACTIVE, false);                          // session 1, this thread
        onAnotherThread(() -> series.shard().enter(SessionState.IDLE, false));      // session 2, another thread

        clock.addAndGet(2 * S); // 2 s: session 1 active, session 2 idle
        onAnotherThread(() -> series.shard().change(SessionState.IDLE, false, SessionState.IDLE_IN_TRANSACTION, true));
        clock.addAndGet(3 * S); // 3 s: session 1 active, session 2 idle in transaction
        // Session 1 is closed by yet another thread than the one that counted it.
        onAnotherThread(() -> series.shard().leave(SessionState.ACTIVE, false));
        clock.addAndGet(S);     // 1 s: session 2 idle in transaction

        assertThat(series.count(SessionState.ACTIVE)).isEqualTo(0);
        assertThat(series.count(SessionState.IDLE)).isEqualTo(0);
        assertThat(series.count(SessionState.IDLE_IN_TRANSACTION)).isEqualTo(1);
        assertThat(series.busySeconds()).isEqualTo(5.0);
        assertThat(series.transactionSeconds()).isEqualTo(4.0);
        assertThat(series.idle()).isFalse();

        series.shard().leave(SessionState.IDLE_IN_TRANSACTION, true);
        clock.addAndGet(10 * S);
        assertThat(series.idle()).isTrue();
        assertThat(series.busySeconds()).isEqualTo(5.0);
        assertThat(series.transactionSeconds()).isEqualTo(4.0);
    }

    @Test
    void theGaugesAreRegisteredOnceAndReadTheSums() throws Exception {
        series.shard().enter(SessionState.IDLE, false);
        onAnotherThread(() -> series.shard().enter(SessionState.IDLE, false));
        assertThat(registry.get(MeterNames.CLIENT_CONNECTIONS).tag(MeterNames.TAG_STATE, SessionState.IDLE.label())
                .gauges()).hasSize(1);
        assertThat(registry.get(MeterNames.CLIENT_CONNECTIONS).tag(MeterNames.TAG_STATE, SessionState.IDLE.label())
                .gauge().value()).isEqualTo(2.0);
    }

    @Test
    void loopsChangingStatesAtOnceLoseNothing() throws Exception {
        int threads = 4; // each keeps its shard, as a session keeps its loop's
        int sessionsPerThread = 8;
        int queriesPerSession = 20_000;
        CyclicBarrier start = new CyclicBarrier(threads + 1);
        List<Thread> loops = new ArrayList<>();
        List<Throwable> failures = new ArrayList<>();
        for (int t = 0; t < threads; t++) {
            Thread loop = new Thread(() -> {
                try {
                    start.await();
                    ClientSeries.Shard counts = series.shard();
                    for (int s = 0; s < sessionsPerThread; s++) {
                        counts.enter(SessionState.IDLE, false);
                    }
                    for (int q = 0; q < queriesPerSession; q++) {
                        for (int s = 0; s < sessionsPerThread; s++) {
                            counts.change(SessionState.IDLE, false, SessionState.ACTIVE, false);
                            clock.incrementAndGet();
                            counts.change(SessionState.ACTIVE, false, SessionState.IDLE, false);
                        }
                    }
                    // Half of the sessions stay open, idle.
                    for (int s = 0; s < sessionsPerThread / 2; s++) {
                        counts.leave(SessionState.IDLE, false);
                    }
                } catch (Throwable e) {
                    synchronized (failures) {
                        failures.add(e);
                    }
                }
            });
            loop.start();
            loops.add(loop);
        }
        start.await();
        // Scrapes while the loops run: each shard is read whole, so no count is ever out of range.
        for (int i = 0; i < 1_000; i++) {
            assertThat(series.count(SessionState.IDLE)).isBetween(0.0, (double) threads * sessionsPerThread);
            assertThat(series.count(SessionState.ACTIVE)).isBetween(0.0, (double) threads);
            assertThat(series.busySeconds()).isGreaterThanOrEqualTo(0.0);
        }
        for (Thread loop : loops) {
            loop.join();
        }
        assertThat(failures).isEmpty();
        assertThat(series.count(SessionState.IDLE)).isEqualTo(threads * sessionsPerThread / 2.0);
        assertThat(series.count(SessionState.ACTIVE)).isEqualTo(0);
        assertThat(series.count(SessionState.IDLE_IN_TRANSACTION)).isEqualTo(0);
        assertThat(series.transactionSeconds()).isEqualTo(0.0);
        assertThat(series.idle()).isFalse();
    }

    private static void onAnotherThread(Runnable task) throws InterruptedException {
        Thread thread = new Thread(task);
        thread.start();
        thread.join();
    }
}
