package io.connguard.postgres;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;

/**
 * Collects whole typed messages (type byte, Int32 length, body) for the few short exchanges connguard
 * itself holds with a server or client on a pooled listener: the password message, the SETs that apply
 * a client's start-up parameters, the reset. Never used on the relayed stream, where bodies stream through.
 */
final class PgMessageReader {

    /** Told each whole message; the body is a slice valid only during the call. */
    interface Handler {
        /** Returns false to stop reading (the rest stays buffered). */
        boolean message(byte type, ByteBuf body);
    }

    private final ByteBufAllocator alloc;
    private final int maxMessage;
    /** Bytes of an incomplete message; null between messages, so an idle connection holds no buffer. */
    private ByteBuf pending;

    PgMessageReader(ByteBufAllocator alloc, int maxMessage) {
        this.alloc = alloc;
        this.maxMessage = maxMessage;
    }

    /**
     * Takes {@code bytes} (ownership moves here) and hands every whole message to {@code handler}.
     * Returns null, or why the stream is malformed.
     */
    String feed(ByteBuf bytes, Handler handler) {
        try {
            if (pending == null) {
                pending = alloc.buffer(Math.max(64, bytes.readableBytes()));
            }
            pending.writeBytes(bytes);
        } finally {
            bytes.release();
        }
        return drain(handler);
    }

    /** Hands on the messages still buffered. */
    String drain(Handler handler) {
        while (pending != null && pending.readableBytes() >= 5) {
            int start = pending.readerIndex();
            byte type = pending.getByte(start);
            int length = pending.getInt(start + 1);
            if (length < 4 || length > maxMessage) {
                return String.format("invalid length %d for message '%c'", length, type);
            }
            if (pending.readableBytes() < 1 + length) {
                break;
            }
            pending.skipBytes(5);
            ByteBuf body = pending.readSlice(length - 4);
            if (!handler.message(type, body)) {
                break;
            }
        }
        if (pending != null) {
            if (pending.isReadable()) {
                pending.discardReadBytes();
            } else {
                pending.release();
                pending = null;
            }
        }
        return null;
    }

    /** The bytes after the last message handed on (the caller takes ownership), or null when none. */
    ByteBuf takeRest() {
        if (pending == null || !pending.isReadable()) {
            return null;
        }
        return pending.readRetainedSlice(pending.readableBytes());
    }

    void release() {
        if (pending != null) {
            pending.release();
            pending = null;
        }
    }
}
