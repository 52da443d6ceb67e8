package io.connguard.core.timers;

import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.LongSupplier;

/**
 * Decides, for one client key, when a session idle beyond {@code leakDetectionThreshold} is a leak
 * suspect: only while the client needs more connections than it uses. A pool's spare connections idle
 * exactly like a leaked one, so idleness alone proves nothing; what a leak adds is pressure — the client
 * queues or is rejected at a cap while the session sits idle, opens more connections than it ever held at
 * once, or keeps every one of its other connections busy at the same moment.
 *
 * <p>Sessions that have been idle past the threshold register as candidates; a pressure signal from any
 * thread (admission, another session's state change) turns every candidate into a suspect. A queue or a
 * rejection also counts when it happened earlier in the candidate's idle period (it is remembered); the
 * growth and all-busy signals count only once the session is a candidate, because a pool opening its
 * connections one after the other at start-up would otherwise look like growth past its idle ones.
 * Thread-safe: candidates and signals come from every event loop.
 */
public final class LeakWatch {

    /** A session idle past its threshold, told (on any thread) that its client is under pressure. */
    public interface Candidate {
        void underPressure(String why);
    }

    private static final long NEVER = Long.MIN_VALUE;

    private final LongSupplier clock;
    private final Set<Candidate> candidates = ConcurrentHashMap.newKeySet();
    private final AtomicInteger size = new AtomicInteger();
    private volatile long lastQueuedAt = NEVER;
    private volatile String lastQueuedWhy = "";

    public LeakWatch(LongSupplier clock) {
        this.clock = clock;
    }

    /** Whether any session of this client is a candidate now: only then are the costlier signals worth checking. */
    public boolean watching() {
        return size.get() > 0;
    }

    /**
     * A session has been idle past its threshold since {@code idleSince} (on the clock). Returns why it is a
     * suspect at once (its client queued or was rejected meanwhile), or null after registering it as a
     * candidate until {@link #remove} or a pressure signal.
     */
    public String add(Candidate candidate, long idleSince) {
        long queuedAt = lastQueuedAt;
        if (queuedAt != NEVER && queuedAt - idleSince >= 0) {
            return lastQueuedWhy;
        }
        if (candidates.add(candidate)) {
            size.incrementAndGet();
        }
        return null;
    }

    /** The session was used again, became a suspect, moved to another client or closed. */
    public void remove(Candidate candidate) {
        if (candidates.remove(candidate)) {
            size.decrementAndGet();
        }
    }

    /** A connection of this client queued or was rejected at a cap: remembered for later candidates too. */
    public void queued(String why) {
        lastQueuedWhy = why;
        lastQueuedAt = clock.getAsLong();
        pressure(why);
    }

    /** Any other pressure signal: tells the current candidates. */
    public void pressure(String why) {
        if (size.get() == 0) {
            return;
        }
        for (Candidate candidate : candidates) {
            candidate.underPressure(why);
        }
    }
}
