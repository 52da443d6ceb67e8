package io.connguard.core.config;

/** {@code logging}: line format and root level. */
public record LoggingConfig(Format format, Level level) {

    public enum Format { TEXT, JSON }

    public enum Level { TRACE, DEBUG, INFO, WARN, ERROR }
}
