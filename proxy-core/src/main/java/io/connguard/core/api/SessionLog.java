package io.connguard.core.api;

/**
 * Log lines about one session. Core adds the session id, listener, client identity and address to each
 * line, in text and JSON format alike. Never pass SQL text but as a fingerprint, never a password.
 */
public interface SessionLog {

    void debug(String message, Object... args);

    void info(String message, Object... args);

    void warn(String message, Object... args);
}
