package io.connguard.core.config;

import java.time.Duration;

/**
 * The limits in force for one client key. A zero count or duration turns that limit off.
 */
public record Limits(int maxConnections, Duration queueTimeout, int maxQueued, Duration idleInTransactionTimeout,
                     Duration idleTimeout, Duration leakDetectionThreshold, Duration maxSessionLifetime) {

    /** The defaults README.md documents, used for every key not written in the file. */
    public static final Limits DEFAULTS = new Limits(20, Duration.ofSeconds(5), 100, Duration.ofSeconds(60),
            Duration.ZERO, Duration.ofMinutes(10), Duration.ZERO);

    public boolean capped() {
        return maxConnections > 0;
    }
}
