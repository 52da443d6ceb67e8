package io.connguard.core.session;

import io.connguard.core.api.SessionLog;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.slf4j.event.Level;
import org.slf4j.spi.LoggingEventBuilder;

/**
 * Log lines about one session: each carries the session id, listener, address and, once known, the
 * client identity as key-value pairs, which the text and JSON formats both print.
 */
final class SessionLogger implements SessionLog {

    private static final Logger LOG = LoggerFactory.getLogger("io.connguard.session");

    private final Session session;

    SessionLogger(Session session) {
        this.session = session;
    }

    @Override
    public void debug(String message, Object... args) {
        if (LOG.isDebugEnabled()) {
            at(Level.DEBUG).log(message, args);
        }
    }

    @Override
    public void info(String message, Object... args) {
        if (LOG.isInfoEnabled()) {
            at(Level.INFO).log(message, args);
        }
    }

    @Override
    public void warn(String message, Object... args) {
        at(Level.WARN).log(message, args);
    }

    /** A log event with the session's fields already attached, for lines that add more (reason, statement). */
    LoggingEventBuilder at(Level level) {
        LoggingEventBuilder event = LOG.atLevel(level)
                .addKeyValue("session", session.id())
                .addKeyValue("listener", session.listenerName())
                .addKeyValue("address", session.address());
        var identity = session.identity();
        if (identity != null) {
            event = event.addKeyValue("user", identity.user())
                    .addKeyValue("database", identity.database())
                    .addKeyValue("application", identity.application());
        }
        return event;
    }

    static boolean debugEnabled() {
        return LOG.isDebugEnabled();
    }

    boolean enabled(Level level) {
        return LOG.isEnabledForLevel(level);
    }
}
