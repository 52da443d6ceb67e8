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
import java.util.Arrays;
import java.util.List;
import java.util.function.LongSupplier;
import java.util.function.ToLongFunction;

/**
 * The meters of one client key (or of the {@code _other} bucket): exact gauges of sessions by state,
 * queued connections and leak suspects, counters of admissions and closes, the queue-wait histogram, and
 * the busy / in-transaction time integrals.
 *
 * <p>Sessions of one client run on different event loops, and every query changes a session's state
 * twice. So that no lock or cache line is shared between loops on that path, each thread counts the
 * states of the sessions it serves, and advances their integrals, in a {@link Shard} of its own, which a
 * session keeps; a scrape sums the shards. The counts are additive, so the sums stay exact even when a
 * session's changes go to more than one shard (a test): one shard's +1 and another's -1 add up to
 * nothing, and so do their integrals.
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
    private final boolean shared;
    private final LongSupplier nanoClock;
    private final List<Meter> meters = new ArrayList<>();
    private final Counter[] admissions = new Counter[Outcome.values().length];
    private final Counter[] closed = new Counter[CloseReason.values().length];
    private final Timer queueWait;
    private Gauge maxConnectionsGauge;
    /** Registered on first use: only transaction-mode clients have them. Guarded by meters. */
    private java.util.Map<String, Counter> pins;
    private volatile Counter transactions;

    // Copy-on-write: a thread adds its shard once, under this object's lock.
    private volatile Shard[] shards = new Shard[0];

    // guarded by this
    private int queued;
    private int leakSuspects;
    private int maxConnections;

    // guarded by ProxyMetrics' lock
    int references;
    long unusedSince;

    ClientSeries(MeterRegistry registry, Tags tags, LongSupplier nanoClock) {
        this(registry, tags, nanoClock, false);
    }

    /** @param shared the {@code _other} bucket: the counts of many client keys together */
    ClientSeries(MeterRegistry registry, Tags tags, LongSupplier nanoClock, boolean shared) {
        this.registry = registry;
        this.tags = tags;
        this.shared = shared;
        this.nanoClock = nanoClock;
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

    /** A session of this client was pinned to its server connection for {@code reason} (transaction mode). */
    public void pinned(String reason) {
        Counter counter;
        synchronized (meters) {
            if (pins == null) {
                pins = new java.util.HashMap<>();
            }
            counter = pins.get(reason);
            if (counter == null) {
                counter = Counter.builder(MeterNames.CLIENT_PINS)
                        .description("Client sessions pinned to their server connection, by reason")
                        .tags(tags).tag(MeterNames.TAG_REASON, reason).register(registry);
                pins.put(reason, counter);
                meters.add(counter);
            }
        }
        counter.increment();
    }

    /** A transaction served on a lent server connection (transaction mode). */
    public void transactionServed() {
        Counter counter = transactions;
        if (counter == null) {
            synchronized (meters) {
                if (transactions == null) {
                    transactions = Counter.builder(MeterNames.CLIENT_TRANSACTIONS)
                            .description("Transactions served on lent server connections (transaction mode)")
                            .tags(tags).register(registry);
                    meters.add(transactions);
                }
                counter = transactions;
            }
        }
        counter.increment();
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

    /**
     * The calling thread's share of this client's session counts, for a session to keep: a session runs
     * on one event loop, so it finds its loop's shard once, not on every change.
     */
    public Shard shard() {
        Thread thread = Thread.currentThread();
        for (Shard shard : shards) {
            if (shard.thread == thread) {
                return shard;
            }
        }
        return addShard(thread);
    }

    private synchronized Shard addShard(Thread thread) {
        Shard[] current = shards;
        for (Shard shard : current) {
            if (shard.thread == thread) {
                return shard;
            }
        }
        Shard shard = new Shard(thread);
        Shard[] grown = Arrays.copyOf(current, current.length + 1);
        grown[current.length] = shard;
        shards = grown;
        return shard;
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

    /** Whether this is the {@code _other} bucket, which counts many client keys together. */
    public boolean shared() {
        return shared;
    }

    /** Sessions of this client active now. */
    public int active() {
        return (int) count(SessionState.ACTIVE);
    }

    /** Sessions of this client open now, in any state. */
    public int open() {
        int sum = 0;
        for (SessionState state : STATES) {
            sum += (int) count(state);
        }
        return sum;
    }

    double count(SessionState state) {
        long sum = 0;
        for (Shard shard : shards) {
            synchronized (shard) {
                sum += shard.states[state.ordinal()];
            }
        }
        return sum;
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

    double busySeconds() {
        return integrated(shard -> shard.busyNanos) / 1e9;
    }

    double transactionSeconds() {
        return integrated(shard -> shard.transactionNanos) / 1e9;
    }

    /** The sum over the shards of one integral, each advanced to now. */
    private long integrated(ToLongFunction<Shard> integral) {
        long sum = 0;
        for (Shard shard : shards) {
            synchronized (shard) {
                shard.integrate();
                sum += integral.applyAsLong(shard);
            }
        }
        return sum;
    }

    /** No session of this client is counted in any state and none is queued. */
    boolean idle() {
        for (SessionState state : STATES) {
            if (count(state) != 0) {
                return false;
            }
        }
        synchronized (this) {
            return queued == 0;
        }
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

    /**
     * One thread's share of the session states and integrals. Written by the sessions of its thread,
     * read by scrapes; both under the shard's own lock, which its thread therefore almost always takes
     * uncontended. It is allocated by its own thread, so it shares no cache line with another loop's.
     */
    public final class Shard {
        private final Thread thread;
        private final int[] states = new int[STATES.length];
        private int inTransaction;
        private long busyNanos;
        private long transactionNanos;
        private long integratedAt;

        private Shard(Thread thread) {
            this.thread = thread;
            this.integratedAt = nanoClock.getAsLong();
        }

        /** A session entered {@code state} (it was not counted before). */
        public synchronized void enter(SessionState state, boolean tx) {
            integrate();
            add(state, tx, 1);
        }

        /** A session left {@code state} (it is no longer counted). */
        public synchronized void leave(SessionState state, boolean tx) {
            integrate();
            add(state, tx, -1);
        }

        public synchronized void change(SessionState from, boolean fromTx, SessionState to, boolean toTx) {
            integrate();
            add(from, fromTx, -1);
            add(to, toTx, 1);
        }

        private void add(SessionState state, boolean tx, int delta) {
            states[state.ordinal()] += delta;
            if (tx) {
                inTransaction += delta;
            }
        }

        private void integrate() {
            long now = nanoClock.getAsLong();
            long elapsed = now - integratedAt;
            if (elapsed > 0) {
                busyNanos += states[SessionState.ACTIVE.ordinal()] * elapsed;
                transactionNanos += inTransaction * elapsed;
                integratedAt = now;
            }
        }
    }
}
