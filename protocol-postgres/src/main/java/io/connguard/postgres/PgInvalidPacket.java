package io.connguard.postgres;

/** A start-up packet the server would reject as malformed, with the reason to report. */
record PgInvalidPacket(String reason) implements PgInitialPacket {
}
