package io.connguard.core.config;

import java.time.Duration;

/**
 * The limits in force for one client key. A zero count or duration turns that limit off.
 *
 * @param maxConnections       server connections the key may hold (relay: its sessions)
 * @param fleetMaxConnections  the client's cap across every replica sharing {@code fleet.name}; 0 = none
 * @param maxClientConnections client connections the key may hold open; over it a new one is refused at once
 */
public record Limits(int maxConnections, Duration queueTimeout, int maxQueued, Duration idleInTransactionTimeout,
                     Duration idleTimeout, Duration leakDetectionThreshold, Duration maxSessionLifetime,
                     int fleetMaxConnections, int maxClientConnections) {

    /** The defaults README.md documents, used for every key not written in the file. */
    public static final Limits DEFAULTS = new Limits(20, Duration.ofSeconds(5), 100, Duration.ofSeconds(60),
            Duration.ZERO, Duration.ofMinutes(10), Duration.ZERO);

    /** Limits without a fleet cap and with no cap on client connections. */
    public Limits(int maxConnections, Duration queueTimeout, int maxQueued, Duration idleInTransactionTimeout,
                  Duration idleTimeout, Duration leakDetectionThreshold, Duration maxSessionLifetime) {
        this(maxConnections, queueTimeout, maxQueued, idleInTransactionTimeout, idleTimeout, leakDetectionThreshold,
                maxSessionLifetime, 0, 0);
    }

    public boolean capped() {
        return maxConnections > 0;
    }

    /** These limits with another fleet cap. */
    public Limits withFleetMaxConnections(int cap) {
        return new Limits(maxConnections, queueTimeout, maxQueued, idleInTransactionTimeout, idleTimeout,
                leakDetectionThreshold, maxSessionLifetime, cap, maxClientConnections);
    }

    /** These limits with another cap on client connections. */
    public Limits withMaxClientConnections(int cap) {
        return new Limits(maxConnections, queueTimeout, maxQueued, idleInTransactionTimeout, idleTimeout,
                leakDetectionThreshold, maxSessionLifetime, fleetMaxConnections, cap);
    }
}
