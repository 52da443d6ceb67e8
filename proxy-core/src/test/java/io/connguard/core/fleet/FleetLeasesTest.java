package io.connguard.core.fleet;

import io.connguard.core.admission.Admission;
import io.connguard.core.admission.Admission.Decision;
import io.connguard.core.admission.Admission.Rejection;
import io.connguard.core.admission.Admission.Ticket;
import io.connguard.core.admission.ClientKey;
import io.connguard.core.config.FleetConfig;
import io.connguard.core.config.Limits;
import io.connguard.core.testing.LogCapture;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import org.junit.jupiter.api.Test;

import java.net.URI;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.function.Consumer;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * This process's side of fleet leases, on a clock the test moves: when renewals go out and what they name,
 * how an unreachable store is noticed (once) and rejoined, and when waiters are woken. The store is an
 * in-memory stand-in with the same counting rules; the Lua scripts themselves are tested on a real Redis in
 * {@code LeaseScriptsIT}.
 */
class FleetLeasesTest {

    private static final ClientKey APP = new ClientKey("pg", "app", "db", "", "");
    private static final FleetConfig CONFIG = new FleetConfig(URI.create("redis://127.0.0.1:6379/0"), "orders",
            Duration.ofSeconds(15), "");

    /** Leases in memory: a live count per key, a FIFO of waiting ids, and a switch that makes every call fail. */
    private static final class MemoryStore implements FleetStore {
        final Map<String, Set<String>> leases = new HashMap<>();
        final Map<String, LinkedHashSet<String>> queues = new HashMap<>();
        final List<Map<String, Holders>> renewals = new ArrayList<>();
        final List<String> released = new ArrayList<>();
        final List<Consumer<String>> listeners = new ArrayList<>();
        int acquires;
        boolean down;
        long nextExpiry = -1;

        @Override
        public CompletionStage<Acquired> acquire(String key, String id, int cap, long ttlMillis) {
            acquires++;
            if (down) {
                return CompletableFuture.failedFuture(new IllegalStateException("connection refused"));
            }
            Set<String> live = leases.computeIfAbsent(key, k -> new LinkedHashSet<>());
            LinkedHashSet<String> queue = queues.computeIfAbsent(key, k -> new LinkedHashSet<>());
            int ahead = queue.contains(id) ? new ArrayList<>(queue).indexOf(id) : queue.size();
            if (live.contains(id) || ahead < cap - live.size()) {
                live.add(id);
                queue.remove(id);
                return CompletableFuture.completedFuture(new Acquired(true, -1));
            }
            queue.add(id);
            return CompletableFuture.completedFuture(new Acquired(false, nextExpiry));
        }

        @Override
        public CompletionStage<Void> release(String key, String id) {
            if (down) {
                return CompletableFuture.failedFuture(new IllegalStateException("connection refused"));
            }
            released.add(id);
            boolean freed = leases.getOrDefault(key, Set.of()).remove(id) | queues.getOrDefault(key, new LinkedHashSet<>()).remove(id);
            if (freed) {
                listeners.forEach(l -> l.accept(key));
            }
            return CompletableFuture.completedFuture(null);
        }

        @Override
        public CompletionStage<Integer> renew(Map<String, Holders> holders, long ttlMillis) {
            if (down) {
                return CompletableFuture.failedFuture(new IllegalStateException("connection refused"));
            }
            renewals.add(holders);
            int again = 0;
            for (var e : holders.entrySet()) {
                for (String id : e.getValue().leases()) {
                    if (leases.computeIfAbsent(e.getKey(), k -> new LinkedHashSet<>()).add(id)) {
                        again++;
                    }
                }
            }
            return CompletableFuture.completedFuture(again);
        }

        @Override
        public CompletionStage<Map<String, Integer>> count(Collection<String> keys) {
            Map<String, Integer> out = new HashMap<>();
            keys.forEach(k -> out.put(k, leases.getOrDefault(k, Set.of()).size()));
            return CompletableFuture.completedFuture(out);
        }

