package io.connguard.core.metrics;

import io.connguard.core.api.SessionState;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.Meter;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Tags;
import io.micrometer.core.instrument.Timer;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.function.LongSupplier;

/**
 * The meters of one client key (or of the {@code _other} bucket): exact gauges of sessions by state,
 * queued connections and leak suspects, counters of admissions and closes, the queue-wait histogram, and
 * the busy / in-transaction time integrals.
 *
 * <p>Sessions of one client run on different event loops, so state changes are applied under this
 * object's lock; each also advances the integrals, which are therefore exact at any scrape.
 */
public final class ClientSeries {

    private static final SessionState[] STATES = SessionState.values();
    private static final Duration[] QUEUE_WAIT_BUCKETS = {
            Duration.ofMillis(1), Duration.ofMillis(5), Duration.ofMillis(10), Duration.ofMillis(50),
            Duration.ofMillis(100), Duration.ofMillis(250), Duration.ofMillis(500), Duration.ofSeconds(1),
            Duration.ofMillis(2500), Duration.ofSeconds(5), Duration.ofSeconds(10), Duration.ofSeconds(30),
            Duration.ofSeconds(60)};

    private final MeterRegistry registry;
    private final Tags tags;
    private final LongSupplier nanoClock;
    private final List<Meter> meters = new ArrayList<>();
    private final Counter[] admissions = new Counter[Outcome.values().length];
    private final Counter[] closed = new Counter[CloseReason.values().length];
    private final Timer queueWait;
    private Gauge maxConnectionsGauge;

    // guarded by this
    private final int[] states = new int[STATES.length];
    private int queued;
    private int leakSuspects;
    private int maxConnections;
    private int active;
    private int inTransaction;
    private long busyNanos;
    private long transactionNanos;
    private long integratedAt;

    // guarded by ProxyMetrics' lock
    int references;
    long unusedSince;
    boolean scrapedSinceUnused;

    ClientSeries(MeterRegistry registry, Tags tags, LongSupplier nanoClock) {
        this.registry = registry;
        this.tags = tags;
        this.nanoClock = nanoClock;
        this.integratedAt = nanoClock.getAsLong();
        for (SessionState state : STATES) {
            meters.add(Gauge.builder(MeterNames.CLIENT_CONNECTIONS, this, s -> s.count(state))
                    .description("Sessions open now, by state")
                    .tags(tags).tag(MeterNames.TAG_STATE, state.label()).register(registry));
        }
        meters.add(Gauge.builder(MeterNames.CLIENT_QUEUED, this, ClientSeries::queued)
                .description("Connections waiting for a slot").tags(tags).register(registry));
        meters.add(Gauge.builder(MeterNames.CLIENT_LEAK_SUSPECTS, this, ClientSeries::leakSuspects)
                .description("Sessions idle beyond leakDetectionThreshold now").tags(tags).register(registry));
        for (Outcome outcome : Outcome.values()) {
            Counter counter = Counter.builder(MeterNames.CLIENT_ADMISSIONS)
                    .description("Connections asking for an upstream slot, by outcome")
                    .tags(tags).tag(MeterNames.TAG_OUTCOME, outcome.tag()).register(registry);
            admissions[outcome.ordinal()] = counter;
            meters.add(counter);
        }
        for (CloseReason reason : CloseReason.values()) {
            Counter counter = Counter.builder(MeterNames.CLIENT_SESSIONS_CLOSED)
                    .description("Sessions ended, by reason")
                    .tags(tags).tag(MeterNames.TAG_REASON, reason.tag()).register(registry);
            closed[reason.ordinal()] = counter;
            meters.add(counter);
        }
        queueWait = Timer.builder(MeterNames.CLIENT_QUEUE_WAIT)
                .description("Time spent waiting for a slot")
                .tags(tags).serviceLevelObjectives(QUEUE_WAIT_BUCKETS).register(registry);
        meters.add(queueWait);
        meters.add(FunctionCounter.builder(MeterNames.CLIENT_BUSY, this, ClientSeries::busySeconds)
                .description("Time-integral of active sessions; its rate is the average number of connections in use")
                .baseUnit("seconds").tags(tags).register(registry));
        meters.add(FunctionCounter.builder(MeterNames.CLIENT_TRANSACTION, this, ClientSeries::transactionSeconds)
                .description("Time-integral of sessions inside a transaction")
                .baseUnit("seconds").tags(tags).register(registry));
    }

    public Tags tags() {
        return tags;
    }

    public void admission(Outcome outcome) {
        admissions[outcome.ordinal()].increment();
    }

    public void closed(CloseReason reason) {
        closed[reason.ordinal()].increment();
    }

    public void queueWait(long nanos) {
        queueWait.record(Duration.ofNanos(nanos));
    }

    public synchronized void queuedDelta(int delta) {
        queued += delta;
    }

    public synchronized void leakSuspectDelta(int delta) {
        leakSuspects += delta;
    }

    /** A session of this client entered {@code state} (it was not counted before). */
    public synchronized void enter(SessionState state, boolean tx) {
        integrate();
        add(state, tx, 1);
    }

    /** A session of this client left {@code state} (it is no longer counted). */
    public synchronized void leave(SessionState state, boolean tx) {
        integrate();
        add(state, tx, -1);
    }

    public synchronized void change(SessionState from, boolean fromTx, SessionState to, boolean toTx) {
        integrate();
        add(from, fromTx, -1);
        add(to, toTx, 1);
    }

    /** The cap to publish; 0 removes the gauge (no cap). */
    public void maxConnections(int cap) {
        synchronized (this) {
            if (cap == maxConnections) {
                return;
            }
            maxConnections = cap;
        }
        synchronized (meters) {
            if (cap > 0 && maxConnectionsGauge == null) {
                maxConnectionsGauge = Gauge.builder(MeterNames.CLIENT_MAX_CONNECTIONS, this, ClientSeries::maxConnectionsValue)
                        .description("The per-client cap in force").tags(tags).register(registry);
            } else if (cap == 0 && maxConnectionsGauge != null) {
                registry.remove(maxConnectionsGauge);
                maxConnectionsGauge = null;
            }
        }
    }

    synchronized double count(SessionState state) {
        return states[state.ordinal()];
    }

    synchronized double queued() {
        return queued;
    }

    synchronized double leakSuspects() {
        return leakSuspects;
    }

    synchronized double maxConnectionsValue() {
        return maxConnections;
    }

    synchronized double busySeconds() {
        integrate();
        return busyNanos / 1e9;
    }

    synchronized double transactionSeconds() {
        integrate();
        return transactionNanos / 1e9;
    }

    synchronized boolean idle() {
        for (int count : states) {
            if (count != 0) {
                return false;
            }
        }
        return queued == 0;
    }

    void remove() {
        synchronized (meters) {
            for (Meter meter : meters) {
                registry.remove(meter);
            }
            if (maxConnectionsGauge != null) {
                registry.remove(maxConnectionsGauge);
                maxConnectionsGauge = null;
            }
        }
    }

    private void add(SessionState state, boolean tx, int delta) {
        states[state.ordinal()] += delta;
        if (state == SessionState.ACTIVE) {
            active += delta;
        }
        if (tx) {
            inTransaction += delta;
        }
    }

    private void integrate() {
        long now = nanoClock.getAsLong();
        long elapsed = now - integratedAt;
        if (elapsed > 0) {
            busyNanos += active * elapsed;
            transactionNanos += inTransaction * elapsed;
            integratedAt = now;
        }
    }
}
