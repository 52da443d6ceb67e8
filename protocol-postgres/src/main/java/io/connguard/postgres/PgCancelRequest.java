package io.connguard.postgres;

import io.netty.buffer.ByteBuf;

/**
 * CancelRequest: Int32 length, Int32 80877102, Int32 process id, then the secret key (4 bytes in protocol
 * 3.0, up to 256 in 3.2, its length given by the packet length).
 *
 * @param key the backend to cancel
 * @see <a href="https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-CANCELREQUEST">
 *     CancelRequest</a>
 */
record PgCancelRequest(PgBackendKey key) implements PgInitialPacket {

    static final int CODE = 80877102;

    /** Decodes the packet of {@code length} bytes at {@code index} (length word included). */
    static PgInitialPacket decode(ByteBuf buf, int index, int length) {
        PgBackendKey key = PgBackendKey.read(buf, index + 8, length - 8);
        if (key == null) {
            // PostgreSQL logs this as any bad length and closes without a reply.
            return PgInvalidPacket.silent(PgInvalidPacket.INVALID_LENGTH);
        }
        return new PgCancelRequest(key);
    }
}
