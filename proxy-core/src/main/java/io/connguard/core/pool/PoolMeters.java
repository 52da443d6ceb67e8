package io.connguard.core.pool;

import io.connguard.core.metrics.MeterNames;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Tags;
import io.micrometer.core.instrument.Timer;

import java.time.Duration;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicIntegerArray;

/**
 * The meters of one pool: its server connections by state and the time clients waited for one. The
 * gauges read counts the pool publishes after each change (the registry is scraped from another thread).
 */
final class PoolMeters {

    private static final Duration[] WAIT_BUCKETS = {Duration.ofMillis(1), Duration.ofMillis(5), Duration.ofMillis(25),
            Duration.ofMillis(100), Duration.ofMillis(500), Duration.ofSeconds(1), Duration.ofSeconds(5)};
    private static final int ACTIVE = 0;
    private static final int IDLE = 1;
    private static final int PINNED = 2;
    static final int WAITING = 3;

    private final AtomicIntegerArray counts = new AtomicIntegerArray(4);
    private final Timer wait;

    PoolMeters(MeterRegistry registry, PoolKey key) {
        Tags tags = Tags.of(MeterNames.TAG_LISTENER, key.listener(), MeterNames.TAG_USER, key.user(),
                MeterNames.TAG_DATABASE, key.database());
        String[] states = {"active", "idle", "pinned"};
        for (int i = 0; i < states.length; i++) {
            int index = i;
            Gauge.builder(MeterNames.POOL_SERVER_CONNECTIONS, counts, c -> c.get(index))
                    .description("Pooled server connections by state").tags(tags).tag(MeterNames.TAG_STATE, states[i])
                    .register(registry);
        }
        wait = Timer.builder(MeterNames.POOL_WAIT).description("Time a client waited for a server connection")
                .tags(tags).serviceLevelObjectives(WAIT_BUCKETS).register(registry);
    }

    void waited(long nanos) {
        wait.record(nanos, TimeUnit.NANOSECONDS);
    }

    /** Ordered, not volatile, writes: a scrape may see them a moment late, and a checkout pays no fence. */
    void publish(int active, int idle, int pinned, int waiting) {
        counts.lazySet(ACTIVE, active);
        counts.lazySet(IDLE, idle);
        counts.lazySet(PINNED, pinned);
        counts.lazySet(WAITING, waiting);
    }

    int get(int index) {
        return counts.get(index);
    }
}
