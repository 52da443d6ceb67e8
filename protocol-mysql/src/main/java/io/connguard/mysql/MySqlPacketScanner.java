package io.connguard.mysql;

import io.netty.buffer.ByteBuf;
import io.netty.util.concurrent.FastThreadLocal;

import java.util.ArrayDeque;

/**
 * Finds packet boundaries in one direction of a byte stream without consuming or copying bodies: it
 * reads each 4-byte header at its index, copies at most {@link #PREFIX_SIZE} leading payload bytes into
 * an array allocated once (enough for any OK/EOF/ERR, column count or command header), reports the
 * packet, then skips the rest of the body, however large and however it is split across reads.
 *
 * <p>A payload of exactly 0xFFFFFF bytes is continued by the next packet (after an exact multiple, by an
 * empty one); those continuation packets are reported with {@code continuation = true}.
 *
 * @see <a href="https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_basic_packets.html">MySQL packets</a>
 */
final class MySqlPacketScanner {

    /** What a scanner reports to. */
    interface Listener {
        /**
         * A packet's header and its first {@code prefixLength} = min(length, PREFIX_SIZE) payload bytes
         * are known; {@code prefix} is only valid during the call.
         */
        void onPacket(int sequenceId, int length, boolean continuation, byte[] prefix, int prefixLength);
    }

    /** Takes the rest of one packet's payload after its prefix (transaction mode reads session state from OKs). */
    interface BodySink {
        void body(ByteBuf buf, int index, int length);

        /** The packet ended. */
        void end();
    }

    static final int PREFIX_SIZE = 32;
    /** Spares kept per event loop: about as many as its clients holding a server connection at once, at most this. */
    private static final int MAX_SPARES = 64;
    /**
     * This event loop's scanners between packets: a transaction-mode client reads its server's stream only
     * while it holds a connection, and takes a scanner for that time instead of keeping one.
     */
    private static final FastThreadLocal<ArrayDeque<MySqlPacketScanner>> SPARES = new FastThreadLocal<>() {
        @Override
        protected ArrayDeque<MySqlPacketScanner> initialValue() {
            return new ArrayDeque<>();
        }
    };

    private final byte[] prefix = new byte[PREFIX_SIZE];
    private int headerBytes;
    private int header;
    private int length;
    private int sequenceId = -1;
    private int remaining;
    private int prefixWanted;
    private int prefixLength;
    private boolean continuation;
    private boolean continues;
    /** Where the current packet's payload starts in the buffer being scanned, or -1 (an earlier buffer). */
    private int payloadIndex = -1;
    /** Where the current packet's header started in the buffer last scanned, or -1 (an earlier buffer). */
    private int packetStart = -1;
    private BodySink sink;

    /** This event loop's spare scanner, or a new one: between packets, as new. */
    static MySqlPacketScanner take() {
        MySqlPacketScanner spare = SPARES.get().poll();
        return spare != null ? spare : new MySqlPacketScanner();
    }

    /** Done with a scanner {@link #atBoundary() between packets}: it becomes one of this event loop's spares. */
    void giveBack() {
        sequenceId = -1;
        continuation = false;
        payloadIndex = -1;
        sink = null;
        ArrayDeque<MySqlPacketScanner> spares = SPARES.get();
        if (spares.size() < MAX_SPARES) {
            spares.push(this);
        }
    }

    /** Scans the readable bytes of {@code buf} (its indexes are left unchanged). */
    void scan(ByteBuf buf, Listener listener) {
        int i = buf.readerIndex();
        int end = buf.writerIndex();
        payloadIndex = -1;
        packetStart = -1;
        while (i < end) {
            if (headerBytes < MySqlWire.HEADER_SIZE) {
                if (headerBytes == 0) {
                    packetStart = i;
                }
                if (headerBytes == 0 && end - i >= MySqlWire.HEADER_SIZE) {
                    header = buf.getIntLE(i);
                    headerBytes = MySqlWire.HEADER_SIZE;
                    i += MySqlWire.HEADER_SIZE;
                } else {
                    header |= buf.getUnsignedByte(i++) << (8 * headerBytes++);
                }
                if (headerBytes == MySqlWire.HEADER_SIZE) {
                    payloadIndex = i;
                    startPacket(listener);
                }
                continue;
            }
            int n;
            if (prefixLength < prefixWanted) {
                n = Math.min(prefixWanted - prefixLength, end - i);
                buf.getBytes(i, prefix, prefixLength, n);
                prefixLength += n;
                if (prefixLength == prefixWanted) {
                    listener.onPacket(sequenceId, length, continuation, prefix, prefixLength);
                }
            } else {
                n = Math.min(remaining, end - i);
                if (sink != null) {
                    sink.body(buf, i, n);
                }
            }
            i += n;
            remaining -= n;
            if (remaining == 0) {
                endPacket();
            }
        }
    }

    private void startPacket(Listener listener) {
        length = header & MySqlWire.MAX_PAYLOAD;
        sequenceId = header >>> 24;
        continuation = continues;
        continues = length == MySqlWire.MAX_PAYLOAD;
        remaining = length;
        prefixLength = 0;
        prefixWanted = Math.min(length, PREFIX_SIZE);
        if (prefixWanted == 0) {
            listener.onPacket(sequenceId, length, continuation, prefix, 0);
            endPacket();
        }
    }

    private void endPacket() {
        headerBytes = 0;
        header = 0;
        if (sink != null) {
            BodySink ended = sink;
            sink = null;
            ended.end();
        }
    }

    /**
     * Called from {@link Listener#onPacket}: the rest of this packet's payload (after the prefix) goes to
     * {@code sink}, then {@link BodySink#end()}.
     */
    void captureBody(BodySink sink) {
        this.sink = sink;
    }

    /**
     * During {@link Listener#onPacket}: the index of the packet's payload in the buffer being scanned, or -1
     * when its header came in an earlier buffer.
     */
    int payloadIndex() {
        return payloadIndex;
    }

    /**
     * After {@link #scan}: the buffer ended inside a packet's header or before its prefix was complete, so the
     * listener has not heard of that packet yet.
     */
    boolean inPrefix() {
        return headerBytes > 0 && (headerBytes < MySqlWire.HEADER_SIZE || prefixLength < prefixWanted);
    }

    /** After {@link #scan}: where the packet being read began in that buffer, or -1 (in an earlier one). */
    int packetStart() {
        return packetStart;
    }

    /** True between logical packets: an inserted packet would not corrupt the stream here. */
    boolean atBoundary() {
        return headerBytes == 0 && !continues;
    }

    /** The sequence id of the last packet whose header was read, or -1. */
    int lastSequenceId() {
        return sequenceId;
    }
}
