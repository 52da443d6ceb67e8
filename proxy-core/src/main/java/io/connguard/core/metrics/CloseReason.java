package io.connguard.core.metrics;

import java.util.Locale;

/** The {@code reason} tag of {@code connguard_client_sessions_closed_total}: why a session ended. */
public enum CloseReason {
    /** The client closed its connection. */
    CLIENT,
    /** The database closed its connection (or could not be used). */
    UPSTREAM,
    IDLE_IN_TRANSACTION,
    IDLE,
    LIFETIME,
    ADMIN,
    SHUTDOWN,
    PROTOCOL_ERROR;

    public String tag() {
        return name().toLowerCase(Locale.ROOT);
    }
}
