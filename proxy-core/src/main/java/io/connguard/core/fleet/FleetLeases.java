package io.connguard.core.fleet;

import io.connguard.core.admission.Admission;
import io.connguard.core.admission.ClientKey;
import io.connguard.core.admission.FleetGate;
import io.connguard.core.config.FleetConfig;
import io.connguard.core.metrics.MeterNames;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Tags;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.CopyOnWriteArraySet;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;
import java.util.function.LongSupplier;

/**
 * This process's leases on fleet budgets: which lease and queue-place ids it holds per budget key, their
 * renewal (every {@code leaseTtl/3}, all in one call), whether the store answers, and the wake-ups of local
 * waiters when a lease is freed in the fleet (the store's announcement, or a poll every
 * {@value #POLL_MILLIS} ms as a safety net).
 *
 * <p>While the store does not answer, every request is answered UNAVAILABLE and admission falls back to the
 * local caps; the holders admitted meanwhile are still recorded, so the first renewal that reaches the store
 * again registers every live lease and the budget counts them (holders over it are left to finish).
 *
 * <p>Time comes from an injectable clock and {@link #tick} is driven from outside (a scheduler thread in the
 * server, the test in unit tests). Calls into admission happen outside this class's lock.
 */
public final class FleetLeases implements FleetGate, AutoCloseable {

    private static final Logger LOG = LoggerFactory.getLogger(FleetLeases.class);

    /** How often waiters blocked on a fleet budget ask again without having heard of a freed lease. */
    public static final long POLL_MILLIS = 500;
    /** Added to a lease's expiry before its waiters ask again (the store's and this process's clocks differ). */
    static final long EXPIRY_SLACK_MILLIS = 20;
    /** How often the store is tried while it is away. */
    public static final long RETRY_MILLIS = 1000;

    private final FleetConfig config;
    private final FleetStore store;
    private final LongSupplier millis;
    private final MeterRegistry registry;
    private final long ttl;
    private final long renewEvery;
    private final String replica;
    private final AtomicLong counter = new AtomicLong();
    private final Object lock = new Object();
    private final Map<String, Budget> budgets = new HashMap<>();
    private final Set<Admission> admissions = new CopyOnWriteArraySet<>();
    private final Gauge upGauge;
    private volatile boolean up;
    private boolean renewing;
    private long nextRenew;
    private long nextPoll;

    /** One budget key's holders in this process. */
    private final class Budget {
        final String key;
        final ClientKey client;
        final Admission admission;
        final Set<String> held = new HashSet<>();
        final Set<String> waiting = new HashSet<>();
        final Set<String> pending = new HashSet<>();
        final Gauge leases;
        final Gauge cap;
        volatile int heldCount;
        volatile int capValue;
        /** When to wake this key's waiters because a lease expires then; MAX_VALUE = no such time. */
        long wakeAt = Long.MAX_VALUE;

        Budget(String key, ClientKey client, Admission admission, int cap) {
            this.key = key;
            this.client = client;
            this.admission = admission;
            this.capValue = cap;
            Tags tags = Tags.of(MeterNames.TAG_FLEET, config.name(), MeterNames.TAG_LISTENER, client.listener(),
                    MeterNames.TAG_USER, client.user(), MeterNames.TAG_DATABASE, client.database(),
                    MeterNames.TAG_APPLICATION, client.application());
            this.leases = Gauge.builder(MeterNames.FLEET_LEASES, this, b -> b.heldCount).tags(tags)
                    .description("fleet leases this process holds").register(registry);
            this.cap = Gauge.builder(MeterNames.FLEET_MAX_CONNECTIONS, this, b -> b.capValue).tags(tags)
                    .description("the fleet cap in force").register(registry);
        }

        boolean empty() {
            return held.isEmpty() && waiting.isEmpty() && pending.isEmpty();
        }

        void counted() {
            heldCount = held.size();
        }
    }

    /**
     * @param up whether the store answered at start (the first renewal decides otherwise)
     */
    public FleetLeases(FleetConfig config, FleetStore store, LongSupplier millis, MeterRegistry registry, boolean up) {
        this.config = config;
        this.store = store;
        this.millis = millis;
        this.registry = registry;
        this.ttl = config.leaseTtl().toMillis();
        this.renewEvery = Math.max(1, ttl / 3);
        this.up = up;
        String host = System.getenv("HOSTNAME");
        this.replica = (host == null || host.isBlank() ? "pid" + ProcessHandle.current().pid() : host) + "-"
                + Long.toHexString(ThreadLocalRandom.current().nextLong() & 0xffffffffL);
        this.upGauge = Gauge.builder(MeterNames.FLEET_STORE_UP, this, f -> f.up ? 1 : 0)
                .tag(MeterNames.TAG_FLEET, config.name()).description("1 while the fleet store answers").register(registry);
        long now = millis.getAsLong();
        this.nextRenew = now + renewEvery;
        this.nextPoll = now + POLL_MILLIS;
        store.onReleased(this::wake);
        if (!up) {
            String why = store.lastFailure();
            LOG.warn("fleet {}: store {} is not reachable{}; every cap is per process until it is",
                    config.name(), config.redactedStore(), why == null ? "" : " (" + why + ")");
        }
    }

