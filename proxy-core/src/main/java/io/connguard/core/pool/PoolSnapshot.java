package io.connguard.core.pool;

/**
 * One pool as {@code /pools} shows it.
 *
 * @param active  server connections lent to a client, opening or resetting
 * @param idle    server connections waiting in the pool
 * @param pinned  server connections held by a client because of session state (transaction mode)
 * @param waiting client sessions waiting for a server connection
 * @param pins    pinned server connections by the reasons their clients are pinned for
 */
public record PoolSnapshot(String listener, String user, String database, int active, int idle, int pinned,
                           int waiting, java.util.Map<String, Integer> pins) {
}
