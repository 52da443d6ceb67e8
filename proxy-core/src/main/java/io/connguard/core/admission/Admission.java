package io.connguard.core.admission;

import io.connguard.core.config.Limits;
import io.connguard.core.timers.LeakWatch;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
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
 */
public final class Admission {

    /** Why a connection was not admitted. */
    public enum Rejection {
        QUEUE_TIMEOUT, QUEUE_FULL, LISTENER_CAP, DRAINING,
        /** Over {@code maxClientConnections}: decided by {@link ClientConnections}, never queued. */
        CLIENT_CONNECTIONS
    }

    /** The result of a request. */
    public enum Decision { ADMITTED, QUEUED, REJECTED }

    /** Told, on the ticket's executor, how a queued connection's wait ended. */
    public interface Grantee {
        /** The connection got its slot. */
        void admitted();

        /** The wait was cut short (the proxy started draining). */
        void rejected(Rejection why);
    }

    private enum State { NEW, WAITING, ADMITTED, RELEASED, REJECTED }

    /** One connection's claim on a slot. */
    public static final class Ticket {
        private final Executor executor;
        private final Grantee grantee;
        private ClientKey key;
        private Limits limits;
        private Entry entry;
        private State state = State.NEW;
        private Rejection rejection;

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

    /** Counts for one client key, for {@code /clients}. */
    public record ClientCounts(ClientKey key, int admitted, int waiting, Limits limits) {
    }

    private static final class Entry {
        final ClientKey key;
        final LeakWatch leaks;
        int admitted;
        /** The most connections this key held at once since its entry was made. */
        int highWater;
        int waiting;
        Limits limits;

        Entry(ClientKey key, Limits limits, LeakWatch leaks) {
            this.key = key;
            this.limits = limits;
            this.leaks = leaks;
        }
    }

    private final LongSupplier clock;
    private final Object lock = new Object();
    private final Map<ClientKey, Entry> entries = new HashMap<>();
    private final LinkedHashSet<Ticket> queue = new LinkedHashSet<>();
    private int listenerCap;
    private int listenerAdmitted;
    private boolean refusing;

    /** @param listenerCap the listener's {@code maxUpstreamConnections}; 0 = none */
    public Admission(int listenerCap) {
        this(listenerCap, System::nanoTime);
    }

    /** @param clock the nanosecond clock the leak watches remember pressure by */
    public Admission(int listenerCap, LongSupplier clock) {
        this.listenerCap = listenerCap;
        this.clock = clock;
    }

    /**
     * Asks for a slot. ADMITTED: the connection may open its upstream now. QUEUED: it waits; the caller
     * schedules {@link #expire} at its queue timeout. REJECTED: see {@link Ticket#rejection()}.
     */
    public Decision request(Ticket ticket) {
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
            if (clientHasRoom(ticket) && listenerHasRoom()) {
                grewTo = admit(ticket);
                decision = Decision.ADMITTED;
            } else if (ticket.limits.queueTimeout().isZero()) {
                decision = rejectNew(ticket, clientHasRoom(ticket) ? Rejection.LISTENER_CAP : Rejection.QUEUE_TIMEOUT);
            } else if (entry.waiting >= ticket.limits.maxQueued()) {
                decision = rejectNew(ticket, Rejection.QUEUE_FULL);
            } else {
                ticket.state = State.WAITING;
                entry.waiting++;
                queue.add(ticket);
                decision = Decision.QUEUED;
            }
        }
        // Leak watches hear of pressure outside the lock: telling a candidate hops onto its event loop.
        switch (decision) {
            case QUEUED -> entry.leaks.queued("a connection of the same client had to wait at its cap");
            case REJECTED -> entry.leaks.queued("a connection of the same client was refused at its cap");
            case ADMITTED -> {
                if (grewTo > 1) {
                    entry.leaks.pressure("the same client opened more connections at once than before (" + grewTo + ")");
                }
            }
        }
        return decision;
    }

    private Entry entry(ClientKey key, Limits limits) {
        Entry entry = entries.computeIfAbsent(key, k -> new Entry(k, limits, new LeakWatch(clock)));
        entry.limits = limits;
        return entry;
    }

    /**
     * The queue timeout of a waiting ticket: returns why it is rejected, or null when it was admitted
     * (or left) in the meantime.
     */
    public Rejection expire(Ticket ticket) {
        LeakWatch leaks;
        Rejection rejected;
        synchronized (lock) {
            if (ticket.state != State.WAITING) {
                return null;
            }
            Rejection why = clientHasRoom(ticket) ? Rejection.LISTENER_CAP : Rejection.QUEUE_TIMEOUT;
            unqueue(ticket);
            ticket.state = State.REJECTED;
            ticket.rejection = why;
            removeIfUnused(ticket.entry);
            leaks = ticket.entry.leaks;
            rejected = why;
        }
        leaks.queued("a connection of the same client was refused after waiting at its cap");
        return rejected;
    }

