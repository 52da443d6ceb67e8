package io.connguard.core.config;

import java.time.Duration;

/**
 * Writes a duration the one way connguard writes durations everywhere (log messages, log fields, the admin
 * API, error details): as the configuration file writes them, one whole number and one unit ({@code 250ms},
 * {@code 90s}, {@code 10m}, {@code 2h}, {@code 0}), so a value read in a log line can be pasted into the file.
 */
public final class Durations {

    private Durations() {
    }

    /** The largest unit in which {@code d} is a whole number (ms at the finest; below a millisecond is dropped). */
    public static String format(Duration d) {
        long millis = d.toMillis();
        if (millis == 0) {
            return "0";
        }
        if (millis % 3_600_000 == 0) {
            return millis / 3_600_000 + "h";
        }
        if (millis % 60_000 == 0) {
            return millis / 60_000 + "m";
        }
        if (millis % 1000 == 0) {
            return millis / 1000 + "s";
        }
        return millis + "ms";
    }

    /**
     * A measured time (how long a session was idle, how old it is): rounded to whole seconds from one second
     * on, where finer digits mean nothing to a reader, then written as {@link #format} writes it.
     */
    public static String measured(long nanos) {
        if (nanos < 1_000_000_000L) {
            return format(Duration.ofNanos(nanos));
        }
        return format(Duration.ofSeconds((nanos + 500_000_000L) / 1_000_000_000L));
    }
}
