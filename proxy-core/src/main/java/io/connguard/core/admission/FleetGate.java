package io.connguard.core.admission;

import java.util.function.Consumer;

/**
 * The fleet side of admission: leases on a client's {@code fleetMaxConnections} budget, shared with every
 * replica that uses the same store and fleet name. {@link Admission} grants a ticket when it holds both its
 * local permit and a lease; the store itself lives behind this interface.
 *
 * <p>Admission calls these methods outside its own lock, and the gate calls back into admission
 * ({@link Admission#fleetWake}, {@link Admission#fleetWakeAll}) outside its lock, so neither waits for the other.
 */
public interface FleetGate {

    /** How the store answered a lease request. */
    enum Answer {
        /** The lease is held: the holder counts in the fleet's budget. */
        GRANTED,
        /** The budget is used up; the holder has a place in the fleet-wide queue of this key. */
        QUEUED,
        /** The store did not answer: the holder goes on under the local caps alone (it is still renewed). */
        UNAVAILABLE
    }

    /** Fleet budgets off: nothing is ever leased. */
    FleetGate OFF = new FleetGate() {
        @Override
        public boolean enabled() {
            return false;
        }

        @Override
        public boolean enforcing() {
            return false;
        }

        @Override
        public String newLeaseId() {
            return null;
        }

        @Override
        public void acquire(Admission admission, ClientKey key, String id, int cap, Consumer<Answer> answer) {
            answer.accept(Answer.UNAVAILABLE);
        }

        @Override
        public void hold(Admission admission, ClientKey key, String id, int cap) {
        }

        @Override
        public void release(ClientKey key, String id) {
        }
    };

    /** Whether a store is configured at all. */
    boolean enabled();

    /** Whether the store answers now; while it does not, only the local caps hold. */
    boolean enforcing();

    /** A lease id unique in the fleet, or null when fleet budgets are off. */
    String newLeaseId();

    /**
     * Asks for a lease for {@code id} on {@code key}'s budget of {@code cap}. {@code answer} runs exactly once, on
     * any thread. A GRANTED or UNAVAILABLE holder is held (and renewed) until {@link #release}; a QUEUED one
     * keeps its place in the fleet's queue until it asks again or is released.
     */
    void acquire(Admission admission, ClientKey key, String id, int cap, Consumer<Answer> answer);

    /** Counts {@code id} as held without asking (admitted by the local caps while the store was away, or moved). */
    void hold(Admission admission, ClientKey key, String id, int cap);

    /** Gives back the lease or the queue place of {@code id}; idempotent. */
    void release(ClientKey key, String id);
}
