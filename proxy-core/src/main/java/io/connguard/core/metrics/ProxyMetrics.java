package io.connguard.core.metrics;

import io.connguard.core.admission.ClientKey;
import io.micrometer.core.instrument.Tags;
import io.micrometer.core.instrument.binder.jvm.ClassLoaderMetrics;
import io.micrometer.core.instrument.binder.jvm.JvmGcMetrics;
import io.micrometer.core.instrument.binder.jvm.JvmMemoryMetrics;
import io.micrometer.core.instrument.binder.jvm.JvmThreadMetrics;
import io.micrometer.core.instrument.binder.netty4.NettyAllocatorMetrics;
import io.micrometer.core.instrument.binder.netty4.NettyEventExecutorMetrics;
import io.micrometer.core.instrument.binder.system.FileDescriptorMetrics;
import io.micrometer.core.instrument.binder.system.ProcessorMetrics;
import io.micrometer.core.instrument.binder.system.UptimeMetrics;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import io.netty.buffer.ByteBufAllocatorMetricProvider;
import io.netty.channel.EventLoopGroup;

import java.time.Duration;
import java.util.HashMap;
import java.util.Iterator;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.function.LongSupplier;

/**
 * The Prometheus registry and the per-client series in it. At most {@code maxTrackedClients} client keys
 * get series of their own; the others share their listener's {@code _other} series. A series whose last
 * session has closed (and whose last waiter has left) keeps its final values for {@link #SERIES_GRACE},
 * so that Prometheus scrapes them several times and {@code increase()} sees a rejection or a kill that
 * was the key's last event; then it is removed, so the registry does not grow with churn. A key in its
 * grace period still holds its place among the {@code maxTrackedClients}.
 */
public final class ProxyMetrics implements AutoCloseable {

    /**
     * How long a client key's series stay, at their final values, after its last session or waiter has
     * gone: ten scrapes at the Helm chart's 30 s interval, and more than the 5-minute windows of the
     * shipped alert rules, so that a rule using {@code increase()} has samples on both sides of the
     * key's last event.
     */
    public static final Duration SERIES_GRACE = Duration.ofMinutes(5);

    private static final long ROOM_SWEEP_INTERVAL_NANOS = TimeUnit.SECONDS.toNanos(1);

    private final PrometheusMeterRegistry registry = new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);
    private final LongSupplier nanoClock;
    private final long graceNanos;
    private long sweptForRoomAt; // guarded by this
    private final Map<ClientKey, ClientSeries> tracked = new HashMap<>();
    private final Map<String, ClientSeries> other = new HashMap<>();
    private final Map<String, ListenerMeters> listeners = new HashMap<>();
    private final JvmGcMetrics gcMetrics = new JvmGcMetrics();
    private volatile int maxTrackedClients;

    public ProxyMetrics(int maxTrackedClients, LongSupplier nanoClock) {
        this(maxTrackedClients, nanoClock, SERIES_GRACE);
    }

    ProxyMetrics(int maxTrackedClients, LongSupplier nanoClock, Duration grace) {
        this.maxTrackedClients = maxTrackedClients;
        this.nanoClock = nanoClock;
        this.graceNanos = grace.toNanos();
        this.sweptForRoomAt = nanoClock.getAsLong() - ROOM_SWEEP_INTERVAL_NANOS;
    }

    /** Binds the JVM, process and Netty meters. */
    public void bindRuntime(ByteBufAllocatorMetricProvider allocator, EventLoopGroup loops) {
        new JvmMemoryMetrics().bindTo(registry);
        gcMetrics.bindTo(registry);
        new JvmThreadMetrics().bindTo(registry);
        new ClassLoaderMetrics().bindTo(registry);
        new ProcessorMetrics().bindTo(registry);
        new UptimeMetrics().bindTo(registry);
        new FileDescriptorMetrics().bindTo(registry);
        new NettyAllocatorMetrics(allocator).bindTo(registry);
        new NettyEventExecutorMetrics(loops).bindTo(registry);
    }

    public PrometheusMeterRegistry registry() {
        return registry;
    }

    public synchronized ListenerMeters listener(String name) {
        return listeners.computeIfAbsent(name, n -> new ListenerMeters(registry, n));
    }

    public void maxTrackedClients(int max) {
        this.maxTrackedClients = max;
    }

    /** The series a session or waiter of {@code key} reports to; pair every call with {@link #release}. */
    public synchronized ClientSeries acquire(ClientKey key) {
        ClientSeries series = tracked.get(key);
        if (series == null) {
            if (tracked.size() >= maxTrackedClients) {
                // Make room without waiting for a scrape; at most once a second, so that a storm of new
                // keys beyond the cap does not walk every tracked series on each connection.
                long now = nanoClock.getAsLong();
                if (now - sweptForRoomAt >= ROOM_SWEEP_INTERVAL_NANOS) {
                    sweptForRoomAt = now;
                    sweep(tracked.values().iterator(), now);
                }
            }
            if (tracked.size() < maxTrackedClients) {
                series = new ClientSeries(registry, tags(key), nanoClock);
                tracked.put(key, series);
            } else {
                series = other.computeIfAbsent(key.listener(), listener -> new ClientSeries(registry,
                        Tags.of(MeterNames.TAG_LISTENER, listener, MeterNames.TAG_USER, "",
                                MeterNames.TAG_DATABASE, "", MeterNames.TAG_APPLICATION, MeterNames.OTHER_CLIENTS),
                        nanoClock, true));
            }
        }
        series.references++;
        return series;
    }

    public synchronized void release(ClientSeries series) {
        if (--series.references == 0) {
            series.unusedSince = nanoClock.getAsLong();
        }
    }

    /** The Prometheus exposition; series whose grace period has ended are removed first. */
    public String scrape() {
        sweep();
        return registry.scrape();
    }

    /** Removes the series that have been unused for the whole grace period. */
    public synchronized void sweep() {
        long now = nanoClock.getAsLong();
        sweep(tracked.values().iterator(), now);
        sweep(other.values().iterator(), now);
    }

    /** How many client series exist now (tracked ones plus {@code _other} buckets). */
    public synchronized int clientSeries() {
        return tracked.size() + other.size();
    }

    private void sweep(Iterator<ClientSeries> it, long now) {
        while (it.hasNext()) {
            ClientSeries series = it.next();
            if (series.references == 0 && now - series.unusedSince >= graceNanos) {
                series.remove();
                it.remove();
            }
        }
    }

    private static Tags tags(ClientKey key) {
        return Tags.of(MeterNames.TAG_LISTENER, key.listener(), MeterNames.TAG_USER, key.user(),
                MeterNames.TAG_DATABASE, key.database(), MeterNames.TAG_APPLICATION, key.application());
    }

    @Override
    public void close() {
        gcMetrics.close();
        registry.close();
    }
}
