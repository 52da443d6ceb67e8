package io.connguard.postgres;

import io.netty.buffer.ByteBuf;

import java.util.Arrays;

/**
 * The identity of one server backend for cancellation: its process id and secret key, as sent in
 * BackendKeyData and echoed in CancelRequest. Protocol 3.0 keys are 4 bytes; protocol 3.2 keys are
 * 4 to 256 bytes. Equal by content, so it can key the module's route map; never prints the secret.
 *
 * @see <a href="https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-BACKENDKEYDATA">
 *     BackendKeyData</a>
 */
final class PgBackendKey {

    static final int MIN_SECRET_LENGTH = 4;
    static final int MAX_SECRET_LENGTH = 256;

    private final int processId;
    /**
     * A 4-byte secret (protocol 3.0, and what connguard mints) is kept in {@link #shortSecret}, {@code secret} null:
     * the array was 24 bytes of every session, whose key the cancel routes keep.
     */
    private final int shortSecret;
    private final byte[] secret;

    private PgBackendKey(int processId, byte[] secret) {
        this.processId = processId;
        if (secret.length == MIN_SECRET_LENGTH) {
            this.shortSecret = (secret[0] & 0xFF) << 24 | (secret[1] & 0xFF) << 16 | (secret[2] & 0xFF) << 8
                    | secret[3] & 0xFF;
            this.secret = null;
        } else {
            this.shortSecret = 0;
            this.secret = secret;
        }
    }

    /** Reads a process id and the secret that follows it, {@code length} bytes in all; null if out of range. */
    static PgBackendKey read(ByteBuf buf, int index, int length) {
        int secretLength = length - 4;
        if (secretLength < MIN_SECRET_LENGTH || secretLength > MAX_SECRET_LENGTH) {
            return null;
        }
        byte[] secret = new byte[secretLength];
        buf.getBytes(index + 4, secret);
        return new PgBackendKey(buf.getInt(index), secret);
    }

    /** The same, from a byte array (a BackendKeyData body collected across buffers). */
    static PgBackendKey read(byte[] body, int length) {
        int secretLength = length - 4;
        if (secretLength < MIN_SECRET_LENGTH || secretLength > MAX_SECRET_LENGTH) {
            return null;
        }
        int processId = (body[0] & 0xFF) << 24 | (body[1] & 0xFF) << 16 | (body[2] & 0xFF) << 8 | body[3] & 0xFF;
        return new PgBackendKey(processId, Arrays.copyOfRange(body, 4, length));
    }

    /** A CancelRequest for this backend. */
    ByteBuf cancelRequest(io.netty.buffer.ByteBufAllocator alloc) {
        int length = 12 + secretLength();
        ByteBuf request = alloc.buffer(length).writeInt(length).writeInt(80877102) // CancelRequest code
                .writeInt(processId);
        return secret == null ? request.writeInt(shortSecret) : request.writeBytes(secret);
    }

    int processId() {
        return processId;
    }

    int secretLength() {
        return secret == null ? MIN_SECRET_LENGTH : secret.length;
    }

    @Override
    public boolean equals(Object other) {
        return other instanceof PgBackendKey key && key.processId == processId && key.shortSecret == shortSecret
                && Arrays.equals(key.secret, secret);
    }

    @Override
    public int hashCode() {
        return 31 * (31 * processId + shortSecret) + Arrays.hashCode(secret);
    }

    @Override
    public String toString() {
        return "backend " + processId;
    }
}
