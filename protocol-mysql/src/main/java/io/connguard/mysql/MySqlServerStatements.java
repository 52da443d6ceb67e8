package io.connguard.mysql;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The statements prepared (COM_STMT_PREPARE) on one pooled server connection, by query text, with the
 * server's statement id, parameter and column counts and the parameter types last bound to each, in
 * least-recently-used order. Beyond its capacity the least recently used statement is given up, and its
 * id joins the ids to close with COM_STMT_CLOSE ({@link #takeCloses}), so that the server's
 * {@code max_prepared_stmt_count} is never exhausted however many statements clients prepare over the
 * connection's life; a text prepared again replaces (and closes) its older id. Shared by every client
 * the connection serves in turn; used on its event loop.
 */
final class MySqlServerStatements {

    /** One statement prepared on the server. */
    static final class Entry {
        final int serverId;
        final int params;
        final int columns;
        /** The 2-byte types of the last EXECUTE that bound parameters, or null. */
        byte[] boundTypes;

        Entry(int serverId, int params, int columns) {
            this.serverId = serverId;
            this.params = params;
            this.columns = columns;
        }
    }

    private final int capacity;
    private final LinkedHashMap<Text, Entry> entries = new LinkedHashMap<>(16, 0.75f, true);
    private final List<Integer> closes = new ArrayList<>();

    /** @param capacity statements kept prepared; the least recently used beyond it is closed */
    MySqlServerStatements(int capacity) {
        if (capacity < 1) {
            throw new IllegalArgumentException("capacity must be at least 1");
        }
        this.capacity = capacity;
    }

    /** The statement prepared for {@code text}, marked as used; null when not prepared here. */
    Entry lookup(Text text) {
        return entries.get(text);
    }

    /** Records that {@code text} is prepared as {@code serverId}; an older id of the text and the LRU overflow are to be closed. */
    Entry put(Text text, int serverId, int params, int columns) {
        Entry entry = new Entry(serverId, params, columns);
        Entry old = entries.put(text, entry);
        if (old != null && old.serverId != serverId) {
            closes.add(old.serverId);
        }
        Iterator<Map.Entry<Text, Entry>> eldest = entries.entrySet().iterator();
        while (entries.size() > capacity) {
            closes.add(eldest.next().getValue().serverId);
            eldest.remove();
        }
        return entry;
    }

    /** Statement ids to close on the server before the next command (COM_STMT_CLOSE has no response). */
    List<Integer> takeCloses() {
        if (closes.isEmpty()) {
            return List.of();
        }
        List<Integer> taken = List.copyOf(closes);
        closes.clear();
        return taken;
    }

    /** The session was reset (COM_RESET_CONNECTION, COM_CHANGE_USER): the server closed every statement. */
    void forgetAll() {
        entries.clear();
        closes.clear();
    }

    int preparedCount() {
        return entries.size();
    }

    /** A COM_STMT_CLOSE packet for {@code serverId}. */
    static ByteBuf closePacket(ByteBufAllocator alloc, int serverId) {
        ByteBuf out = alloc.buffer(MySqlWire.HEADER_SIZE + 5);
        int start = MySqlWire.startPacket(out, 0);
        out.writeByte(0x19).writeIntLE(serverId);
        MySqlWire.finishPacket(out, start);
        return out;
    }

    /** A statement's query text as the server sees it: equal texts are the same statement for every client. */
    static final class Text {
        private final byte[] bytes;
        private final int hash;

        Text(byte[] bytes) {
            this.bytes = bytes;
            this.hash = Arrays.hashCode(bytes);
        }

        byte[] bytes() {
            return bytes;
        }

        @Override
        public boolean equals(Object other) {
            return other instanceof Text that && that.hash == hash && Arrays.equals(that.bytes, bytes);
        }

        @Override
        public int hashCode() {
            return hash;
        }

        @Override
        public String toString() {
            return new String(bytes, 0, Math.min(bytes.length, 60), java.nio.charset.StandardCharsets.UTF_8);
        }
    }
}
