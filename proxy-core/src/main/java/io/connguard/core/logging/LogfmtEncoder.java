package io.connguard.core.logging;

import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.classic.spi.IThrowableProxy;
import ch.qos.logback.classic.spi.ThrowableProxyUtil;
import ch.qos.logback.core.encoder.EncoderBase;
import org.slf4j.event.KeyValuePair;

import java.nio.charset.StandardCharsets;
import java.time.Instant;

/**
 * One logfmt line an event: {@code ts=… level=… logger=… msg="…"} and then every key-value pair of the event
 * (session, listener, address, user, database, application, reason, ...), and {@code exception="…"} when there
 * is one. A value is written bare when it is a plain token and quoted otherwise (spaces, {@code =}, quotes,
 * backslashes, control characters, or empty), with {@code \"}, {@code \\}, {@code \n}, {@code \r}, {@code \t}
 * escaped, as Go's logfmt and log/slog text handler write it; so every line parses with a logfmt parser and
 * stays one line.
 */
public final class LogfmtEncoder extends EncoderBase<ILoggingEvent> {

    @Override
    public byte[] headerBytes() {
        return null;
    }

    @Override
    public byte[] encode(ILoggingEvent event) {
        StringBuilder out = new StringBuilder(256);
        pair(out, "ts", Instant.ofEpochMilli(event.getTimeStamp()).toString());
        pair(out, "level", event.getLevel().toString());
        String logger = event.getLoggerName();
        pair(out, "logger", logger.substring(logger.lastIndexOf('.') + 1));
        pair(out, "msg", event.getFormattedMessage());
        if (event.getKeyValuePairs() != null) {
            for (KeyValuePair pair : event.getKeyValuePairs()) {
                pair(out, pair.key, String.valueOf(pair.value));
            }
        }
        IThrowableProxy thrown = event.getThrowableProxy();
        if (thrown != null) {
            pair(out, "exception", ThrowableProxyUtil.asString(thrown));
        }
        out.append('\n');
        return out.toString().getBytes(StandardCharsets.UTF_8);
    }

    @Override
    public byte[] footerBytes() {
        return null;
    }

    private static void pair(StringBuilder out, String key, String value) {
        if (out.length() > 0) {
            out.append(' ');
        }
        out.append(key).append('=');
        value(out, value);
    }

    /** Appends {@code value} bare if it is a plain token, else quoted and escaped. */
    static void value(StringBuilder out, String value) {
        if (!needsQuotes(value)) {
            out.append(value);
            return;
        }
        out.append('"');
        for (int i = 0; i < value.length(); i++) {
            char c = value.charAt(i);
            switch (c) {
                case '"' -> out.append("\\\"");
                case '\\' -> out.append("\\\\");
                case '\n' -> out.append("\\n");
                case '\r' -> out.append("\\r");
                case '\t' -> out.append("\\t");
                default -> {
                    if (c < 0x20 || c == 0x7f || c == 0x2028 || c == 0x2029) {
                        out.append(String.format("\\u%04x", (int) c));
                    } else {
                        out.append(c);
                    }
                }
            }
        }
        out.append('"');
    }

    private static boolean needsQuotes(String value) {
        if (value.isEmpty()) {
            return true;
        }
        for (int i = 0; i < value.length(); i++) {
            char c = value.charAt(i);
            if (c <= ' ' || c == '=' || c == '"' || c == '\\' || c == 0x7f || c == 0x2028 || c == 0x2029) {
                return true;
            }
        }
        return false;
    }
}
