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
    REJECTED_DRAINING;

    public String tag() {
        return name().toLowerCase(Locale.ROOT);
    }
}
