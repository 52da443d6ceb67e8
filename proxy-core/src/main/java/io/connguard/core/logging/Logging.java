package io.connguard.core.logging;

import ch.qos.logback.classic.AsyncAppender;
import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.LoggerContext;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.ConsoleAppender;
import ch.qos.logback.core.encoder.Encoder;
import io.connguard.core.config.LoggingConfig;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Applies {@code logging} to Logback: the root level and one console appender writing either logfmt
 * text lines ({@link LogfmtEncoder}) or one JSON object a line ({@link JsonLineEncoder}). Key-value pairs attached to an event (session id, listener, client,
 * reason) appear in both formats.
 *
 * <p>Lines are written by a background thread: event loops log kills and rejections, and a stdout pipe
 * that blocks (a stalled log collector) must not stall the relay. When its queue of {@value #QUEUE}
 * lines is full, lines are dropped rather than waited for.
 */
public final class Logging {

    private static final String APPENDER = "connguard-console";
    static final int QUEUE = 8192;

    private Logging() {
    }

    public static synchronized void configure(LoggingConfig config) {
        if (!(LoggerFactory.getILoggerFactory() instanceof LoggerContext context)) {
            return;
        }
        ch.qos.logback.classic.Logger root = context.getLogger(Logger.ROOT_LOGGER_NAME);
        root.setLevel(Level.toLevel(config.level().name(), Level.INFO));
        // Netty is chatty below INFO; its DEBUG lines only help when debugging Netty itself.
        context.getLogger("io.netty").setLevel(config.level() == LoggingConfig.Level.TRACE ? Level.DEBUG : Level.INFO);
        // The fleet store's client logs every reconnection attempt; connguard itself says once per outage that
        // the store is away and once that it is back (io.connguard.core.fleet).
        context.getLogger("io.lettuce").setLevel(config.level() == LoggingConfig.Level.TRACE ? Level.DEBUG : Level.ERROR);
        context.getLogger("reactor").setLevel(config.level() == LoggingConfig.Level.TRACE ? Level.DEBUG : Level.WARN);
        ConsoleAppender<ILoggingEvent> appender = new ConsoleAppender<>();
        appender.setContext(context);
        appender.setName(APPENDER);
        appender.setEncoder(encoder(config.format(), context));
        appender.start();
        AsyncAppender async = new AsyncAppender();
        async.setContext(context);
        async.setName(APPENDER + "-async");
        async.setQueueSize(QUEUE);
        async.setDiscardingThreshold(0);
        async.setNeverBlock(true);
        async.setIncludeCallerData(false);
        async.addAppender(appender);
        async.start();
        root.detachAndStopAllAppenders();
        root.addAppender(async);
    }

    /** Writes out queued lines and stops logging; call last before the process exits. */
    public static void shutdown() {
        if (LoggerFactory.getILoggerFactory() instanceof LoggerContext context) {
            context.stop();
        }
    }

    private static Encoder<ILoggingEvent> encoder(LoggingConfig.Format format, LoggerContext context) {
        Encoder<ILoggingEvent> encoder = format == LoggingConfig.Format.JSON ? new JsonLineEncoder() : new LogfmtEncoder();
        encoder.setContext(context);
        encoder.start();
        return encoder;
    }
}
