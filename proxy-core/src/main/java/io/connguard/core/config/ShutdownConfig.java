package io.connguard.core.config;

import java.time.Duration;

/**
 * The drain after SIGTERM.
 *
 * @param minDrainDelay keep admitting this long after SIGTERM (the application may still be stopping)
 * @param drainTimeout  then refuse new sessions, let open ones finish this long, then end the rest
 */
public record ShutdownConfig(Duration minDrainDelay, Duration drainTimeout) {
}
