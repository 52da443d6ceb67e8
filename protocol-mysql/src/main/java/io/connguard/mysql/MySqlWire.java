package io.connguard.mysql;

import io.netty.buffer.ByteBuf;

import java.nio.charset.StandardCharsets;

/**
 * The protocol's basic data types, read at absolute indexes (never moving a reader index) and written
 * at the writer index; readers are named after the spec and fail with {@link MalformedPacketException}.
 *
 * @see <a href="https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_basic_data_types.html">Basic data types</a>
 * @see <a href="https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_basic_packets.html">MySQL packets</a>
 */
final class MySqlWire {

    /** Header: 3-byte little-endian payload length, then the sequence id. */
    static final int HEADER_SIZE = 4;
    /** A payload of this length is continued by the next packet. */
    static final int MAX_PAYLOAD = 0xFFFFFF;

    static final int OK = 0x00;
    static final int LOCAL_INFILE = 0xFB;
    static final int EOF = 0xFE;
    static final int ERR = 0xFF;
    /** MariaDB progress reports are ERR packets with this code; they never end a response. */
    static final int PROGRESS_CODE = 0xFFFF;

    private MySqlWire() {
    }

    static int readInt1(ByteBuf buf, int index, int end) {
        check(index + 1 <= end, "int<1>");
        return buf.getUnsignedByte(index);
    }

    static int readInt2(ByteBuf buf, int index, int end) {
        check(index + 2 <= end, "int<2>");
        return buf.getUnsignedShortLE(index);
    }

    static long readInt4(ByteBuf buf, int index, int end) {
        check(index + 4 <= end, "int<4>");
        return buf.getUnsignedIntLE(index);
    }

    /** The size of the length-encoded integer starting with {@code first}, or -1 if no such encoding. */
    static int lenencSize(int first) {
        if (first < 0xFB) {
            return 1;
        }
        return switch (first) {
            case 0xFC -> 3;
            case 0xFD -> 4;
            case 0xFE -> 9;
            default -> -1;
        };
    }

    static long readLenencInt(ByteBuf buf, int index, int end) {
        int first = readInt1(buf, index, end);
        int size = lenencSize(first);
        check(size > 0, "int<lenenc>");
        check(index + size <= end, "int<lenenc>");
        return switch (size) {
            case 1 -> first;
            case 3 -> buf.getUnsignedShortLE(index + 1);
            case 4 -> buf.getUnsignedMediumLE(index + 1);
            default -> buf.getLongLE(index + 1);
        };
    }

    /** Length-encoded integer from a copied packet prefix; -1 if the prefix is too short or invalid. */
    static long readLenencInt(byte[] prefix, int index, int length) {
        if (index >= length) {
            return -1;
        }
        int first = prefix[index] & 0xFF;
        int size = lenencSize(first);
        if (size < 0 || index + size > length) {
            return -1;
        }
        long value = 0;
        for (int i = size - 1; i >= 1; i--) {
            value = (value << 8) | (prefix[index + i] & 0xFF);
        }
        return size == 1 ? first : value;
    }

    static int readInt2(byte[] prefix, int index) {
        return (prefix[index] & 0xFF) | (prefix[index + 1] & 0xFF) << 8;
    }

    /** The index of the NUL ending a string<NUL> starting at {@code index}. */
    static int nulIndex(ByteBuf buf, int index, int end) {
        int nul = buf.indexOf(index, end, (byte) 0);
        check(nul >= 0, "string<NUL>");
        return nul;
    }

    static String readNulTerminatedString(ByteBuf buf, int index, int end) {
        int nul = nulIndex(buf, index, end);
        return buf.toString(index, nul - index, StandardCharsets.UTF_8);
    }

    static void writeLenencInt(ByteBuf out, long value) {
        if (value < 0xFB) {
            out.writeByte((int) value);
        } else if (value < 1 << 16) {
            out.writeByte(0xFC).writeShortLE((int) value);
        } else if (value < 1 << 24) {
            out.writeByte(0xFD).writeMediumLE((int) value);
        } else {
            out.writeByte(0xFE).writeLongLE(value);
        }
    }

    static void writeNulTerminatedString(ByteBuf out, String value) {
        out.writeCharSequence(value, StandardCharsets.UTF_8);
        out.writeByte(0);
    }

    /** Reserves a header at the writer index; {@link #finishPacket} fills in the length. */
    static int startPacket(ByteBuf out, int sequenceId) {
        int start = out.writerIndex();
        out.writeMediumLE(0).writeByte(sequenceId);
        return start;
    }

    static void finishPacket(ByteBuf out, int start) {
        int length = out.writerIndex() - start - HEADER_SIZE;
        if (length >= MAX_PAYLOAD) {
            throw new IllegalStateException("a packet written by the proxy must be shorter than 16 MiB");
        }
        out.setMediumLE(start, length);
    }

    private static void check(boolean condition, String what) {
        if (!condition) {
            throw new MalformedPacketException("truncated or invalid " + what);
        }
    }
}
