package io.connguard.postgres;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;

/**
 * The FATAL error PostgreSQL sends for a start-up packet it refuses after reading it whole (most malformed
 * packets get no reply at all: see {@link PgInvalidPacket}). A client that asked for a protocol older than
 * 3.0 reads it in the version 2 form the server still uses for that one answer.
 *
 * @param sqlState the server's SQLSTATE for the case
 * @param message  the server's primary message
 * @param detail   the server's detail, or null
 * @param hint     the server's hint, or null
 * @param version2 written as a protocol 2 error ('E' and one NUL-terminated text), as the server does when the
 *                 StartupMessage asked for a nonzero version below 3.0
 * @see <a href="https://github.com/postgres/postgres/blob/REL_17_STABLE/src/backend/tcop/backend_startup.c">
 *     ProcessStartupPacket</a>
 */
record PgStartupReply(String sqlState, String message, String detail, String hint, boolean version2) {

    static PgStartupReply fatal(String sqlState, String message) {
        return new PgStartupReply(sqlState, message, null, null, false);
    }

    ByteBuf encode(ByteBufAllocator alloc) {
        return version2 ? PgErrorWriter.fatalVersion2(alloc, message)
                : PgErrorWriter.fatal(alloc, sqlState, message, detail, hint);
    }
}
