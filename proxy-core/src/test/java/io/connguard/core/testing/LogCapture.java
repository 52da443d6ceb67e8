package io.connguard.core.testing;

import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.AppenderBase;
import org.slf4j.LoggerFactory;
import org.slf4j.event.KeyValuePair;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** Captures the log lines of one logger (with their key-value pairs) while a test runs. */
public final class LogCapture implements AutoCloseable {

    /** One captured line. */
    public record Line(String level, String message, Map<String, String> fields) {
        public String field(String key) {
            return fields.getOrDefault(key, "");
        }

        /** The message and every field value, as a text line would show them. */
        public String text() {
            return message + " " + fields;
        }
    }

    private final Logger logger;
    private final List<Line> lines = new ArrayList<>();
    private final AppenderBase<ILoggingEvent> appender = new AppenderBase<>() {
        @Override
        protected void append(ILoggingEvent event) {
            Map<String, String> fields = new LinkedHashMap<>();
            if (event.getKeyValuePairs() != null) {
                for (KeyValuePair pair : event.getKeyValuePairs()) {
                    fields.put(pair.key, String.valueOf(pair.value));
                }
            }
            synchronized (lines) {
                lines.add(new Line(event.getLevel().toString(), event.getFormattedMessage(), fields));
            }
        }
    };

    /** Starts capturing {@code loggerName} (e.g. {@code io.connguard.session}). */
    public LogCapture(String loggerName) {
        logger = (Logger) LoggerFactory.getLogger(loggerName);
        appender.setContext(logger.getLoggerContext());
        appender.start();
        logger.addAppender(appender);
    }

    public List<Line> lines() {
        synchronized (lines) {
            return List.copyOf(lines);
        }
    }

    /** Lines at this level whose message contains {@code text}. */
    public List<Line> lines(String level, String text) {
        return lines().stream().filter(l -> l.level().equals(level) && l.message().contains(text)).toList();
    }

    @Override
    public void close() {
        logger.detachAppender(appender);
        appender.stop();
    }
}
