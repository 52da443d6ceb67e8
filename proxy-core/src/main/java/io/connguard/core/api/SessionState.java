package io.connguard.core.api;

/** What a session is doing, as the wire protocol shows it (never read from SQL text). */
public enum SessionState {
    /** A request was sent whose response is not complete. */
    ACTIVE("active"),
    /** Waiting for the client, outside a transaction. */
    IDLE("idle"),
    /** Waiting for the client, inside a transaction (or a failed one). */
    IDLE_IN_TRANSACTION("idle_in_transaction"),
    /** The tracker lost sync: bytes still relayed, no timer enforced. */
    UNKNOWN("unknown");

    private final String label;

    SessionState(String label) {
        this.label = label;
    }

    /** The name used in metrics tags, JSON and logs. */
    public String label() {
        return label;
    }
}
