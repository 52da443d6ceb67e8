package io.connguard.core.fleet;

import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletionStage;
import java.util.function.Consumer;

/**
 * The shared store that holds every replica's leases (Redis, see {@link RedisFleetStore}). Every call is
 * asynchronous and never blocks its caller; a failed or timed-out call completes exceptionally.
 *
 * <p>Per budget key the store keeps the live leases (each with an expiry) and a FIFO queue of holders
 * waiting for one. Keys are opaque strings made by {@link FleetKeys}.
 */
public interface FleetStore extends AutoCloseable {

    /**
     * A lease request's answer: granted, or queued with the time until the key's first live lease expires
     * (when nothing frees a lease earlier, asking again then may succeed; negative when unknown).
     */
    record Acquired(boolean granted, long nextExpiryMillis) {
    }

    /** The ids this process holds (leases) and waits with (queue places) under one key. */
    record Holders(List<String> leases, List<String> waiters) {
    }

    /**
     * Takes a lease for {@code id} when fewer than {@code cap} are live and no older waiter is ahead of it in
     * the key's queue; otherwise puts (or keeps) {@code id} in the queue.
     */
    CompletionStage<Acquired> acquire(String key, String id, int cap, long ttlMillis);

    /** Removes {@code id}'s lease or queue place and tells the other replicas that one was freed. */
    CompletionStage<Void> release(String key, String id);

    /**
     * Extends every lease and queue place this process holds by {@code ttlMillis} from now, registering again
     * those the store had lost (a restart without persistence, an expiry during an outage), whatever the cap.
     * Completes with how many it registered again. With nothing held it only checks the store answers.
     */
    CompletionStage<Integer> renew(Map<String, Holders> holders, long ttlMillis);

    /** The live leases per key across the fleet. */
    CompletionStage<Map<String, Integer>> count(Collection<String> keys);

    /** {@code listener} hears (on the store's thread) the key of every lease or queue place freed anywhere. */
    void onReleased(Consumer<String> listener);

    /** Starts connecting again if the store never answered since start (later losses reconnect by themselves). */
    void reconnect();

    /** Why the last attempt to connect failed (for the log; never holds a password), or null when none did. */
    default String lastFailure() {
        return null;
    }

    @Override
    void close();
}
