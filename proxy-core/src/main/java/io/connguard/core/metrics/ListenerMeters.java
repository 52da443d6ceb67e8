package io.connguard.core.metrics;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Tags;
import io.micrometer.core.instrument.Timer;

import java.time.Duration;
import java.util.concurrent.atomic.AtomicInteger;

/** The meters of one listener: its upstream connections, connect errors and connect time. */
public final class ListenerMeters {

    private static final Duration[] CONNECT_BUCKETS = {
            Duration.ofNanos(500_000), Duration.ofMillis(1), Duration.ofMillis(2), Duration.ofMillis(5),
            Duration.ofMillis(10), Duration.ofMillis(25), Duration.ofMillis(50), Duration.ofMillis(100),
            Duration.ofMillis(250), Duration.ofMillis(500), Duration.ofSeconds(1), Duration.ofMillis(2500),
            Duration.ofSeconds(5), Duration.ofSeconds(10)};

    private final AtomicInteger upstreamConnections = new AtomicInteger();
    private final Counter connectErrors;
    private final Counter lostSync;
    private final Timer connectTime;

    ListenerMeters(MeterRegistry registry, String listener) {
        Tags tags = Tags.of(MeterNames.TAG_LISTENER, listener);
        Gauge.builder(MeterNames.LISTENER_UPSTREAM_CONNECTIONS, upstreamConnections, AtomicInteger::get)
                .description("Upstream connections open").tags(tags).register(registry);
        connectErrors = Counter.builder(MeterNames.LISTENER_UPSTREAM_CONNECT_ERRORS)
                .description("Upstream connections that could not be opened or used").tags(tags).register(registry);
        lostSync = Counter.builder(MeterNames.LISTENER_LOST_SYNC)
                .description("Sessions whose protocol tracker lost sync (state unknown, no enforcement)")
                .tags(tags).register(registry);
        connectTime = Timer.builder(MeterNames.LISTENER_UPSTREAM_CONNECT)
                .description("Time to open an upstream connection").tags(tags)
                .serviceLevelObjectives(CONNECT_BUCKETS).register(registry);
    }

    public void upstreamOpened(long connectNanos) {
        upstreamConnections.incrementAndGet();
        connectTime.record(Duration.ofNanos(connectNanos));
    }

    public void upstreamClosed() {
        upstreamConnections.decrementAndGet();
    }

    public int upstreamConnections() {
        return upstreamConnections.get();
    }

    public void connectError() {
        connectErrors.increment();
    }

    public void lostSync() {
        lostSync.increment();
    }
}
