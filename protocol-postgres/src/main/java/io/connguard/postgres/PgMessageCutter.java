package io.connguard.postgres;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;

import java.util.function.Consumer;

/**
 * Cuts one direction of a PostgreSQL stream into messages and forwards, as retained slices of the
 * buffers read, the bytes its owner keeps; the owner drops other messages, or takes their leading bytes
 * and writes something of its own instead ({@link #emit}), in order. Bodies are never aggregated here: a
 * kept message of any size passes as slices of the buffers it arrives in, a header split across buffers
 * costs one 5-byte buffer.
 *
 * <p>Per message the owner chooses, from the type and length: pass (optionally peeking at the first bytes
 * of the body), drop, or take. Taking hands the body to {@link Owner#onTake} chunk by chunk; when the owner
 * takes fewer bytes than offered, the rest of the message passes unchanged (a Bind whose names were
 * rewritten keeps its parameters as they came).
 *
 * @see <a href="https://www.postgresql.org/docs/current/protocol-overview.html#PROTOCOL-MESSAGE-CONCEPTS">Messaging overview</a>
 */
final class PgMessageCutter {

    /** Returned by {@link Owner#onStart}: the message is not forwarded. */
    static final int DROP = -1;
    /** Returned by {@link Owner#onStart}: the body goes to {@link Owner#onTake}. */
    static final int TAKE = -2;

    /** Decides for each message. Callbacks may {@link #emit}: what they emit goes where they are. */
    interface Owner {
        /** A header: return {@link #DROP}, {@link #TAKE}, or (≥ 0) pass it, peeking at that many body bytes. */
        int onStart(byte type, int bodyLength);

        /**
         * As {@link #onStart(byte, int)}, with the first {@code available} body bytes readable in {@code buf}
         * from {@code bodyIndex} (not consumed; fewer than the body when it continues in a later buffer), so
         * the owner can pass a message it would only take for a look at its first bytes.
         */
        default int onStart(byte type, int bodyLength, ByteBuf buf, int bodyIndex, int available) {
            return onStart(type, bodyLength);
        }

        /** Body bytes of a taken message; returns how many it took. Fewer: the rest of the message passes. */
        int onTake(ByteBuf buf, int index, int length);

        /** Body bytes of a passed message within its peek. */
        void onPeek(ByteBuf buf, int index, int length);

        /** The message's last byte has been handled. */
        void onEnd(byte type);

        /** A length below 4: nothing after this can be framed. */
        void onUnframeable(String reason);
    }

    private enum Mode { HEADER, PASS, DROP, TAKE, BROKEN }

    private static final int HEADER_LENGTH = 5;

    private final Owner owner;
    private final ByteBufAllocator alloc;

    private Mode mode = Mode.HEADER;
    private long partialHeader;
    private int partialLength;
    private byte type;
    private int remaining;
    private int peekLeft;

    // the buffer being fed
    private ByteBuf in;
    private Consumer<ByteBuf> sink;
    private int runStart = -1;
    private int cut;

    PgMessageCutter(Owner owner, ByteBufAllocator alloc) {
        this.owner = owner;
        this.alloc = alloc;
    }

    /** True between messages. */
    boolean atBoundary() {
        return mode == Mode.HEADER && partialLength == 0;
    }

    /** Cuts {@code buf} (whose reference this takes and releases) and writes what is kept to {@code out}. */
    void feed(ByteBuf buf, Consumer<ByteBuf> out) {
        in = buf;
        sink = out;
        runStart = -1;
        int index = buf.readerIndex();
        int end = buf.writerIndex();
        int headerStart = partialLength > 0 ? index : -1;
        try {
            while (index < end && mode != Mode.BROKEN) {
                switch (mode) {
                    case HEADER -> {
                        if (partialLength == 0 && end - index >= HEADER_LENGTH) {
                            int at = index;
                            index += HEADER_LENGTH;
                            start(buf.getByte(at), buf.getInt(at + 1), at, index, false);
                        } else {
                            if (partialLength == 0) {
                                headerStart = index;
                            }
                            partialHeader = partialHeader << 8 | (buf.getByte(index++) & 0xFF);
                            if (++partialLength == HEADER_LENGTH) {
                                partialLength = 0;
                                start((byte) (partialHeader >>> 32), (int) partialHeader, headerStart, index, true);
                            }
                        }
                    }
                    case PASS -> {
                        int n = Math.min(remaining, end - index);
                        if (peekLeft > 0) {
                            int peek = Math.min(peekLeft, n);
                            peekLeft -= peek;
                            cut = index;
                            owner.onPeek(buf, index, peek);
                        }
                        if (runStart < 0) {
                            runStart = index;
                        }
                        index += n;
                        remaining -= n;
                        if (remaining == 0) {
                            finish(index);
                        }
                    }
                    case DROP -> {
                        int n = Math.min(remaining, end - index);
                        index += n;
                        remaining -= n;
                        if (remaining == 0) {
                            finish(index);
                        }
                    }
                    case TAKE -> {
                        int n = Math.min(remaining, end - index);
                        cut = index;
                        int taken = owner.onTake(buf, index, n);
                        index += taken;
                        remaining -= taken;
                        if (taken < n) {
                            mode = Mode.PASS;
                            peekLeft = 0;
                        } else if (remaining == 0) {
                            finish(index);
                        }
                    }
                    case BROKEN -> {
                    }
                }
            }
            flushRun(mode == Mode.HEADER && partialLength > 0 ? headerStart : end);
        } finally {
            in = null;
            sink = null;
            buf.release();
        }
    }

    /**
     * Writes {@code buf} to the output at the position of the current callback, after what was kept before
     * it. Outside {@link #feed} it is written at once (then this cutter must be {@link #atBoundary()}).
     */
    void emit(ByteBuf buf, Consumer<ByteBuf> out) {
        if (in != null) {
            flushRun(cut);
            sink.accept(buf);
        } else {
            out.accept(buf);
        }
    }

    private void start(byte messageType, int length, int headerAt, int bodyAt, boolean split) {
        cut = headerAt;
        if (length < 4) {
            mode = Mode.BROKEN;
            flushRun(headerAt);
            owner.onUnframeable(String.format("invalid message length %d for message type 0x%02x",
                    length, messageType & 0xFF));
            return;
        }
        type = messageType;
        remaining = length - 4;
        int action = owner.onStart(messageType, remaining, in, bodyAt,
                Math.max(0, Math.min(remaining, in.writerIndex() - bodyAt)));
        if (action >= 0) {
            if (split) {
                flushRun(headerAt);
                sink.accept(alloc.buffer(HEADER_LENGTH).writeByte(messageType).writeInt(length));
                runStart = bodyAt;
            } else if (runStart < 0) {
                runStart = headerAt;
            }
            peekLeft = Math.min(action, remaining);
            mode = Mode.PASS;
        } else {
            flushRun(headerAt);
            mode = action == DROP ? Mode.DROP : Mode.TAKE;
        }
        if (remaining == 0) {
            finish(bodyAt);
        }
    }

    private void finish(int index) {
        mode = Mode.HEADER;
        cut = index;
        owner.onEnd(type);
    }

    private void flushRun(int end) {
        if (runStart >= 0) {
            if (end > runStart) {
                sink.accept(in.retainedSlice(runStart, end - runStart));
            }
            runStart = -1;
        }
    }
}
