package io.connguard.core.session;

import io.connguard.core.admission.Admission.Rejection;
import io.connguard.core.api.ProxyError;
import io.connguard.core.api.ProxyError.Kind;
import io.connguard.core.config.Durations;
import io.connguard.core.config.Limits;
import io.connguard.core.timers.SessionTimers.Expiry;

import java.time.Duration;

/**
 * The texts connguard tells a client when it refuses or ends its session. They name the limit that was
 * hit and the client key, never counts: a client that has not authenticated learns nothing about others.
 */
final class Messages {

    private Messages() {
    }

    static ProxyError rejection(Rejection why, Session session) {
        String client = session.describeClient();
        String reason = "connguard: " + why(why, session.limits());
        return switch (why) {
            case QUEUE_TIMEOUT, QUEUE_FULL -> new ProxyError(Kind.TOO_MANY_CONNECTIONS,
                    "too many connections for client " + client, reason, session.perUser());
            case LISTENER_CAP -> new ProxyError(Kind.TOO_MANY_CONNECTIONS,
                    "too many connections through listener " + session.listenerName() + " (client " + client + ")",
                    reason);
            case DRAINING -> new ProxyError(Kind.DRAINING, "the proxy is shutting down", reason);
            case CLIENT_CONNECTIONS -> new ProxyError(Kind.TOO_MANY_CONNECTIONS,
                    "too many client connections for client " + client, reason, session.perUser());
        };
    }

    /** Why a connection is refused, without naming the client (the log line's fields name it). */
    static String why(Rejection why, Limits limits) {
        return switch (why) {
            case QUEUE_TIMEOUT -> "the client's " + caps(limits) + " limit is reached and no slot freed up within queueTimeout "
                    + duration(limits.queueTimeout());
            case QUEUE_FULL ->
                    "the client's " + caps(limits) + " limit is reached and its maxQueued waiting connections are queued already";
            case LISTENER_CAP -> "the listener's maxUpstreamConnections limit is reached and no slot freed up within "
                    + "queueTimeout " + duration(limits.queueTimeout());
            case DRAINING -> "connguard is draining and admits no new connections";
            case CLIENT_CONNECTIONS -> "the client's maxClientConnections limit is reached";
        };
    }

    static ProxyError expiry(Expiry expiry, Session session) {
        String detail = "connguard: " + why(expiry, session.limits()) + " (client " + session.describeClient() + ")";
        return switch (expiry) {
            case IDLE_IN_TRANSACTION -> new ProxyError(Kind.IDLE_IN_TRANSACTION_TIMEOUT,
                    "terminating connection due to idle-in-transaction timeout", detail);
            case IDLE -> new ProxyError(Kind.IDLE_TIMEOUT, "terminating connection due to idle-session timeout", detail);
            case LIFETIME -> new ProxyError(Kind.SESSION_LIFETIME,
                    "terminating connection because it reached its maximum lifetime", detail);
        };
    }

    /** The client caps that may have been hit: a fleet-wide one too when the client has it. */
    private static String caps(Limits limits) {
        return limits.fleetMaxConnections() > 0 ? "maxConnections or fleetMaxConnections" : "maxConnections";
    }

    /** Why a session is ended, without naming the client (the log line's fields name it). */
    static String why(Expiry expiry, Limits limits) {
        return switch (expiry) {
            case IDLE_IN_TRANSACTION -> "idle inside a transaction longer than idleInTransactionTimeout "
                    + duration(limits.idleInTransactionTimeout());
            case IDLE -> "idle longer than idleTimeout " + duration(limits.idleTimeout());
            case LIFETIME -> "session older than maxSessionLifetime " + duration(limits.maxSessionLifetime());
        };
    }

    /** A duration as the configuration writes it (see {@link Durations}). */
    static String duration(Duration d) {
        return Durations.format(d);
    }
}