        @Override
        public void onReleased(Consumer<String> listener) {
            listeners.add(listener);
        }

        @Override
        public void reconnect() {
        }

        @Override
        public void close() {
        }
    }

    private static final class Waiter implements Admission.Grantee {
        final List<String> events = new ArrayList<>();
        final Ticket ticket;

        Waiter(int fleetCap) {
            ticket = new Ticket(APP, new Limits(10, Duration.ofSeconds(30), 100, Duration.ZERO, Duration.ZERO,
                    Duration.ZERO, Duration.ZERO, fleetCap, 0), Runnable::run, this);
        }

        @Override
        public void admitted() {
            events.add("admitted");
        }

        @Override
        public void rejected(Rejection why) {
            events.add("rejected " + why);
        }

        @Override
        public void queued() {
            events.add("queued");
        }
    }

    private final MemoryStore store = new MemoryStore();
    private final SimpleMeterRegistry registry = new SimpleMeterRegistry();
    private long now = 1_000_000;
    private final FleetLeases leases = new FleetLeases(CONFIG, store, () -> now, registry, true);
    private final Admission admission = new Admission(0, leases);

    private double gauge(String name) {
        var gauge = registry.find(name).gauge();
        return gauge == null ? Double.NaN : gauge.value();
    }

    @Test
    void leasesAreRenewedEveryThirdOfTheTtlInOneCallNamingEveryHolder() {
        Waiter a = new Waiter(5);
        Waiter b = new Waiter(5);
        assertThat(admission.request(a.ticket)).isEqualTo(Decision.PENDING);
        admission.request(b.ticket);
        assertThat(a.events).containsExactly("admitted");
        assertThat(gauge("connguard.fleet.leases")).isEqualTo(2.0);
        assertThat(gauge("connguard.fleet.max.connections")).isEqualTo(5.0);

        now += 4_999;
        leases.tick();
        assertThat(store.renewals).isEmpty();
        now += 1;
        leases.tick();
        assertThat(store.renewals).hasSize(1);
        FleetStore.Holders held = store.renewals.get(0).get(FleetKeys.of(APP));
        assertThat(held.leases()).hasSize(2);

        admission.release(a.ticket);
        assertThat(store.released).hasSize(1);
        now += 5_000;
        leases.tick();
        assertThat(store.renewals.get(1).get(FleetKeys.of(APP)).leases()).as("a released lease is not renewed")
                .hasSize(1);
        admission.release(b.ticket);
        assertThat(gauge("connguard.fleet.leases")).as("the series goes with the client's last lease").isNaN();
    }

    @Test
    void anUnreachableStoreIsReportedOnceAndTheLocalCapsAdmitMeanwhile() {
        Waiter first = new Waiter(1);
        admission.request(first.ticket);
        Waiter waiting = new Waiter(1);
        admission.request(waiting.ticket);
        assertThat(waiting.events).containsExactly("queued");
        assertThat(gauge("connguard.fleet.store.up")).isEqualTo(1.0);

        try (LogCapture log = new LogCapture(FleetLeases.class.getName())) {
            store.down = true;
            now += 5_000;
            leases.tick();
            assertThat(leases.enforcing()).isFalse();
            assertThat(gauge("connguard.fleet.store.up")).isEqualTo(0.0);
            assertThat(waiting.events).as("waiting only for the fleet, it is admitted by the local caps")
                    .containsExactly("queued", "admitted");
            int asked = store.acquires;
            Waiter during = new Waiter(1);
            assertThat(admission.request(during.ticket)).isEqualTo(Decision.ADMITTED);
            assertThat(store.acquires).as("the store is not asked while it is away").isEqualTo(asked);
            for (int i = 0; i < 5; i++) {
                now += 1_000;
                leases.tick();
            }
            assertThat(log.lines("WARN", "does not answer")).as("one WARN per outage").hasSize(1);
            assertThat(gauge("connguard.fleet.leases")).as("every holder is still counted here").isEqualTo(3.0);
        }
    }

