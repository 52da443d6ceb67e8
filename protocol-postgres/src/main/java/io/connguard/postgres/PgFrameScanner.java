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
final class PgFrameScanner {

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

    private final Sink sink;

    /** Header bytes collected so far when a header is split across buffers (at most 4 of them). */
    private long partialHeader;
    private int partialHeaderLength;

    private byte type;
    private long bodyRemaining;
    private boolean inBody;
    private int wanted;
    private boolean unframeable;

    PgFrameScanner(Sink sink) {
        this.sink = sink;
    }

    /** Scans the readable bytes of {@code buf} without moving its indexes. */
    void scan(ByteBuf buf) {
        int index = buf.readerIndex();
        int end = buf.writerIndex();
        while (index < end && !unframeable) {
            if (inBody) {
                int chunk = (int) Math.min(bodyRemaining, end - index);
                if (wanted > 0) {
                    int seen = Math.min(wanted, chunk);
                    wanted -= seen;
                    sink.onBody(buf, index, seen);
                }
                index += chunk;
                bodyRemaining -= chunk;
                if (bodyRemaining == 0) {
                    inBody = false;
                    sink.onMessageEnd(type);
                }
            } else if (partialHeaderLength == 0 && end - index >= HEADER_LENGTH) {
                startMessage(buf.getByte(index), buf.getInt(index + 1));
                index += HEADER_LENGTH;
            } else {
                partialHeader = partialHeader << 8 | (buf.getByte(index) & 0xFF);
                partialHeaderLength++;
                index++;
                if (partialHeaderLength == HEADER_LENGTH) {
                    byte headerType = (byte) (partialHeader >>> 32);
                    int length = (int) partialHeader;
                    partialHeader = 0;
                    partialHeaderLength = 0;
                    startMessage(headerType, length);
                }
            }
        }
    }

    private void startMessage(byte messageType, int length) {
        if (length < 4) {
            unframeable = true;
            sink.onUnframeable(String.format("invalid message length %d for message type 0x%02x",
                    length, messageType & 0xFF));
            return;
        }
        type = messageType;
        bodyRemaining = length - 4L;
        int want = sink.onMessageStart(messageType, length - 4);
        wanted = (int) Math.min(Math.max(want, 0), bodyRemaining);
        if (bodyRemaining == 0) {
            sink.onMessageEnd(messageType);
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
