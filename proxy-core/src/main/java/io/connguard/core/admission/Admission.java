package io.connguard.core.admission;

import io.connguard.core.admission.FleetGate.Answer;
import io.connguard.core.config.Limits;
import io.connguard.core.timers.LeakWatch;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import java.util.concurrent.Executor;
import java.util.function.LongSupplier;

/**
 * The upstream-connection permits of one listener: a cap per client key and one for the listener, and a
 * FIFO queue of connections waiting for a slot. This is the only state sessions on different event loops
 * share, so every change happens under one lock; the uncontended path is a few field updates.
 *
 * <p>A {@link Ticket} is one connection's claim. It moves NEW → WAITING → ADMITTED → RELEASED (or straight
 * to ADMITTED, or to REJECTED), and {@link #release} is idempotent, so a permit is given back exactly once
 * however a session ends. Waiters are admitted in arrival order, each as soon as both its client key and
 * the listener have room; the grant is delivered on the waiter's own executor.
 *
 * <p>A client whose limits have a {@code fleetMaxConnections} also needs a lease from the {@link FleetGate}:
 * with local room the ticket takes its permit and goes LEASING while the store answers (the caller sees
 * {@link Decision#PENDING}); GRANTED admits it, QUEUED gives the permit back and queues the ticket here in
 * its arrival place, where it waits, as for a local cap, until the gate wakes its key (a lease was freed
 * somewhere in the fleet) or the store goes away (then the local caps alone decide).
 *
 * <p>A {@link Reservation} is a listener slot alone, for an upstream connection opened before its client
 * is known. When the client turns out to have room it becomes the ticket's listener slot; when it does
 * not, one connection per client key may stay on it on probation (state PROBATION: it holds the
 * listener slot, never a client slot) and later ask for a client slot like any waiter. A client with a
 * fleet cap does neither: its request ignores the reservation (whose connection the caller then drops).
 */
public final class Admission {

    /** Why a connection was not admitted. */
    public enum Rejection {
        QUEUE_TIMEOUT, QUEUE_FULL, LISTENER_CAP, DRAINING,
        /** Over {@code maxClientConnections}: decided by {@link ClientConnections}, never queued. */
        CLIENT_CONNECTIONS
    }

    /**
     * The result of a request. PENDING: a fleet lease is being asked for; the grantee hears
     * {@code admitted}, {@code queued} or {@code rejected} later, and the caller treats it as queued for its
     * queue timeout.
     */
    public enum Decision { ADMITTED, QUEUED, REJECTED, PENDING, PROBATION }

    /** Told, on the ticket's executor, how a queued connection's wait ended. */
    public interface Grantee {
        /** The connection got its slot. */
        void admitted();

        /** The wait was cut short (the proxy started draining, or the fleet's queue refused it). */
        void rejected(Rejection why);

        /** A PENDING request found the fleet's budget used up: the connection now waits in the queue. */
        default void queued() {
        }
    }

    private enum State { NEW, WAITING, LEASING, ADMITTED, PROBATION, RELEASED, REJECTED }

    /** A listener slot held for an upstream connection whose client is not known yet (see {@link #reserve}). */
    public static final class Reservation {
        private boolean held = true;

        private Reservation() {
        }
    }

    /** One connection's claim on a slot. */
    public static final class Ticket {
        private final Executor executor;
        private final Grantee grantee;
        private ClientKey key;
        private Limits limits;
        private Entry entry;
        private State state = State.NEW;
        private Rejection rejection;
        private long seq;
        /** The fleet lease this ticket holds or asks for; null when its client has no fleet cap. */
        private String leaseId;
        /** Whether the grantee counts this ticket as queued (QUEUED was returned or {@code queued()} told). */
        private boolean announced;
        /** The reservation whose listener slot this ticket uses (or will use when admitted after probation). */
        private Reservation reservation;
        /** Counted in its entry's probation count, until admitted or released. */
        private boolean onProbation;
        /** Counted in reservedWaiters while it waits. */
        private boolean waitsReserved;

        public Ticket(ClientKey key, Limits limits, Executor executor, Grantee grantee) {
            this.key = key;
            this.limits = limits;
            this.executor = executor;
            this.grantee = grantee;
        }

        /** Why the last request or expiry rejected this ticket. */
        public Rejection rejection() {
            return rejection;
        }

