package io.connguard.core.logging;

import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.classic.spi.IThrowableProxy;
import ch.qos.logback.classic.spi.ThrowableProxyUtil;
import ch.qos.logback.core.encoder.EncoderBase;
import org.slf4j.event.KeyValuePair;

import java.nio.charset.StandardCharsets;
import java.time.Instant;

/**
 * One JSON object a line: {@code ts}, {@code level}, {@code logger}, {@code thread}, {@code msg}, then every
 * key-value pair of the event as a top-level field (session, listener, user, database, application,
 * address, reason, ...), and {@code exception} when there is one.
 */
public final class JsonLineEncoder extends EncoderBase<ILoggingEvent> {

    @Override
    public byte[] headerBytes() {
        return null;
    }

    @Override
    public byte[] encode(ILoggingEvent event) {
        StringBuilder out = new StringBuilder(256);
        out.append('{');
        field(out, "ts", Instant.ofEpochMilli(event.getTimeStamp()).toString());
        out.append(',');
        field(out, "level", event.getLevel().toString());
        out.append(',');
        field(out, "logger", event.getLoggerName());
        out.append(',');
        field(out, "thread", event.getThreadName());
        out.append(',');
        field(out, "msg", event.getFormattedMessage());
        if (event.getKeyValuePairs() != null) {
            for (KeyValuePair pair : event.getKeyValuePairs()) {
                out.append(',');
                if (pair.value instanceof Number || pair.value instanceof Boolean) {
                    JsonText.quote(out, pair.key);
                    out.append(':').append(pair.value);
                } else {
                    field(out, pair.key, String.valueOf(pair.value));
                }
            }
        }
        IThrowableProxy thrown = event.getThrowableProxy();
        if (thrown != null) {
            out.append(',');
            field(out, "exception", ThrowableProxyUtil.asString(thrown));
        }
        out.append("}\n");
        return out.toString().getBytes(StandardCharsets.UTF_8);
    }

    @Override
    public byte[] footerBytes() {
        return null;
    }

    private static void field(StringBuilder out, String name, String value) {
        JsonText.quote(out, name);
        out.append(':');
        JsonText.quote(out, value);
    }
}
