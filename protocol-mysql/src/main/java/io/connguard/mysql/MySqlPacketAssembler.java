package io.connguard.mysql;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;

/**
 * Collects whole packets during the handshake, where packets are few and small: each one is handed out
 * as its own buffer (header included) so the session may rewrite its sequence id. A packet announcing
 * more than the bound is malformed input, never buffered.
 */
final class MySqlPacketAssembler {

    private final ByteBufAllocator alloc;
    private final int maxPayload;
    private ByteBuf pending;

    MySqlPacketAssembler(ByteBufAllocator alloc, int maxPayload) {
        this.alloc = alloc;
        this.maxPayload = maxPayload;
    }

    /** Appends {@code in} and releases it. */
    void add(ByteBuf in) {
        try {
            if (pending == null) {
                pending = alloc.heapBuffer(Math.max(in.readableBytes(), 256));
            }
            pending.discardSomeReadBytes();
            pending.writeBytes(in);
        } finally {
            in.release();
        }
    }

    /** The next whole packet (the caller owns it), or null until one has arrived. */
    ByteBuf next() {
        if (pending == null || pending.readableBytes() < MySqlWire.HEADER_SIZE) {
            return null;
        }
        int length = pending.getUnsignedMediumLE(pending.readerIndex());
        if (length > maxPayload) {
            throw new MalformedPacketException("a handshake packet of " + length + " bytes is over the "
                    + maxPayload + "-byte bound");
        }
        if (pending.readableBytes() < MySqlWire.HEADER_SIZE + length) {
            return null;
        }
        ByteBuf packet = alloc.buffer(MySqlWire.HEADER_SIZE + length);
        pending.readBytes(packet, MySqlWire.HEADER_SIZE + length);
        return packet;
    }

    /** The bytes after the last whole packet (the caller owns them), or null if none. */
    ByteBuf takeRest() {
        ByteBuf rest = pending != null && pending.isReadable() ? pending.readRetainedSlice(pending.readableBytes()) : null;
        close();
        return rest;
    }

    void close() {
        if (pending != null) {
            pending.release();
            pending = null;
        }
    }
}
