package io.connguard.core.metrics;

import java.util.Locale;

/** The {@code outcome} tag of {@code connguard_client_admissions_total}. */
public enum Outcome {
    /** Got a slot (at once or after waiting). */
    ADMITTED,
    /** Had to wait for a slot (counted when the wait starts). */
    QUEUED,
    REJECTED_QUEUE_TIMEOUT,
    REJECTED_QUEUE_FULL,
    REJECTED_LISTENER_CAP,
    REJECTED_DRAINING,
    /**
     * Over its cap, but let in on probation: authenticated on an upstream connection that holds a listener
     * slot and no client slot, to run a cancel (MySQL KILL) at once; anything else makes it wait as QUEUED.
     */
    PROBATION,
    /** Over {@code maxClientConnections}: refused at once. */
    REJECTED_CLIENT_CONNECTIONS;

    private static final String REJECTED_PREFIX = "REJECTED_";

    public String tag() {
        return name().toLowerCase(Locale.ROOT);
    }

    /** The connection was turned away. */
    public boolean rejection() {
        return name().startsWith(REJECTED_PREFIX);
    }

    /**
     * The {@code reason} tag of {@code connguard_listener_rejections_total}: the outcome without its
     * {@code rejected_} prefix (queue_timeout, queue_full, listener_cap, draining).
     */
    public String reason() {
        if (!rejection()) {
            throw new IllegalStateException(this + " is not a rejection");
        }
        return tag().substring(REJECTED_PREFIX.length());
    }
}