        /**
         * The leak watch of this ticket's client key, shared by its sessions; null before {@link #request}.
         * Read it on the ticket owner's thread (the one that requests and re-keys).
         */
        public LeakWatch leaks() {
            Entry current = entry;
            return current == null ? null : current.leaks;
        }
    }

    /** Counts for one client key, for {@code /clients}; {@code probation}: connections without a client slot. */
    public record ClientCounts(ClientKey key, int admitted, int waiting, Limits limits, int probation) {
    }

    private static final class Entry {
        final ClientKey key;
        final LeakWatch leaks;
        int admitted;
        /** The most connections this key held at once since its entry was made. */
        int highWater;
        int waiting;
        int probation;
        /** Transaction mode: client connections of this key that hold no ticket between transactions. */
        int holders;
        Limits limits;
        /** The fleet answered QUEUED: waiters of this key ask again only when the gate wakes the key. */
        boolean fleetBlocked;

        Entry(ClientKey key, Limits limits, LeakWatch leaks) {
            this.key = key;
            this.limits = limits;
            this.leaks = leaks;
        }
    }

    /** What a change decided that must happen outside the lock: grants, rejections, fleet calls, pressure. */
    private static final class After {
        /** A leak watch to tell that a connection of its client waited or was refused at a cap. */
        LeakWatch pressed;
        String pressure;
        List<Ticket> granted;
        List<Ticket> rejected;
        List<Ticket> queued;
        List<Ticket> leasing;
        List<Ticket> holds;
        List<LeaseRef> releases;

        static List<Ticket> add(List<Ticket> list, Ticket ticket) {
            List<Ticket> out = list == null ? new ArrayList<>(2) : list;
            out.add(ticket);
            return out;
        }

        /** Gives back what the ticket holds or asked for in the fleet, once it has let go of it here. */
        void release(Ticket ticket) {
            if (ticket.leaseId != null) {
                if (releases == null) {
                    releases = new ArrayList<>(2);
                }
                releases.add(new LeaseRef(ticket.key, ticket.leaseId));
            }
        }
    }

    private record LeaseRef(ClientKey key, String id) {
    }

    private final LongSupplier clock;
    private final Object lock = new Object();
    private final Map<ClientKey, Entry> entries = new HashMap<>();
    private final TreeSet<Ticket> queue = new TreeSet<>(Comparator.comparingLong(t -> t.seq));
    private final FleetGate fleet;
    private int listenerCap;
    private int listenerAdmitted;
    /** Waiting tickets that already hold a listener slot through their reservation. */
    private int reservedWaiters;
    private long sequence;
    private boolean refusing;

    /** @param listenerCap the listener's {@code maxUpstreamConnections}; 0 = none */
    public Admission(int listenerCap) {
        this(listenerCap, System::nanoTime, FleetGate.OFF);
    }

    /** @param clock the nanosecond clock the leak watches remember pressure by */
    public Admission(int listenerCap, LongSupplier clock) {
        this(listenerCap, clock, FleetGate.OFF);
    }

    /** @param fleet where leases on fleet budgets come from */
    public Admission(int listenerCap, FleetGate fleet) {
        this(listenerCap, System::nanoTime, fleet);
    }

    /**
     * @param listenerCap the listener's {@code maxUpstreamConnections}; 0 = none
     * @param clock       the nanosecond clock the leak watches remember pressure by
     * @param fleet       where leases on fleet budgets come from ({@link FleetGate#OFF} when there is no store)
     */
    public Admission(int listenerCap, LongSupplier clock, FleetGate fleet) {
        this.listenerCap = listenerCap;
        this.clock = clock;
        this.fleet = fleet;
    }

    /**
     * Asks for a slot. ADMITTED: the connection may open its upstream now. QUEUED: it waits; the caller
     * schedules {@link #expire} at its queue timeout. PENDING: as QUEUED, but the grantee is told
     * {@code queued()} only if the fleet's budget turns out to be used up. REJECTED: see {@link Ticket#rejection()}.
     */
    public Decision request(Ticket ticket) {
        return request(ticket, null, false);
    }

