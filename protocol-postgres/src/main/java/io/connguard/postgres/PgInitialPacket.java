package io.connguard.postgres;

/**
 * A packet a client sends before the server has spoken: these carry no type byte, only a length and a
 * request code. {@link PgStartupParser} yields one of these at a time.
 *
 * @see <a href="https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-START-UP">Start-up</a>
 */
sealed interface PgInitialPacket permits PgNegotiationRequest, PgCancelRequest, PgStartupMessage, PgInvalidPacket {
}
