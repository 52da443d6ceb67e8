package io.connguard.core.admin;

import io.netty.util.concurrent.EventExecutor;
import io.netty.util.concurrent.ScheduledFuture;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLongArray;
import java.util.function.LongSupplier;

/**
 * Whether the session event loops respond, kept current by the loops themselves: each runs a tiny
 * heartbeat task every {@link #PERIOD_MILLIS}, and a loop whose last heartbeat is older than
 * {@link #STALE_MILLIS} is not responding.
 *
 * <p>Why not queue a task on every loop per request and wait for it: a loop works through what is ready
 * before it runs queued tasks, so during a burst of thousands of connections such a ping waited as long
 * as the burst (hundreds of milliseconds), and {@code /healthz} with it, though the loops were healthy.
 * Reading timestamps answers at once and still turns 503 when a loop is blocked.
 *
 * <p>Why 5 s: {@code /healthz} is a liveness probe, and a failing one gets the sidecar restarted, which
 * drops every session. A loop starved of CPU on an overloaded node (seen: over 1 s during a 5,000
 * connection storm on 2 shared cores) is slow, not dead; a loop that has not run a 500 ms task for 5 s is
 * stuck. Two wake-ups a second per loop cost nothing measurable.
 */
final class LoopHeartbeats implements AutoCloseable {

    static final long PERIOD_MILLIS = 500;
    static final long STALE_MILLIS = 5000;
    private static final long STALE_NANOS = TimeUnit.MILLISECONDS.toNanos(STALE_MILLIS);

    private final LongSupplier clock;
    private final AtomicLongArray beats;
    private final List<ScheduledFuture<?>> tasks = new ArrayList<>();

    LoopHeartbeats(Iterable<EventExecutor> loops) {
        this(loops, System::nanoTime);
    }

    /** With the clock the beats are stamped and judged by; tests pass a fake one. */
    LoopHeartbeats(Iterable<EventExecutor> loops, LongSupplier clock) {
        this.clock = clock;
        List<EventExecutor> all = new ArrayList<>();
        loops.forEach(all::add);
        beats = new AtomicLongArray(all.size());
        long now = clock.getAsLong();
        for (int i = 0; i < all.size(); i++) {
            int index = i;
            beats.set(index, now);
            tasks.add(all.get(i).scheduleAtFixedRate(() -> beats.set(index, clock.getAsLong()),
                    0, PERIOD_MILLIS, TimeUnit.MILLISECONDS));
        }
    }

    /** Every loop has run its heartbeat within the last {@link #STALE_MILLIS}. */
    boolean allResponding() {
        long now = clock.getAsLong();
        for (int i = 0; i < beats.length(); i++) {
            if (now - beats.get(i) > STALE_NANOS) {
                return false;
            }
        }
        return true;
    }

    /** The clock reading of loop {@code index}'s last heartbeat. */
    long lastBeat(int index) {
        return beats.get(index);
    }

    @Override
    public void close() {
        tasks.forEach(task -> task.cancel(false));
    }
}