    /**
     * A listener slot alone, for an upstream connection opened before its client is known, or null when
     * the listener is at its cap or draining. Give it back with {@link #release(Reservation)} once that
     * connection is closed; it is a no-op after {@link #request(Ticket, Reservation, boolean)} made it a
     * ticket's slot.
     */
    public Reservation reserve() {
        synchronized (lock) {
            if (refusing || !listenerHasRoom()) {
                return null;
            }
            listenerAdmitted++;
            return new Reservation();
        }
    }

    /** Gives a reservation's listener slot back, unless a ticket took it over. Idempotent. */
    public void release(Reservation reservation) {
        After after = new After();
        synchronized (lock) {
            if (!reservation.held) {
                return;
            }
            reservation.held = false;
            listenerAdmitted--;
            dispatch(after);
        }
        run(after);
    }

    /**
     * Asks for a slot for a connection that holds {@code reservation} (may be null): when the client has
     * room the reservation becomes the ticket's listener slot (ADMITTED). When it has none and
     * {@code probation} is allowed, the first such connection of its client key is put on probation
     * (PROBATION: it keeps only the reservation; see {@link #requestAfterProbation}). Otherwise as
     * {@link #request(Ticket)}, the reservation staying the caller's to release. A client with a fleet cap
     * ignores the reservation (it may have to wait for the store, which an early connection cannot).
     */
    public Decision request(Ticket ticket, Reservation reservation, boolean probation) {
        After after = null;
        Decision decision;
        int grewTo = 0;
        Entry entry;
        synchronized (lock) {
            if (ticket.state != State.NEW) {
                throw new IllegalStateException("ticket already used: " + ticket.state);
            }
            if (refusing) {
                return reject(ticket, Rejection.DRAINING);
            }
            entry = entry(ticket.key, ticket.limits);
            ticket.entry = entry;
            ticket.seq = ++sequence;
            if (fleetCapped(ticket.limits)) {
                ticket.leaseId = fleet.newLeaseId();
            }
            Limits limits = ticket.limits;
            boolean reserved = reservation != null && reservation.held && ticket.leaseId == null;
            if (clientHasRoom(ticket) && (reserved || listenerHasRoom())) {
                ticket.reservation = reserved ? reservation : null;
                grewTo = admit(ticket);
                decision = Decision.ADMITTED;
                if (ticket.leaseId != null) {
                    after = new After();
                    if (fleet.enforcing()) {
                        ticket.state = State.LEASING;
                        after.leasing = After.add(null, ticket);
                        decision = Decision.PENDING;
                    } else {
                        after.holds = After.add(null, ticket);
                    }
                }
            } else if (reserved && probation && entry.probation == 0) {
                ticket.reservation = reservation;
                ticket.onProbation = true;
                entry.probation++;
                ticket.state = State.PROBATION;
                decision = Decision.PROBATION;
            } else if (limits.queueTimeout().isZero()) {
                decision = rejectNew(ticket, clientHasRoom(ticket) ? Rejection.LISTENER_CAP : Rejection.QUEUE_TIMEOUT);
            } else if (entry.waiting >= limits.maxQueued()) {
                decision = rejectNew(ticket, Rejection.QUEUE_FULL);
            } else {
                enqueue(ticket);
                ticket.announced = true;
                decision = Decision.QUEUED;
            }
        }
        run(after);
        // Leak watches hear of pressure outside the lock: telling a candidate hops onto its event loop.
        switch (decision) {
            case QUEUED, PROBATION -> entry.leaks.queued("a connection of the same client had to wait at its cap");
            case REJECTED -> entry.leaks.queued("a connection of the same client was refused at its cap");
            case ADMITTED, PENDING -> {
                if (grewTo > 1) {
                    entry.leaks.pressure("the same client opened more connections at once than before (" + grewTo + ")");
                }
            }
        }
        return decision;
    }

    /**
     * A connection on probation needs its own client slot: ADMITTED at once when its client has room (the
     * reservation stays its listener slot), else QUEUED like any waiter (it keeps its reservation and its
     * probation place while it waits, so its client key has at most one such connection), or REJECTED.
     */
    public Decision requestAfterProbation(Ticket ticket) {
        synchronized (lock) {
            if (ticket.state != State.PROBATION) {
                throw new IllegalStateException("ticket not on probation: " + ticket.state);
            }
            if (refusing) {
                return reject(ticket, Rejection.DRAINING);
            }
            if (clientHasRoom(ticket) && canUseListener(ticket)) {
                admit(ticket);
                return Decision.ADMITTED;
            }
            Limits limits = ticket.limits;
            if (limits.queueTimeout().isZero()) {
                return reject(ticket, Rejection.QUEUE_TIMEOUT);
            }
            if (ticket.entry.waiting >= limits.maxQueued()) {
                return reject(ticket, Rejection.QUEUE_FULL);
            }
            enqueue(ticket);
            ticket.announced = true;
            return Decision.QUEUED;
        }
    }

