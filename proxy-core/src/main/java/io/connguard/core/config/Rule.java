package io.connguard.core.config;

import java.time.Duration;

/**
 * A {@code clients.rules} entry: when {@link #match} matches a client, the non-null fields replace the
 * defaults (first matching rule wins).
 */
public record Rule(Match match, Integer maxConnections, Duration queueTimeout, Integer maxQueued,
                   Duration idleInTransactionTimeout, Duration idleTimeout, Duration leakDetectionThreshold,
                   Duration maxSessionLifetime, Integer fleetMaxConnections, Integer maxClientConnections) {

    /** A rule that leaves the fleet cap and the client-connection cap as the defaults have them. */
    public Rule(Match match, Integer maxConnections, Duration queueTimeout, Integer maxQueued,
                Duration idleInTransactionTimeout, Duration idleTimeout, Duration leakDetectionThreshold,
                Duration maxSessionLifetime) {
        this(match, maxConnections, queueTimeout, maxQueued, idleInTransactionTimeout, idleTimeout,
                leakDetectionThreshold, maxSessionLifetime, null, null);
    }

    public Limits applyTo(Limits base) {
        return new Limits(
                maxConnections != null ? maxConnections : base.maxConnections(),
                queueTimeout != null ? queueTimeout : base.queueTimeout(),
                maxQueued != null ? maxQueued : base.maxQueued(),
                idleInTransactionTimeout != null ? idleInTransactionTimeout : base.idleInTransactionTimeout(),
                idleTimeout != null ? idleTimeout : base.idleTimeout(),
                leakDetectionThreshold != null ? leakDetectionThreshold : base.leakDetectionThreshold(),
                maxSessionLifetime != null ? maxSessionLifetime : base.maxSessionLifetime(),
                fleetMaxConnections != null ? fleetMaxConnections : base.fleetMaxConnections(),
                maxClientConnections != null ? maxClientConnections : base.maxClientConnections());
    }
}
