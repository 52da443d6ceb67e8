package io.connguard.core.config;

import java.time.Duration;
import java.util.Locale;

/**
 * A listener's {@code pool}: whether client connections get a server connection of their own
 * ({@link Mode#RELAY}) or share pooled ones, and how the pools of a pooled listener are sized and aged.
 *
 * @param size        server connections per pool (listener, user, database)
 * @param minIdle     server connections kept open and authenticated while idle
 * @param idleTimeout an idle server connection is closed after this; zero = never
 * @param maxLifetime a server connection is closed once idle after this age; zero = never
 * @param reset       what a returned server connection forgets before it serves another client
 */
public record PoolConfig(Mode mode, int size, int minIdle, Duration idleTimeout, Duration maxLifetime, Reset reset) {

    public static final PoolConfig DEFAULTS = new PoolConfig(Mode.RELAY, 20, 0, Duration.ofMinutes(5),
            Duration.ofHours(1), Reset.AUTO);

    /** {@code pool.mode}. */
    public enum Mode {
        /** One server connection per client connection for its whole life, not reused: today's relay. */
        RELAY,
        /** A pooled server connection lent for the client's whole connection. */
        SESSION,
        /** A pooled server connection lent while the client is in a transaction or has a request in flight. */
        TRANSACTION;

        public String key() {
            return name().toLowerCase(Locale.ROOT);
        }
    }

    /** {@code pool.reset}. */
    public enum Reset {
        /** The protocol's own reset: PostgreSQL {@code DISCARD ALL}, MySQL {@code COM_RESET_CONNECTION}. */
        AUTO,
        /** Nothing: the application promises it leaves no session state behind. */
        NONE
    }

    public boolean pooled() {
        return mode != Mode.RELAY;
    }
}
