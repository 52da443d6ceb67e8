package io.connguard.core.server;

import io.connguard.core.admission.ClientKey;
import io.connguard.core.admission.FleetGate;
import io.connguard.core.config.FleetConfig;
import io.connguard.core.fleet.FleetLeases;
import io.connguard.core.fleet.RedisFleetStore;
import io.micrometer.core.instrument.MeterRegistry;

import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

/**
 * Fleet budgets in a running server: the Redis store, this process's leases and the thread that renews them
 * (a scheduler thread of its own, never an event loop), or nothing at all when {@code fleet.store} is empty.
 */
public final class Fleet implements AutoCloseable {

    /** How long start-up waits for the store before starting with per-process caps. */
    static final Duration CONNECT_WAIT = Duration.ofSeconds(10);
    static final long TICK_MILLIS = 50;

    private final FleetLeases leases;
    private final ScheduledExecutorService scheduler;

    private Fleet(FleetLeases leases, ScheduledExecutorService scheduler) {
        this.leases = leases;
        this.scheduler = scheduler;
    }

    /** Connects to the store (waiting a few seconds at most; call at start-up, off the event loops). */
    static Fleet start(FleetConfig config, MeterRegistry registry) {
        if (!config.enabled()) {
            return new Fleet(null, null);
        }
        RedisFleetStore store = new RedisFleetStore(config, commandTimeout(config.leaseTtl()));
        boolean up = store.connect(CONNECT_WAIT);
        FleetLeases leases = new FleetLeases(config, store, System::currentTimeMillis, registry, up);
        ScheduledExecutorService scheduler = Executors.newSingleThreadScheduledExecutor(task -> {
            Thread thread = new Thread(task, "connguard-fleet");
            thread.setDaemon(true);
            return thread;
        });
        scheduler.scheduleWithFixedDelay(() -> {
            try {
                leases.tick();
            } catch (RuntimeException e) {
                org.slf4j.LoggerFactory.getLogger(Fleet.class).warn("fleet lease renewal failed", e);
            }
        }, TICK_MILLIS, TICK_MILLIS, TimeUnit.MILLISECONDS);
        return new Fleet(leases, scheduler);
    }

    /**
     * A store command slower than this counts as a failure: a third of the lease TTL (so a renewal that
     * fails still leaves time for the next), between 250 ms and 2 s.
     */
    static Duration commandTimeout(Duration ttl) {
        long millis = Math.max(250, Math.min(2000, ttl.toMillis() / 3));
        return Duration.ofMillis(millis);
    }

    FleetGate gate() {
        return leases == null ? FleetGate.OFF : leases;
    }

    public boolean enabled() {
        return leases != null;
    }

    /** Whether the store answers now (false when fleet budgets are off). */
    public boolean up() {
        return leases != null && leases.up();
    }

    /** The line {@code /readyz} adds, or null when fleet budgets are off. */
    public String status() {
        if (leases == null) {
            return null;
        }
        FleetConfig config = leases.config();
        return "fleet " + config.name() + ": store " + config.redactedStore()
                + (leases.up() ? " up, fleet caps enforced" : " unreachable, per-process caps only");
    }

    public Map<ClientKey, Integer> heldHere() {
        return leases == null ? Map.of() : leases.heldHere();
    }

    public CompletionStage<Map<ClientKey, Integer>> heldInFleet(List<ClientKey> clients) {
        return leases == null ? CompletableFuture.completedFuture(Map.of()) : leases.heldInFleet(clients);
    }

    @Override
    public void close() {
        if (leases != null) {
            scheduler.shutdownNow();
            leases.close();
        }
    }
}
