package io.connguard.core.timers;

import io.connguard.core.api.SessionState;
import io.connguard.core.config.Limits;
import io.netty.util.concurrent.FastThreadLocal;

import java.time.Duration;

/**
 * The idle-in-transaction, idle, lifetime and leak timers of one session, owned by its event loop.
 *
 * <p>A state change only records when the state began; at most one check is scheduled, at the earliest
 * deadline, and it is moved only when a deadline comes earlier than the pending one. An autocommit
 * session going idle → active → idle therefore schedules nothing per query: the pending check fires,
 * finds the session was busy in between, and re-arms for the new deadline. A limit of 0 never
 * schedules anything. No timer fires while a request is in flight (state ACTIVE) or for a session in
 * state UNKNOWN or a replication session.
 */
public final class SessionTimers {

    /**
     * Calls {@link #fire} of session timers at their deadline (System.nanoTime()), on the session's event loop.
     * {@link LoopDeadlines} does it for every session of a loop with one scheduled task.
     */
    public interface Scheduler {
        /**
         * Fire {@code timers} at {@code deadline} (also {@link SessionTimers#scheduledAt()}), which may be
         * earlier than the one pending for them, if any: it replaces it.
         */
        void schedule(SessionTimers timers, long deadline);

        /** {@code timers} have nothing pending any more (nothing happens if they had not). */
        void cancel(SessionTimers timers);
    }

    /** What the session does when a timer is due. */
    public interface Actions {
        /** End the session for this reason. */
        void expired(Expiry expiry);

        /** The session has been idle past {@code leakDetectionThreshold}: warn once and flag it. */
        void leakSuspected(long idleNanos);
    }

    /** Which limit ended a session. */
    public enum Expiry { IDLE_IN_TRANSACTION, IDLE, LIFETIME }

    private static final long NEVER = Long.MAX_VALUE;

    private final Scheduler scheduler;
    private final Actions actions;
    private final long openedAt;
    private final boolean exempt;
    /** The limits in nanoseconds, shared (see {@link Nanos}). */
    private Nanos nanos;
    private SessionState state = SessionState.ACTIVE;
    private long stateSince;
    private boolean leakFlagged;
    private boolean stopped;
    /** The deadline of the pending check, {@code NEVER} when none is pending. */
    private long scheduledAt = NEVER;
    /** This session's place in its loop's {@link LoopDeadlines} (-1: none); kept here so that moving costs nothing. */
    int heapIndex = -1;

    /**
     * @param openedAt when the session opened, on the clock of the times given (System.nanoTime())
     * @param exempt   a replication session: no idle timer ever fires
     */
    public SessionTimers(Scheduler scheduler, Actions actions, long openedAt, Limits limits, boolean exempt) {
        this.scheduler = scheduler;
        this.actions = actions;
        this.openedAt = openedAt;
        this.exempt = exempt;
        use(limits);
        this.stateSince = openedAt;
    }

    /** The session reported {@code newState} at {@code now}; a repeated idle report restarts the idle clock. */
    public void state(SessionState newState, long now) {
        if (newState == state && newState == SessionState.ACTIVE) {
            return;
        }
        state = newState;
        stateSince = now;
        leakFlagged = false;
        arm();
    }

    /** The limits changed (reload): deadlines follow the new values at once. */
    public void limits(Limits newLimits, long now) {
        use(newLimits);
        arm();
    }

    private void use(Limits limits) {
        nanos = Nanos.of(limits);
    }

    public void stop() {
        stopped = true;
        if (scheduledAt != NEVER) {
            scheduledAt = NEVER;
            scheduler.cancel(this);
        }
    }

    /** The deadline of the next check, or {@link Long#MAX_VALUE} when none is due; for tests. */
    public long nextDeadline() {
        if (exempt || stopped) {
            return NEVER;
        }
        return switch (state) {
            case IDLE_IN_TRANSACTION -> after(stateSince, nanos.idleInTransaction);
            case IDLE -> Math.min(after(stateSince, nanos.idle),
                    Math.min(leakFlagged ? NEVER : after(stateSince, nanos.leak), lifetimeDeadline()));
            case ACTIVE, UNKNOWN -> NEVER;
        };
    }

    private long lifetimeDeadline() {
        long end = after(openedAt, nanos.lifetime);
        return end == NEVER ? NEVER : Math.max(end, stateSince);
    }

    private void arm() {
        long next = nextDeadline();
        if (next >= scheduledAt) {
            return;
        }
        scheduledAt = next;
        scheduler.schedule(this, next);
    }

    /** The deadline of the pending check, {@link Long#MAX_VALUE} when none is pending. */
    long scheduledAt() {
        return scheduledAt;
    }

    /** The scheduler's call at {@link #scheduledAt()} ({@code now} or earlier): checks what is due, acts, re-arms. */
    void fire(long now) {
        scheduledAt = NEVER;
        if (stopped || exempt) {
            return;
        }
        switch (state) {
            case IDLE_IN_TRANSACTION -> {
                if (due(stateSince, nanos.idleInTransaction, now)) {
                    actions.expired(Expiry.IDLE_IN_TRANSACTION);
                    return;
                }
            }
            case IDLE -> {
                if (due(stateSince, nanos.idle, now)) {
                    actions.expired(Expiry.IDLE);
                    return;
                }
                if (lifetimeDeadline() <= now) {
                    actions.expired(Expiry.LIFETIME);
                    return;
                }
                if (!leakFlagged && due(stateSince, nanos.leak, now)) {
                    leakFlagged = true;
                    actions.leakSuspected(now - stateSince);
                }
            }
            case ACTIVE, UNKNOWN -> {
                return;
            }
        }
        if (!stopped) {
            arm();
        }
    }

    private static boolean due(long since, long limitNanos, long now) {
        long deadline = after(since, limitNanos);
        return deadline != NEVER && deadline <= now;
    }

    private static long after(long since, long limitNanos) {
        if (limitNanos == 0) {
            return NEVER;
        }
        long deadline = since + limitNanos;
        return deadline < since ? NEVER : deadline;
    }

    /**
     * The limits in nanoseconds, 0 = off: converted once per limits, not on every state change, and shared by
     * the sessions of an event loop whose limits are equal to the previous one's (the clients of one rule),
     * instead of 32 bytes in each.
     */
    private record Nanos(Limits source, long idleInTransaction, long idle, long leak, long lifetime) {

        private static final FastThreadLocal<Nanos> LAST = new FastThreadLocal<>();

        static Nanos of(Limits limits) {
            Nanos last = LAST.getIfExists();
            if (last != null && (last.source == limits || last.source.equals(limits))) {
                return last;
            }
            Nanos made = new Nanos(limits, nanos(limits.idleInTransactionTimeout()), nanos(limits.idleTimeout()),
                    nanos(limits.leakDetectionThreshold()), nanos(limits.maxSessionLifetime()));
            LAST.set(made);
            return made;
        }
    }

    /** A limit in nanoseconds, 0 when off; limits beyond ~100 years are "never" (and would overflow). */
    private static long nanos(Duration limit) {
        if (limit.isZero()) {
            return 0;
        }
        return limit.getSeconds() >= 3_153_600_000L ? Long.MAX_VALUE / 4 : limit.toNanos();
    }
}