    @Test
    void whenTheStoreAnswersAgainEveryLiveHolderIsRegisteredAgainAndTheCapHolds() {
        admission.request(new Waiter(2).ticket);
        store.down = true;
        now += 5_000;
        leases.tick();
        admission.request(new Waiter(2).ticket);
        admission.request(new Waiter(2).ticket);
        // The store lost everything while it was away (a restart without persistence).
        store.leases.clear();
        store.down = false;

        try (LogCapture log = new LogCapture(FleetLeases.class.getName())) {
            now += FleetLeases.RETRY_MILLIS;
            leases.tick();
            assertThat(leases.enforcing()).isTrue();
            assertThat(store.leases.get(FleetKeys.of(APP))).as("three live holders against a cap of 2, none killed")
                    .hasSize(3);
            assertThat(log.lines("INFO", "answers again")).hasSize(1);
        }
        Waiter late = new Waiter(2);
        assertThat(admission.request(late.ticket)).isEqualTo(Decision.PENDING);
        assertThat(late.events).as("the budget is enforced again").containsExactly("queued");
    }

    @Test
    void aFreedLeaseAnnouncedByTheStoreWakesTheWaitersAtOnce() {
        Waiter holder = new Waiter(1);
        admission.request(holder.ticket);
        Waiter waiting = new Waiter(1);
        admission.request(waiting.ticket);
        assertThat(waiting.events).containsExactly("queued");
        admission.release(holder.ticket);
        assertThat(waiting.events).as("woken by the announcement, before any poll").containsExactly("queued", "admitted");
    }

    @Test
    void withoutAnAnnouncementTheSlowPollWakesTheWaiters() {
        Waiter holder = new Waiter(1);
        admission.request(holder.ticket);
        Waiter waiting = new Waiter(1);
        admission.request(waiting.ticket);
        // Another replica's lease expired: nothing is announced, the lease is simply gone from the store.
        store.leases.get(FleetKeys.of(APP)).clear();
        now += FleetLeases.POLL_MILLIS - 1;
        leases.tick();
        assertThat(waiting.events).containsExactly("queued");
        now += 1;
        leases.tick();
        assertThat(waiting.events).containsExactly("queued", "admitted");
    }

    @Test
    void aWaiterAsksAgainWhenTheFirstLiveLeaseExpiresWithoutWaitingForThePoll() {
        Waiter holder = new Waiter(1);
        admission.request(holder.ticket);
        store.nextExpiry = 100;
        Waiter waiting = new Waiter(1);
        admission.request(waiting.ticket);
        // The holder's replica died: its lease is gone at its expiry, and nobody announces it.
        store.leases.get(FleetKeys.of(APP)).clear();
        now += 100 + FleetLeases.EXPIRY_SLACK_MILLIS - 1;
        leases.tick();
        assertThat(waiting.events).containsExactly("queued");
        now += 1;
        leases.tick();
        assertThat(waiting.events).as("well before the 500 ms poll").containsExactly("queued", "admitted");
    }

    @Test
    void aWaiterAdmittedWhileTheStoreWentAwayIsRenewedAsALeaseOnlyNeverAsAQueuePlace() {
        admission.request(new Waiter(1).ticket);
        Waiter waiting = new Waiter(1);
        admission.request(waiting.ticket);
        assertThat(waiting.events).containsExactly("queued");
        // The poll makes it ask again just as the store goes away: the answer is UNAVAILABLE.
        store.down = true;
        admission.fleetWakeAll();
        assertThat(waiting.events).containsExactly("queued", "admitted");
        store.down = false;
        now += FleetLeases.RETRY_MILLIS;
        leases.tick();
        assertThat(leases.enforcing()).isTrue();
        now += 5_000;
        leases.tick();
        FleetStore.Holders renewed = store.renewals.get(store.renewals.size() - 1).get(FleetKeys.of(APP));
        assertThat(renewed.leases()).hasSize(2);
        assertThat(renewed.waiters()).as("it would keep a place ahead of every later waiter").isEmpty();
    }
}