    private Entry entry(ClientKey key, Limits limits) {
        Entry entry = entries.get(key); // no capturing lambda on the common path, where the entry exists
        if (entry == null) {
            entry = new Entry(key, limits, new LeakWatch(clock));
            entries.put(key, entry);
        }
        entry.limits = limits;
        return entry;
    }

    /**
     * The queue timeout of a waiting ticket: returns why it is rejected, or null when it was admitted
     * (or left) in the meantime.
     */
    public Rejection expire(Ticket ticket) {
        After after = new After();
        Rejection why;
        synchronized (lock) {
            if (ticket.state == State.LEASING) {
                // The store has not answered within the queue timeout: the permit is given back now, the lease
                // (if it comes) when the answer does.
                unadmit(ticket);
                why = Rejection.QUEUE_TIMEOUT;
                dispatch(after);
            } else if (ticket.state == State.WAITING) {
                why = clientHasRoom(ticket) && !ticket.entry.fleetBlocked ? Rejection.LISTENER_CAP
                        : Rejection.QUEUE_TIMEOUT;
                unqueue(ticket);
                after.release(ticket);
            } else {
                return null;
            }
            ticket.state = State.REJECTED;
            ticket.rejection = why;
            removeIfUnused(ticket.entry);
            after.pressed = ticket.entry.leaks;
            after.pressure = "a connection of the same client was refused after waiting at its cap";
        }
        run(after);
        return why;
    }

    /**
     * Gives the slot back, or leaves the queue. Idempotent: call it on every way a connection ends.
     * Returns true when it released a held slot.
     */
    public boolean release(Ticket ticket) {
        After after = null;
        boolean held = false;
        synchronized (lock) {
            switch (ticket.state) {
                case WAITING -> {
                    after = new After();
                    unqueue(ticket);
                    ticket.state = State.RELEASED;
                    endProbation(ticket);
                    removeIfUnused(ticket.entry);
                    after.release(ticket);
                }
                case LEASING -> {
                    // The lease, if granted, is given back when the store's answer arrives.
                    after = new After();
                    unadmit(ticket);
                    ticket.state = State.RELEASED;
                    removeIfUnused(ticket.entry);
                    dispatch(after);
                }
                case ADMITTED -> {
                    unadmit(ticket);
                    ticket.state = State.RELEASED;
                    removeIfUnused(ticket.entry);
                    held = true;
                    // Nothing to do outside the lock in the common case (a pooled session's transaction ends,
                    // no fleet lease, nobody queued): no After allocated per transaction.
                    if (ticket.leaseId != null || !queue.isEmpty()) {
                        after = new After();
                        after.release(ticket);
                        dispatch(after);
                    }
                }
                default -> {
                    ticket.state = State.RELEASED;
                    if (ticket.onProbation) {
                        endProbation(ticket);
                        removeIfUnused(ticket.entry);
                    }
                }
            }
        }
        run(after);
        return held;
    }

