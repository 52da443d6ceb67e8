package io.connguard.mysql;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;

import java.util.Arrays;

/**
 * Copies the payload of the OK packets that carry session state information, and only those, as they
 * stream from a pooled server connection, so that {@link MySqlSessionChanges} can be decoded: the command
 * scanner knows a packet's header and leading bytes, which hold the status flags; an OK without
 * {@code SERVER_SESSION_STATE_CHANGED} (nearly all of them) costs nothing more. OK packets are small, so
 * the copy is bounded ({@link #MAX_PAYLOAD}); a larger one is not read and reported as lost, and the
 * pooler must then keep the client where it is. The buffer grows on demand and is kept for the next OK.
 * One instance per server connection, used on its event loop.
 */
final class MySqlOkCapture {

    /** Largest OK payload read; a SET of every variable MariaDB tracks stays well below. */
    static final int MAX_PAYLOAD = 64 * 1024;

    private byte[] bytes = new byte[0];
    private int length;
    private int expected;
    private boolean capturing;

    /**
     * An OK packet (header 0x00, or 0xFE ending a result set under CLIENT_DEPRECATE_EOF) starts, of
     * {@code payloadLength} bytes, whose first {@code prefixLength} payload bytes are {@code prefix}.
     * Returns true when its payload must be passed to {@link #accept} (from its first byte).
     */
    boolean begin(byte[] prefix, int prefixLength, int payloadLength) {
        capturing = false;
        int status = MySqlStatus.ok(prefix, prefixLength);
        if (status == MySqlStatus.NONE || (status & MySqlSessionChanges.SERVER_SESSION_STATE_CHANGED) == 0) {
            return false;
        }
        capturing = true;
        expected = payloadLength;
        length = 0;
        if (payloadLength <= MAX_PAYLOAD && bytes.length < payloadLength) {
            bytes = Arrays.copyOf(bytes, Math.max(payloadLength, Math.min(MAX_PAYLOAD, 2 * bytes.length)));
        }
        return true;
    }

    /** Payload bytes of the packet {@link #begin} accepted; indexes of {@code buf} are untouched. */
    void accept(ByteBuf buf, int index, int count) {
        if (!capturing) {
            return;
        }
        int n = Math.min(count, expected - length);
        if (expected <= MAX_PAYLOAD && n > 0) {
            buf.getBytes(index, bytes, length, n);
        }
        length += Math.max(n, 0);
    }

    /**
     * The packet ended: its changes, {@link MySqlSessionChanges#NONE} if it had none, or null when they could
     * not be read (too large, cut short or malformed).
     */
    MySqlSessionChanges finish() {
        if (!capturing) {
            return MySqlSessionChanges.NONE;
        }
        capturing = false;
        if (expected > MAX_PAYLOAD || length != expected) {
            return null;
        }
        try {
            return MySqlSessionChanges.decode(Unpooled.wrappedBuffer(bytes, 0, length), 0, length);
        } catch (MalformedPacketException e) {
            return null;
        }
    }
}