    /**
     * Gives the slot back, or leaves the queue. Idempotent: call it on every way a connection ends.
     * Returns true when it released a held slot.
     */
    public boolean release(Ticket ticket) {
        List<Ticket> granted;
        boolean held;
        synchronized (lock) {
            switch (ticket.state) {
                case WAITING -> {
                    unqueue(ticket);
                    ticket.state = State.RELEASED;
                    removeIfUnused(ticket.entry);
                    return false;
                }
                case ADMITTED -> {
                    ticket.entry.admitted--;
                    listenerAdmitted--;
                    ticket.state = State.RELEASED;
                    removeIfUnused(ticket.entry);
                    held = true;
                }
                default -> {
                    ticket.state = State.RELEASED;
                    return false;
                }
            }
            granted = dispatch();
        }
        deliver(granted);
        return held;
    }

    /**
     * Moves an admitted or waiting connection to another client key (MySQL COM_CHANGE_USER, a new
     * application_name, a reload that changed {@code clients.identity}) without queueing: the new key may go
     * over its cap, which then stops admitting until it is back under; a waiter keeps its place in the queue.
     */
    public void rekey(Ticket ticket, ClientKey key, Limits limits) {
        List<Ticket> granted;
        synchronized (lock) {
            ticket.limits = limits;
            boolean counted = ticket.state == State.ADMITTED || ticket.state == State.WAITING;
            if (!counted || ticket.key.equals(key)) {
                ticket.key = key;
                if (ticket.entry != null) {
                    ticket.entry.limits = limits;
                }
                return;
            }
            Entry old = ticket.entry;
            Entry entry = entry(key, limits);
            if (ticket.state == State.ADMITTED) {
                old.admitted--;
                entry.admitted++;
                entry.highWater = Math.max(entry.highWater, entry.admitted);
            } else {
                old.waiting--;
                entry.waiting++;
            }
            removeIfUnused(old);
            ticket.key = key;
            ticket.entry = entry;
            granted = dispatch();
        }
        deliver(granted);
    }

    /** New limits for a ticket after a reload; a raised cap admits waiters at once. */
    public void update(Ticket ticket, Limits limits) {
        List<Ticket> granted;
        synchronized (lock) {
            ticket.limits = limits;
            if (ticket.entry != null) {
                ticket.entry.limits = limits;
            }
            granted = dispatch();
        }
        deliver(granted);
    }

    /** A new listener cap after a reload; lowering never evicts, raising admits waiters. */
    public void updateListenerCap(int cap) {
        List<Ticket> granted;
        synchronized (lock) {
            listenerCap = cap;
            granted = dispatch();
        }
        deliver(granted);
    }

    /** From now on every request is rejected as DRAINING, and so is every connection still waiting. */
    public void refuse() {
        List<Ticket> waiting;
        synchronized (lock) {
            refusing = true;
            waiting = new ArrayList<>(queue);
            for (Ticket ticket : waiting) {
                unqueue(ticket);
                ticket.state = State.REJECTED;
                ticket.rejection = Rejection.DRAINING;
                removeIfUnused(ticket.entry);
            }
        }
        for (Ticket ticket : waiting) {
            ticket.executor.execute(() -> ticket.grantee.rejected(Rejection.DRAINING));
        }
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
                counts.add(new ClientCounts(entry.key, entry.admitted, entry.waiting, entry.limits));
            }
            return counts;
        }
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
        listenerAdmitted++;
        if (entry.admitted > entry.highWater) {
            entry.highWater = entry.admitted;
            return entry.highWater;
        }
        return 0;
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
        ticket.entry.waiting--;
    }

    private void removeIfUnused(Entry entry) {
        if (entry != null && entry.admitted == 0 && entry.waiting == 0) {
            entries.remove(entry.key, entry);
        }
    }

    /** Admits waiters in arrival order while there is room; call under the lock, deliver outside it. */
    private List<Ticket> dispatch() {
        if (queue.isEmpty() || !listenerHasRoom()) {
            return List.of();
        }
        List<Ticket> granted = new ArrayList<>();
        var it = queue.iterator();
        while (it.hasNext() && listenerHasRoom()) {
            Ticket ticket = it.next();
            if (clientHasRoom(ticket)) {
                it.remove();
                ticket.entry.waiting--;
                admit(ticket);
                granted.add(ticket);
            }
        }
        return granted;
    }

    private static void deliver(List<Ticket> granted) {
        for (Ticket ticket : granted) {
            ticket.executor.execute(ticket.grantee::admitted);
        }
    }
}