    /**
     * Moves an admitted or waiting connection to another client key (MySQL COM_CHANGE_USER, a new
     * application_name, a reload that changed {@code clients.identity}) without queueing: the new key may go
     * over its cap, which then stops admitting until it is back under; a waiter keeps its place in the queue.
     * A fleet lease moves the same way: the old key's lease or queue place is given back; an admitted
     * connection is counted in the new key's budget without asking, a waiter asks when its turn comes, and a
     * connection whose lease is being asked for asks the new key's budget instead.
     */
    public void rekey(Ticket ticket, ClientKey key, Limits limits) {
        After after = new After();
        synchronized (lock) {
            ticket.limits = limits;
            boolean counted = ticket.state == State.ADMITTED || ticket.state == State.WAITING
                    || ticket.state == State.LEASING || ticket.onProbation;
            if (!counted || ticket.key.equals(key)) {
                ticket.key = key;
                if (ticket.entry != null) {
                    ticket.entry.limits = limits;
                }
                return;
            }
            Entry old = ticket.entry;
            Entry entry = entry(key, limits);
            if (ticket.state == State.WAITING) {
                queue.remove(ticket);
                old.waiting--;
                entry.waiting++;
            } else if (ticket.state == State.ADMITTED || ticket.state == State.LEASING) {
                old.admitted--;
                entry.admitted++;
                entry.highWater = Math.max(entry.highWater, entry.admitted);
            }
            if (ticket.onProbation) {
                old.probation--;
                entry.probation++;
            }
            removeIfUnused(old);
            after.release(ticket);
            ticket.leaseId = null;
            ticket.key = key;
            ticket.entry = entry;
            if (fleetCapped(limits) && ticket.state != State.PROBATION) {
                ticket.leaseId = fleet.newLeaseId();
                if (ticket.state == State.ADMITTED) {
                    after.holds = After.add(null, ticket);
                } else if (ticket.state == State.LEASING) {
                    after.leasing = After.add(null, ticket);
                }
            } else if (ticket.state == State.LEASING) {
                ticket.state = State.ADMITTED;
                after.granted = After.add(null, ticket);
            }
            if (ticket.state == State.WAITING) {
                queue.add(ticket);
            }
            dispatch(after);
        }
        run(after);
    }

    /**
     * New limits for a ticket after a reload; a raised cap admits waiters at once. An admitted connection
     * whose client gained a fleet cap is counted in it from now on; one whose client lost it gives its lease back.
     */
    public void update(Ticket ticket, Limits limits) {
        After after = new After();
        synchronized (lock) {
            ticket.limits = limits;
            if (ticket.entry != null) {
                ticket.entry.limits = limits;
            }
            if (ticket.state == State.ADMITTED) {
                if (ticket.leaseId == null && fleetCapped(limits)) {
                    ticket.leaseId = fleet.newLeaseId();
                    after.holds = After.add(null, ticket);
                } else if (ticket.leaseId != null && limits.fleetMaxConnections() == 0) {
                    after.release(ticket);
                    ticket.leaseId = null;
                }
            }
            dispatch(after);
        }
        run(after);
    }

    /**
     * Transaction mode: a client connection of {@code key} that takes a ticket per transaction keeps its key
     * known between transactions, so that its leak watch (and the most connections the key held at once)
     * outlive each ticket. Returns that leak watch; give the hold back with {@link #unhold}.
     */
    public LeakWatch hold(ClientKey key, Limits limits) {
        synchronized (lock) {
            Entry entry = entries.computeIfAbsent(key, k -> new Entry(k, limits, new LeakWatch(clock)));
            entry.holders++;
            return entry.leaks;
        }
    }

    /** The client connection that called {@link #hold} closed (or moved to another key). */
    public void unhold(ClientKey key) {
        synchronized (lock) {
            Entry entry = entries.get(key);
            if (entry != null && entry.holders > 0) {
                entry.holders--;
                removeIfUnused(entry);
            }
        }
    }

    /**
     * A connection of {@code key} was refused at {@code maxClientConnections}: its client needs more
     * connections than it may open, which makes its idle ones leak suspects.
     */
    public void clientConnectionRefused(ClientKey key) {
        LeakWatch leaks;
        synchronized (lock) {
            Entry entry = entries.get(key);
            leaks = entry == null ? null : entry.leaks;
        }
        if (leaks != null) {
            leaks.queued("a connection of the same client was refused at maxClientConnections");
        }
    }

    /** A new listener cap after a reload; lowering never evicts, raising admits waiters. */
    public void updateListenerCap(int cap) {
        After after = new After();
        synchronized (lock) {
            listenerCap = cap;
            dispatch(after);
        }
        run(after);
    }

    /** A lease was freed in the fleet for {@code key}: its waiters ask the store again. Call from any thread. */
    public void fleetWake(ClientKey key) {
        After after = new After();
        synchronized (lock) {
            Entry entry = entries.get(key);
            if (entry == null || !entry.fleetBlocked) {
                return;
            }
            entry.fleetBlocked = false;
            dispatch(after);
        }
        run(after);
    }

