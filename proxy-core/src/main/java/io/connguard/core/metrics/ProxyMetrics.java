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

import java.util.HashMap;
import java.util.Iterator;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.function.LongSupplier;

/**
 * The Prometheus registry and the per-client series in it. At most {@code maxTrackedClients} client keys
 * get series of their own; the others share their listener's {@code _other} series. A series whose last
 * session has closed is removed once a scrape has seen its final values, or after a grace period without
 * scrapes, so the registry does not grow with churn.
 */
public final class ProxyMetrics implements AutoCloseable {

    /** How long an unused series is kept when nobody scrapes. */
    public static final long GRACE_NANOS = TimeUnit.MINUTES.toNanos(5);

    private final PrometheusMeterRegistry registry = new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);
    private final LongSupplier nanoClock;
    private final Map<ClientKey, ClientSeries> tracked = new HashMap<>();
    private final Map<String, ClientSeries> other = new HashMap<>();
    private final Map<String, ListenerMeters> listeners = new HashMap<>();
    private final JvmGcMetrics gcMetrics = new JvmGcMetrics();
    private volatile int maxTrackedClients;

    public ProxyMetrics(int maxTrackedClients, LongSupplier nanoClock) {
        this.maxTrackedClients = maxTrackedClients;
        this.nanoClock = nanoClock;
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
            series.scrapedSinceUnused = false;
        }
    }

    /** The Prometheus exposition; series unused before this scrape are removed after it. */
    public String scrape() {
        synchronized (this) {
            markScraped();
        }
        String text = registry.scrape();
        sweep();
        return text;
    }

    /** Removes unused series that a scrape has seen, or that were unused longer than the grace period. */
    public synchronized void sweep() {
        long now = nanoClock.getAsLong();
        sweep(tracked.values().iterator(), now);
        sweep(other.values().iterator(), now);
    }

    /** How many client series exist now (tracked ones plus {@code _other} buckets). */
    public synchronized int clientSeries() {
        return tracked.size() + other.size();
    }

    private void markScraped() {
        for (ClientSeries series : tracked.values()) {
            if (series.references == 0) {
                series.scrapedSinceUnused = true;
            }
        }
        for (ClientSeries series : other.values()) {
            if (series.references == 0) {
                series.scrapedSinceUnused = true;
            }
        }
    }

    private static void sweep(Iterator<ClientSeries> it, long now) {
        while (it.hasNext()) {
            ClientSeries series = it.next();
            if (series.references == 0 && (series.scrapedSinceUnused || now - series.unusedSince >= GRACE_NANOS)) {
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
