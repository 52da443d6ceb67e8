package io.connguard.core.config;

import java.time.Duration;

/**
 * The limits in force for one client key. A zero count or duration turns that limit off.
 *
 * @param maxConnections       server connections the key may hold (relay: its sessions)
 * @param maxClientConnections client connections the key may hold open; over it a new one is refused at once
 */
public record Limits(int maxConnections, Duration queueTimeout, int maxQueued, Duration idleInTransactionTimeout,
                     Duration idleTimeout, Duration leakDetectionThreshold, Duration maxSessionLifetime,
                     int maxClientConnections) {

    /** The defaults, used for every key not written in the file. */
    public static final Limits DEFAULTS = new Limits(20, Duration.ofSeconds(5), 100, Duration.ofSeconds(60),
            Duration.ZERO, Duration.ofMinutes(10), Duration.ZERO, 0);

    /** Limits with no cap on client connections. */
    public Limits(int maxConnections, Duration queueTimeout, int maxQueued, Duration idleInTransactionTimeout,
                  Duration idleTimeout, Duration leakDetectionThreshold, Duration maxSessionLifetime) {
        this(maxConnections, queueTimeout, maxQueued, idleInTransactionTimeout, idleTimeout, leakDetectionThreshold,
                maxSessionLifetime, 0);
    }

    public boolean capped() {
        return maxConnections > 0;
    }
}