    public FleetConfig config() {
        return config;
    }

    @Override
    public boolean enabled() {
        return true;
    }

    @Override
    public boolean enforcing() {
        return up;
    }

    /** Whether the store answers now. */
    public boolean up() {
        return up;
    }

    @Override
    public String newLeaseId() {
        return replica + "-" + counter.incrementAndGet();
    }

    @Override
    public void acquire(Admission admission, ClientKey key, String id, int cap, Consumer<Answer> answer) {
        String k = FleetKeys.of(key);
        CompletionStage<FleetStore.Acquired> asked = null;
        synchronized (lock) {
            budget(k, key, admission, cap).pending.add(id);
            if (up) {
                asked = store.acquire(k, id, cap, ttl);
            }
        }
        if (asked == null) {
            settle(k, id, Answer.UNAVAILABLE, -1);
            answer.accept(Answer.UNAVAILABLE);
            return;
        }
        asked.whenComplete((acquired, error) -> {
            Answer result;
            if (error != null) {
                failed(error);
                result = Answer.UNAVAILABLE;
            } else {
                result = acquired.granted() ? Answer.GRANTED : Answer.QUEUED;
            }
            settle(k, id, result, acquired == null ? -1 : acquired.nextExpiryMillis());
            LOG.debug("fleet lease {} for {}: {}", id, k, result);
            answer.accept(result);
        });
    }

    @Override
    public void hold(Admission admission, ClientKey key, String id, int cap) {
        synchronized (lock) {
            Budget budget = budget(FleetKeys.of(key), key, admission, cap);
            budget.pending.remove(id);
            budget.waiting.remove(id);
            budget.held.add(id);
            budget.counted();
        }
    }

    @Override
    public void release(ClientKey key, String id) {
        String k = FleetKeys.of(key);
        CompletionStage<Void> told = null;
        synchronized (lock) {
            Budget budget = budgets.get(k);
            if (budget == null) {
                return;
            }
            boolean known = budget.held.remove(id) | budget.waiting.remove(id) | budget.pending.remove(id);
            budget.counted();
            if (budget.empty()) {
                remove(budget);
            }
            if (known && up) {
                // Sent under the lock so that it reaches the store after any renewal that still named the id.
                told = store.release(k, id);
            }
        }
        if (told != null) {
            told.whenComplete((ignored, error) -> {
                if (error != null) {
                    failed(error);
                }
            });
        }
    }

    /** Renews when due, retries a store that is away, and wakes waiters on the slow poll. Call often (every ~100 ms). */
    public void tick() {
        long now = millis.getAsLong();
        CompletionStage<Integer> renewed = null;
        boolean poll = false;
        List<Budget> expiring = null;
        synchronized (lock) {
            for (Budget budget : budgets.values()) {
                if (budget.wakeAt <= now) {
                    budget.wakeAt = Long.MAX_VALUE;
                    expiring = expiring == null ? new ArrayList<>() : expiring;
                    expiring.add(budget);
                }
            }
            if (!renewing && now >= nextRenew) {
                nextRenew = now + (up ? renewEvery : Math.min(renewEvery, RETRY_MILLIS));
                renewing = true;
                renewed = store.renew(holders(), ttl);
            }
            if (now >= nextPoll) {
                nextPoll = now + POLL_MILLIS;
                // Every admission is looked at, not only keys with a queue place here: a key whose last queued
                // ticket left may still have local waiters that never asked, of whom no store announces anything.
                poll = true;
            }
        }
        if (!up) {
            store.reconnect();
        }
        if (renewed != null) {
            renewed.whenComplete((again, error) -> {
                synchronized (lock) {
                    renewing = false;
                }
                if (error != null) {
                    failed(error);
                } else {
                    answered(again);
                }
            });
        }
        if (poll) {
            wakeAll();
        } else if (expiring != null) {
            for (Budget budget : expiring) {
                budget.admission.fleetWake(budget.client);
            }
        }
    }

    /** Leases this process holds per client, for {@code /clients}. */
    public Map<ClientKey, Integer> heldHere() {
        synchronized (lock) {
            Map<ClientKey, Integer> held = new LinkedHashMap<>();
            for (Budget budget : budgets.values()) {
                held.put(budget.client, budget.held.size());
            }
            return held;
        }
    }

