package io.connguard.core.session;

import io.connguard.core.admission.ClientKey;

import java.time.Instant;

/** One session as {@code GET /sessions} shows it, taken on the session's event loop. */
public record SessionSnapshot(long id, String listener, String user, String database, String application,
                              String address, String state, Instant stateSince, Instant openedAt,
                              boolean inTransaction, boolean leakSuspect, String lastStatement, long bytesIn,
                              long bytesOut, ClientKey key, boolean pooled, Long serverConnection,
                              String pinReason) {
}
