package io.connguard.postgres;

import io.netty.buffer.ByteBuf;

/**
 * Finds message boundaries in one direction of a PostgreSQL stream from the 5-byte headers alone (type
 * byte, Int32 length including itself), remembering across buffers how much of the current message is
 * still to come, so bodies of any size pass through as they arrive and are never copied or aggregated.
 *
 * <p>It only reads with absolute indexes: the buffer's reader index is untouched, and the caller forwards
 * the very same buffer afterwards. A {@link Sink} that wants to look into a body (a ReadyForQuery status,
 * a BackendKeyData key, the start of a Query) asks for a bounded prefix of it.
 *
 * @see <a href="https://www.postgresql.org/docs/current/protocol-overview.html#PROTOCOL-MESSAGE-CONCEPTS">
 *     Messaging overview</a>
 */
abstract class PgFrameScanner {

    /** What the scanner reports about the messages it crosses. */
    interface Sink {

        /**
         * A message header was read.
         *
         * @param type       the type byte
         * @param bodyLength the body length (the header's length minus its own four bytes)
         * @return how many leading body bytes the sink wants to see through {@link #onBody}; 0 for none
         */
        int onMessageStart(byte type, int bodyLength);

        /** A chunk of the wanted body prefix: {@code length} bytes of {@code buf} at {@code index}. */
        void onBody(ByteBuf buf, int index, int length);

        /** The last byte of the message has been crossed. */
        void onMessageEnd(byte type);

        /** The stream cannot be framed (a length below 4): the scanner stops looking at it. */
        void onUnframeable(String reason);
    }

    private static final int HEADER_LENGTH = 5;

    // Narrow fields (28 bytes an instance instead of 48, and no separate sink object: the subclass is the sink):
    // a body is at most 2^31 - 5 bytes, and a split header keeps its type byte in `type`, its length in an int.
    /** Length bytes collected so far when a header is split across buffers; its type is in {@link #type}. */
    private int partialLength;
    /** Header bytes collected so far (type and length, at most 4 of the 5). */
    private byte partialHeaderLength;

    private byte type;
    private int bodyRemaining;
    private boolean inBody;
    private int wanted;
    private boolean unframeable;

    /** See {@link Sink#onMessageStart}: the scanner reports to itself (no sink object to keep per scanner). */
    abstract int onMessageStart(byte type, int bodyLength);

    /** See {@link Sink#onBody}. */
    abstract void onBody(ByteBuf buf, int index, int length);

    /** See {@link Sink#onMessageEnd}. */
    abstract void onMessageEnd(byte type);

    /** See {@link Sink#onUnframeable}. */
    abstract void onUnframeable(String reason);

    /** A scanner that reports to {@code sink}; the session tracker's directions are scanners themselves. */
    static PgFrameScanner to(Sink sink) {
        return new PgFrameScanner() {
            @Override
            public int onMessageStart(byte type, int bodyLength) {
                return sink.onMessageStart(type, bodyLength);
            }

            @Override
            public void onBody(ByteBuf buf, int index, int length) {
                sink.onBody(buf, index, length);
            }

            @Override
            public void onMessageEnd(byte type) {
                sink.onMessageEnd(type);
            }

            @Override
            public void onUnframeable(String reason) {
                sink.onUnframeable(reason);
            }
        };
    }

    /** Scans the readable bytes of {@code buf} without moving its indexes. */
    void scan(ByteBuf buf) {
        int index = buf.readerIndex();
        int end = buf.writerIndex();
        while (index < end && !unframeable) {
            if (inBody) {
                int chunk = Math.min(bodyRemaining, end - index);
                if (wanted > 0) {
                    int seen = Math.min(wanted, chunk);
                    wanted -= seen;
                    onBody(buf, index, seen);
                }
                index += chunk;
                bodyRemaining -= chunk;
                if (bodyRemaining == 0) {
                    inBody = false;
                    onMessageEnd(type);
                }
            } else if (partialHeaderLength == 0 && end - index >= HEADER_LENGTH) {
                startMessage(buf.getByte(index), buf.getInt(index + 1));
                index += HEADER_LENGTH;
            } else {
                byte b = buf.getByte(index);
                if (partialHeaderLength == 0) {
                    type = b;
                } else {
                    partialLength = partialLength << 8 | (b & 0xFF);
                }
                partialHeaderLength++;
                index++;
                if (partialHeaderLength == HEADER_LENGTH) {
                    int length = partialLength;
                    partialLength = 0;
                    partialHeaderLength = 0;
                    startMessage(type, length);
                }
            }
        }
    }

    private void startMessage(byte messageType, int length) {
        if (length < 4) {
            unframeable = true;
            onUnframeable(String.format("invalid message length %d for message type 0x%02x",
                    length, messageType & 0xFF));
            return;
        }
        type = messageType;
        bodyRemaining = length - 4;
        int want = onMessageStart(messageType, length - 4);
        wanted = Math.min(Math.max(want, 0), bodyRemaining);
        if (bodyRemaining == 0) {
            onMessageEnd(messageType);
        } else {
            inBody = true;
        }
    }

    /** True between messages: a packet inserted now would not split one. False once unframeable. */
    boolean atBoundary() {
        return !unframeable && !inBody && partialHeaderLength == 0;
    }

    boolean unframeable() {
        return unframeable;
    }
}