    /** The store came or went: every key's waiters look again (while it is away the local caps decide). */
    public void fleetWakeAll() {
        After after = new After();
        synchronized (lock) {
            for (Entry entry : entries.values()) {
                entry.fleetBlocked = false;
            }
            dispatch(after);
        }
        run(after);
    }

    /** From now on every request is rejected as DRAINING, and so is every connection still waiting. */
    public void refuse() {
        After after = new After();
        synchronized (lock) {
            refusing = true;
            List<Ticket> waiting = new ArrayList<>(queue);
            for (Ticket ticket : waiting) {
                unqueue(ticket);
                ticket.state = State.REJECTED;
                ticket.rejection = Rejection.DRAINING;
                removeIfUnused(ticket.entry);
                after.rejected = After.add(after.rejected, ticket);
                after.release(ticket);
            }
        }
        run(after);
    }

    public boolean refusing() {
        synchronized (lock) {
            return refusing;
        }
    }

    /** Whether the ticket holds a slot now. */
    public boolean holds(Ticket ticket) {
        synchronized (lock) {
            return ticket.state == State.ADMITTED;
        }
    }

    public int admitted() {
        synchronized (lock) {
            return listenerAdmitted;
        }
    }

    public int waiting() {
        synchronized (lock) {
            return queue.size();
        }
    }

    public List<ClientCounts> clients() {
        synchronized (lock) {
            List<ClientCounts> counts = new ArrayList<>(entries.size());
            for (Entry entry : entries.values()) {
                counts.add(new ClientCounts(entry.key, entry.admitted, entry.waiting, entry.limits, entry.probation));
            }
            return counts;
        }
    }

    /** The store's answer to a LEASING ticket's request; runs on whatever thread the store answered on. */
    private void leased(Ticket ticket, String id, Answer answer) {
        After after = new After();
        synchronized (lock) {
            if (!id.equals(ticket.leaseId)) {
                // Asked under a key the ticket has left (re-keyed): that lease was given back already.
                return;
            }
            if (ticket.state != State.LEASING) {
                // Released, timed out or refused while the store answered: nothing waits for this lease.
                after.release(ticket);
            } else if (refusing) {
                unadmit(ticket);
                ticket.state = State.REJECTED;
                ticket.rejection = Rejection.DRAINING;
                removeIfUnused(ticket.entry);
                after.rejected = After.add(null, ticket);
                after.release(ticket);
                dispatch(after);
            } else if (answer != Answer.QUEUED) {
                ticket.state = State.ADMITTED;
                after.granted = After.add(null, ticket);
            } else {
                Entry entry = ticket.entry;
                unadmit(ticket);
                entry.fleetBlocked = true;
                Rejection why = ticket.limits.queueTimeout().isZero() ? Rejection.QUEUE_TIMEOUT
                        : !ticket.announced && entry.waiting >= ticket.limits.maxQueued() ? Rejection.QUEUE_FULL : null;
                if (why != null) {
                    ticket.state = State.REJECTED;
                    ticket.rejection = why;
                    removeIfUnused(entry);
                    after.rejected = After.add(null, ticket);
                    after.release(ticket);
                } else {
                    enqueue(ticket);
                    if (!ticket.announced) {
                        ticket.announced = true;
                        after.queued = After.add(null, ticket);
                    }
                }
                after.pressed = entry.leaks;
                after.pressure = "a connection of the same client had to wait at its fleet cap";
                dispatch(after);
            }
        }
        run(after);
    }

    private boolean fleetCapped(Limits limits) {
        return limits.fleetMaxConnections() > 0 && fleet.enabled();
    }

    private boolean clientHasRoom(Ticket ticket) {
        int cap = ticket.limits.maxConnections();
        return cap == 0 || ticket.entry.admitted < cap;
    }

    private boolean listenerHasRoom() {
        return listenerCap == 0 || listenerAdmitted < listenerCap;
    }

    /** Returns the key's new high-water mark when this admission raised it, else 0. */
    private int admit(Ticket ticket) {
        ticket.state = State.ADMITTED;
        Entry entry = ticket.entry;
        entry.admitted++;
        endProbation(ticket);
        if (reserved(ticket)) {
            ticket.reservation.held = false; // its listener slot is now the ticket's, given back by release(ticket)
        } else {
            listenerAdmitted++;
        }
        if (entry.admitted > entry.highWater) {
            entry.highWater = entry.admitted;
            return entry.highWater;
        }
        return 0;
    }

