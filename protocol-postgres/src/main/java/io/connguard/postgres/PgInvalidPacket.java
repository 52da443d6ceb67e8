package io.connguard.postgres;

/**
 * A start-up packet the server refuses, with the reason the log gives and the reply the server sends: none
 * (a bad length, an incomplete or undecodable packet: PostgreSQL logs it and closes without a word, and
 * drivers rely on that) or the FATAL error of {@link PgStartupReply}.
 *
 * @param reason what PostgreSQL's log says about it
 * @param reply  what the client reads before the close, or null for nothing
 */
record PgInvalidPacket(String reason, PgStartupReply reply) implements PgInitialPacket {

    /** The server's "invalid length of startup packet": logged, never answered. */
    static final String INVALID_LENGTH = "invalid length of startup packet";

    static PgInvalidPacket silent(String reason) {
        return new PgInvalidPacket(reason, null);
    }

    static PgInvalidPacket fatal(PgStartupReply reply) {
        return new PgInvalidPacket(reply.message(), reply);
    }
}
