package io.connguard.core.session;

import io.connguard.core.admission.Admission.Rejection;
import io.connguard.core.api.ProxyError;
import io.connguard.core.api.ProxyError.Kind;
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
        Limits limits = session.limits();
        String listener = session.listenerName();
        return switch (why) {
            case QUEUE_TIMEOUT -> new ProxyError(Kind.TOO_MANY_CONNECTIONS,
                    "too many connections for client " + client,
                    "connguard: the client's maxConnections limit is reached and no slot freed up within queueTimeout "
                            + duration(limits.queueTimeout()), session.perUser());
            case QUEUE_FULL -> new ProxyError(Kind.TOO_MANY_CONNECTIONS,
                    "too many connections for client " + client,
                    "connguard: the client's maxConnections limit is reached and its maxQueued waiting connections are queued already",
                    session.perUser());
            case LISTENER_CAP -> new ProxyError(Kind.TOO_MANY_CONNECTIONS,
                    "too many connections through listener " + listener + " (client " + client + ")",
                    "connguard: the listener's maxUpstreamConnections limit is reached and no slot freed up within queueTimeout "
                            + duration(limits.queueTimeout()));
            case DRAINING -> new ProxyError(Kind.DRAINING, "the proxy is shutting down",
                    "connguard is draining and admits no new connections");
            case CLIENT_CONNECTIONS -> new ProxyError(Kind.TOO_MANY_CONNECTIONS,
                    "too many client connections for client " + client,
                    "connguard: the client's maxClientConnections limit is reached", session.perUser());
        };
    }

    static ProxyError expiry(Expiry expiry, Session session) {
        String client = session.describeClient();
        Limits limits = session.limits();
        return switch (expiry) {
            case IDLE_IN_TRANSACTION -> new ProxyError(Kind.IDLE_IN_TRANSACTION_TIMEOUT,
                    "terminating connection due to idle-in-transaction timeout",
                    "connguard: idle inside a transaction longer than idleInTransactionTimeout "
                            + duration(limits.idleInTransactionTimeout()) + " (client " + client + ")");
            case IDLE -> new ProxyError(Kind.IDLE_TIMEOUT, "terminating connection due to idle-session timeout",
                    "connguard: idle longer than idleTimeout " + duration(limits.idleTimeout())
                            + " (client " + client + ")");
            case LIFETIME -> new ProxyError(Kind.SESSION_LIFETIME,
                    "terminating connection because it reached its maximum lifetime",
                    "connguard: session older than maxSessionLifetime " + duration(limits.maxSessionLifetime())
                            + " (client " + client + ")");
        };
    }

    /** A duration the way the configuration writes it: 250ms, 5s, 10m, 1h30m. */
    static String duration(Duration d) {
        long millis = d.toMillis();
        if (millis < 1000) {
            return millis + "ms";
        }
        long seconds = d.getSeconds();
        StringBuilder out = new StringBuilder();
        long hours = seconds / 3600;
        long minutes = seconds % 3600 / 60;
        long secs = seconds % 60;
        if (hours > 0) {
            out.append(hours).append('h');
        }
        if (minutes > 0) {
            out.append(minutes).append('m');
        }
        if (secs > 0 || out.length() == 0) {
            out.append(secs).append('s');
        }
        return out.toString();
    }
}