    /** The ticket's own reservation still holds a listener slot it can use. */
    private static boolean reserved(Ticket ticket) {
        return ticket.reservation != null && ticket.reservation.held;
    }

    private boolean canUseListener(Ticket ticket) {
        return reserved(ticket) || listenerHasRoom();
    }

    private void endProbation(Ticket ticket) {
        if (ticket.onProbation) {
            ticket.onProbation = false;
            ticket.entry.probation--;
        }
    }

    private void unadmit(Ticket ticket) {
        ticket.entry.admitted--;
        listenerAdmitted--;
    }

    private void enqueue(Ticket ticket) {
        ticket.state = State.WAITING;
        ticket.entry.waiting++;
        queue.add(ticket);
        if (reserved(ticket)) {
            ticket.waitsReserved = true;
            reservedWaiters++;
        }
    }

    private Decision reject(Ticket ticket, Rejection why) {
        ticket.state = State.REJECTED;
        ticket.rejection = why;
        return Decision.REJECTED;
    }

    private Decision rejectNew(Ticket ticket, Rejection why) {
        reject(ticket, why);
        removeIfUnused(ticket.entry);
        return Decision.REJECTED;
    }

    private void unqueue(Ticket ticket) {
        queue.remove(ticket);
        leftQueue(ticket);
    }

    private void leftQueue(Ticket ticket) {
        ticket.entry.waiting--;
        if (ticket.waitsReserved) {
            ticket.waitsReserved = false;
            reservedWaiters--;
        }
    }

    private void removeIfUnused(Entry entry) {
        if (entry != null && entry.admitted == 0 && entry.waiting == 0 && entry.probation == 0 && entry.holders == 0) {
            entries.remove(entry.key, entry);
        }
    }

    /**
     * Admits waiters in arrival order while there is room; a waiter that needs a fleet lease takes its permit
     * and asks the store, unless its key's budget was found used up and no lease has been freed since.
     * Call under the lock; {@link #run} the result outside it.
     */
    private void dispatch(After after) {
        if (queue.isEmpty() || !listenerHasRoom() && reservedWaiters == 0) {
            return;
        }
        boolean enforcing = fleet.enforcing();
        var it = queue.iterator();
        while (it.hasNext() && (listenerHasRoom() || reservedWaiters > 0)) {
            Ticket ticket = it.next();
            if (!clientHasRoom(ticket) || !canUseListener(ticket)) {
                continue;
            }
            boolean lease = ticket.leaseId != null && enforcing;
            if (lease && ticket.entry.fleetBlocked) {
                continue;
            }
            it.remove();
            leftQueue(ticket);
            admit(ticket);
            if (lease) {
                ticket.state = State.LEASING;
                after.leasing = After.add(after.leasing, ticket);
            } else {
                after.granted = After.add(after.granted, ticket);
                if (ticket.leaseId != null) {
                    after.holds = After.add(after.holds, ticket);
                }
            }
        }
    }

    /** Carries out, outside the lock, what a change decided. */
    private void run(After after) {
        if (after == null) {
            return;
        }
        if (after.releases != null) {
            for (LeaseRef lease : after.releases) {
                fleet.release(lease.key(), lease.id());
            }
        }
        if (after.holds != null) {
            for (Ticket ticket : after.holds) {
                fleet.hold(this, ticket.key, ticket.leaseId, ticket.limits.fleetMaxConnections());
            }
        }
        if (after.granted != null) {
            for (Ticket ticket : after.granted) {
                ticket.executor.execute(ticket.grantee::admitted);
            }
        }
        if (after.queued != null) {
            for (Ticket ticket : after.queued) {
                ticket.executor.execute(ticket.grantee::queued);
            }
        }
        if (after.rejected != null) {
            for (Ticket ticket : after.rejected) {
                Rejection why = ticket.rejection;
                ticket.executor.execute(() -> ticket.grantee.rejected(why));
            }
        }
        if (after.leasing != null) {
            for (Ticket ticket : after.leasing) {
                String id = ticket.leaseId;
                fleet.acquire(this, ticket.key, id, ticket.limits.fleetMaxConnections(),
                        answer -> leased(ticket, id, answer));
            }
        }
        if (after.pressed != null) {
            after.pressed.queued(after.pressure);
        }
    }
}