    /** Live leases in the whole fleet for these clients; empty when the store does not answer. */
    public CompletionStage<Map<ClientKey, Integer>> heldInFleet(List<ClientKey> clients) {
        if (!up || clients.isEmpty()) {
            return CompletableFuture.completedFuture(Map.of());
        }
        List<String> keys = new ArrayList<>(clients.size());
        for (ClientKey client : clients) {
            keys.add(FleetKeys.of(client));
        }
        return store.count(keys).handle((counts, error) -> {
            Map<ClientKey, Integer> out = new LinkedHashMap<>();
            if (counts != null) {
                for (int i = 0; i < clients.size(); i++) {
                    Integer n = counts.get(keys.get(i));
                    if (n != null) {
                        out.put(clients.get(i), n);
                    }
                }
            }
            return out;
        });
    }

    private Map<String, FleetStore.Holders> holders() {
        Map<String, FleetStore.Holders> holders = new LinkedHashMap<>();
        for (Budget budget : budgets.values()) {
            if (!budget.held.isEmpty() || !budget.waiting.isEmpty()) {
                List<String> waiting = new ArrayList<>(budget.waiting);
                waiting.removeAll(budget.held);
                holders.put(budget.key, new FleetStore.Holders(List.copyOf(budget.held), up ? waiting : List.of()));
            }
        }
        return holders;
    }

    private Budget budget(String key, ClientKey client, Admission admission, int cap) {
        Budget budget = budgets.get(key);
        if (budget == null) {
            budget = new Budget(key, client, admission, cap);
            budgets.put(key, budget);
            admissions.add(admission);
        }
        budget.capValue = cap;
        return budget;
    }

    private void remove(Budget budget) {
        budgets.remove(budget.key);
        registry.remove(budget.leases);
        registry.remove(budget.cap);
    }

    private void settle(String key, String id, Answer answer, long nextExpiry) {
        synchronized (lock) {
            Budget budget = budgets.get(key);
            if (budget == null || !budget.pending.remove(id)) {
                return;
            }
            if (answer == Answer.QUEUED) {
                budget.waiting.add(id);
            } else {
                // A waiter that asked again and got in (or goes on under the local caps) no longer waits: renewed
                // as both, it would keep a queue place ahead of everyone for as long as it lives.
                budget.waiting.remove(id);
                budget.held.add(id);
            }
            budget.counted();
            if (answer == Answer.QUEUED && nextExpiry >= 0) {
                // No one may announce that lease's end (its holder may be dead): ask again when it expires.
                budget.wakeAt = Math.min(budget.wakeAt, millis.getAsLong() + nextExpiry + EXPIRY_SLACK_MILLIS);
            }
        }
    }

    private void answered(int again) {
        boolean back;
        synchronized (lock) {
            back = !up;
            up = true;
        }
        if (back) {
            LOG.info("fleet {}: store {} answers again; {} lease(s) registered again, fleet caps are enforced again",
                    config.name(), config.redactedStore(), again);
            wakeAll();
        } else if (again > 0) {
            LOG.info("fleet {}: the store had lost {} of this process's lease(s); registered them again",
                    config.name(), again);
        }
    }

    private void failed(Throwable error) {
        boolean down;
        synchronized (lock) {
            down = up;
            up = false;
            if (down) {
                nextRenew = Math.min(nextRenew, millis.getAsLong() + RETRY_MILLIS);
            }
        }
        if (down) {
            Throwable cause = error instanceof java.util.concurrent.CompletionException && error.getCause() != null
                    ? error.getCause() : error;
            LOG.warn("fleet {}: store {} does not answer ({}); every cap is per process until it does",
                    config.name(), config.redactedStore(), cause.toString());
            wakeAll();
        }
    }

    private void wake(String key) {
        Budget budget;
        synchronized (lock) {
            budget = budgets.get(key);
        }
        LOG.debug("fleet {}: a lease of {} was freed", config.name(), key);
        if (budget != null) {
            budget.admission.fleetWake(budget.client);
        }
    }

    private void wakeAll() {
        for (Admission admission : admissions) {
            admission.fleetWakeAll();
        }
    }

    /**
     * Gives back every lease and queue place still held (a clean stop frees its share at once instead of
     * after {@code leaseTtl}), waiting at most a second for the store; then closes it. Call off the event loops.
     */
    @Override
    public void close() {
        List<CompletableFuture<Void>> released = new ArrayList<>();
        synchronized (lock) {
            if (up) {
                for (Budget budget : budgets.values()) {
                    for (Set<String> ids : List.of(budget.held, budget.waiting)) {
                        for (String id : ids) {
                            released.add(store.release(budget.key, id).toCompletableFuture());
                        }
                    }
                }
            }
            for (Budget budget : List.copyOf(budgets.values())) {
                remove(budget);
            }
        }
        try {
            CompletableFuture.allOf(released.toArray(CompletableFuture[]::new)).get(1, java.util.concurrent.TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        } catch (java.util.concurrent.ExecutionException | java.util.concurrent.TimeoutException e) {
            LOG.debug("fleet {}: not every lease was given back at stop; they expire after leaseTtl", config.name());
        }
        registry.remove(upGauge);
        store.close();
    }
}
