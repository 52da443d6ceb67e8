package io.connguard.core.metrics;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Tags;
import io.micrometer.core.instrument.Timer;

import java.time.Duration;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The meters of one listener: its upstream connections, connect errors and connect time, and its
 * rejections by reason. These series live as long as the listener, and every rejection reason is
 * registered at 0 when the listener starts, so an alert's {@code increase()} sees the first rejection
 * of a client whose own series did not exist a moment before.
 * It also counts TLS on the client leg: handshakes by outcome, TLS refused, plaintext refused.
 */
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
    private final Counter[] rejections = new Counter[Outcome.values().length];
    private final Counter clientTlsSucceeded;
    private final Counter clientTlsFailed;
    private final Counter clientTlsRefused;
    private final Counter clientPlaintextRefused;

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
        for (Outcome outcome : Outcome.values()) {
            if (outcome.rejection()) {
                rejections[outcome.ordinal()] = Counter.builder(MeterNames.LISTENER_REJECTIONS)
                        .description("Connections rejected (too many connections, or draining), by reason")
                        .tags(tags).tag(MeterNames.TAG_REASON, outcome.reason()).register(registry);
            }
        }
        clientTlsSucceeded = Counter.builder(MeterNames.LISTENER_CLIENT_TLS_HANDSHAKES)
                .description("TLS handshakes with clients").tags(tags.and(MeterNames.TAG_OUTCOME, "success"))
                .register(registry);
        clientTlsFailed = Counter.builder(MeterNames.LISTENER_CLIENT_TLS_HANDSHAKES)
                .description("TLS handshakes with clients").tags(tags.and(MeterNames.TAG_OUTCOME, "failure"))
                .register(registry);
        clientTlsRefused = Counter.builder(MeterNames.LISTENER_CLIENT_TLS_REFUSED)
                .description("Clients that asked for TLS on a listener with clientTls disabled").tags(tags)
                .register(registry);
        clientPlaintextRefused = Counter.builder(MeterNames.LISTENER_CLIENT_PLAINTEXT_REFUSED)
                .description("Plaintext clients refused by a listener with clientTls required").tags(tags)
                .register(registry);
    }

    /** A connection of this listener was rejected; {@code outcome} is one of the {@code REJECTED_*}. */
    public void rejected(Outcome outcome) {
        rejections[outcome.ordinal()].increment();
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

    public void clientTlsHandshake(boolean succeeded) {
        (succeeded ? clientTlsSucceeded : clientTlsFailed).increment();
    }

    public void clientTlsRefused() {
        clientTlsRefused.increment();
    }

    public void clientPlaintextRefused() {
        clientPlaintextRefused.increment();
    }
}
