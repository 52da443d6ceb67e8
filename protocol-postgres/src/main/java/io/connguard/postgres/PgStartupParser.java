package io.connguard.postgres;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;

/**
 * Collects what a client sends before the server has spoken and cuts it into start-up packets
 * (SSLRequest, GSSENCRequest, CancelRequest, StartupMessage), bounded as the server bounds them; it then
 * keeps, within a bound, whatever the client sends while its session waits for admission.
 *
 * <p>It owns one accumulation buffer: {@link #release()} frees it, {@link #takeRemainder()} hands what is
 * left to the caller.
 *
 * @see <a href="https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-START-UP">Start-up</a>
 */
final class PgStartupParser {

    static final int SSL_REQUEST_CODE = 80877103;
    static final int GSSENC_REQUEST_CODE = 80877104;

    /** The server's MAX_STARTUP_PACKET_LENGTH (10000), which does not count the length word itself. */
    static final int MAX_PACKET_LENGTH = 10000 + 4;

    /** What a client may send before the server has answered; conforming clients send nothing. */
    static final int MAX_EARLY_BYTES = 64 * 1024;

    /** The first byte of a TLS record carrying a handshake: a ClientHello sent without SSLRequest. */
    private static final byte TLS_HANDSHAKE = 0x16;

    private final ByteBufAllocator alloc;
    private ByteBuf pending;
    /** Until the StartupMessage is read the client may fill one packet; after it, only early bytes. */
    private int limit = MAX_PACKET_LENGTH + MAX_EARLY_BYTES;
    private int lastStart;
    private int lastLength;
    /** The server answers each encryption request once; a second one is read as a StartupMessage. */
    private boolean sslSeen;
    private boolean gssSeen;

    PgStartupParser(ByteBufAllocator alloc) {
        this.alloc = alloc;
    }

    /**
     * Appends bytes read from the client (ownership moves here). Returns false when more has arrived than
     * a client may send before the server answers (see {@link #withinBound()}).
     */
    boolean feed(ByteBuf bytes) {
        try {
            if (pending == null) {
                pending = alloc.buffer(Math.max(bytes.readableBytes(), 256));
            }
            pending.writeBytes(bytes);
            return withinBound();
        } finally {
            bytes.release();
        }
    }

    /**
     * Whether what waits is within what a client may send before the server answers: one start-up packet
     * (with the requests before it) and {@link #MAX_EARLY_BYTES}, or after the StartupMessage only the latter.
     * A read adds at most one socket read beyond it before the caller ends the session.
     */
    boolean withinBound() {
        return pending == null || pending.readableBytes() <= limit;
    }

    /**
     * The next complete packet, its bytes consumed (see {@link #lastPacketBytes()}); null while incomplete.
     * A {@link PgInvalidPacket} or {@link PgNegotiationRequest#DIRECT_TLS} ends the exchange. The checks are
     * the server's own, in its order ({@code ProcessStartupPacket} in PostgreSQL 15-17): a length outside
     * 8..10004 is refused as soon as the length word is in, before the rest arrives.
     */
    PgInitialPacket next() {
        if (pending == null || !pending.isReadable()) {
            return null;
        }
        int start = pending.readerIndex();
        if (pending.getByte(start) == TLS_HANDSHAKE) {
            return PgNegotiationRequest.DIRECT_TLS;
        }
        if (pending.readableBytes() < 4) {
            return null;
        }
        int length = pending.getInt(start);
        if (length < 8 || length > MAX_PACKET_LENGTH) {
            return PgInvalidPacket.silent(PgInvalidPacket.INVALID_LENGTH);
        }
        if (pending.readableBytes() < length) {
            return null;
        }
        int code = pending.getInt(start + 4);
        // As on the server, an encryption request may carry a body (it is skipped) and counts only once.
        PgInitialPacket packet;
        if (code == PgCancelRequest.CODE) {
            packet = PgCancelRequest.decode(pending, start, length);
        } else if (code == SSL_REQUEST_CODE && !sslSeen) {
            sslSeen = true;
            packet = PgNegotiationRequest.SSL_REQUEST;
        } else if (code == GSSENC_REQUEST_CODE && !gssSeen) {
            gssSeen = true;
            packet = PgNegotiationRequest.GSSENC_REQUEST;
        } else {
            packet = PgStartupMessage.decode(pending, start, length);
        }
        lastStart = start;
        lastLength = length;
        pending.skipBytes(length);
        if (packet instanceof PgStartupMessage) {
            limit = MAX_EARLY_BYTES;
        }
        return packet;
    }

    /** The bytes of the packet {@link #next()} returned last, as a retained slice the caller releases. */
    ByteBuf lastPacketBytes() {
        return pending.retainedSlice(lastStart, lastLength);
    }

    /** How many bytes wait beyond the packets already returned. */
    int buffered() {
        return pending == null ? 0 : pending.readableBytes();
    }

    /** Hands over the bytes beyond the packets returned (null if none) and frees the rest. */
    ByteBuf takeRemainder() {
        ByteBuf rest = pending != null && pending.isReadable() ? pending.retainedSlice() : null;
        release();
        return rest;
    }

    void release() {
        if (pending != null) {
            pending.release();
            pending = null;
        }
    }
}
