package io.connguard.mysql;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;

import java.nio.charset.StandardCharsets;
import java.util.function.LongUnaryOperator;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Rewrites {@code KILL [HARD|SOFT] [CONNECTION|QUERY] n} (COM_QUERY) and COM_PROCESS_KILL whose {@code n}
 * is a connection id the proxy handed out in its greeting to the real server thread id behind it, so
 * that drivers cancelling through a second connection (Connector/J's {@code Statement.cancel()} and
 * {@code setQueryTimeout}) reach the right thread. Ids the proxy does not know pass unchanged.
 *
 * @see <a href="https://mariadb.com/kb/en/kill/">MariaDB KILL</a>
 * @see <a href="https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_com_process_kill.html">COM_PROCESS_KILL</a>
 */
final class MySqlKillRewriter {

    /** COM_QUERY payloads longer than this are never a bare KILL. */
    static final int MAX_KILL_LENGTH = 96;

    private static final Pattern KILL = Pattern.compile(
            "(?is)\\s*KILL\\s+(?:(?:HARD|SOFT)\\s+)?(?:(?:CONNECTION|QUERY)\\s+)?(\\d{1,19})\\s*;?\\s*");

    private final LongUnaryOperator realThreadId;

    /** {@code realThreadId} maps a proxy-assigned id to the real one, or returns -1. */
    MySqlKillRewriter(LongUnaryOperator realThreadId) {
        this.realThreadId = realThreadId;
    }

    /**
     * The COM_QUERY packet to send instead of the one whose statement text is at {@code index}, or null
     * to forward the original. Allocates only for statements that start with KILL.
     */
    ByteBuf rewriteQuery(ByteBufAllocator alloc, ByteBuf buf, int index, int length) {
        if (length > MAX_KILL_LENGTH || !startsWithKill(buf, index, index + length)) {
            return null;
        }
        String text = buf.toString(index, length, StandardCharsets.US_ASCII);
        Matcher matcher = KILL.matcher(text);
        if (!matcher.matches()) {
            return null;
        }
        long id = parse(matcher.group(1));
        // An id past Long.MAX_VALUE is no id the proxy handed out; its -1 must not reach the map.
        long real = id < 0 ? -1 : realThreadId.applyAsLong(id);
        if (real < 0) {
            return null;
        }
        String rewritten = text.substring(0, matcher.start(1)) + real + text.substring(matcher.end(1));
        ByteBuf out = alloc.buffer(MySqlWire.HEADER_SIZE + 1 + rewritten.length());
        int start = MySqlWire.startPacket(out, 0);
        out.writeByte(MySqlCommand.COM_QUERY).writeCharSequence(rewritten, StandardCharsets.US_ASCII);
        MySqlWire.finishPacket(out, start);
        return out;
    }

    /** The COM_PROCESS_KILL packet to send instead of one whose 4-byte id is at {@code index}, or null. */
    ByteBuf rewriteProcessKill(ByteBufAllocator alloc, ByteBuf buf, int index) {
        long real = realThreadId.applyAsLong(buf.getUnsignedIntLE(index));
        if (real < 0) {
            return null;
        }
        ByteBuf out = alloc.buffer(MySqlWire.HEADER_SIZE + 5);
        int start = MySqlWire.startPacket(out, 0);
        out.writeByte(MySqlCommand.COM_PROCESS_KILL).writeIntLE((int) real);
        MySqlWire.finishPacket(out, start);
        return out;
    }

    private static boolean startsWithKill(ByteBuf buf, int index, int end) {
        int i = index;
        while (i < end && Character.isWhitespace(buf.getByte(i))) {
            i++;
        }
        if (end - i < 4) {
            return false;
        }
        return (buf.getByte(i) | 0x20) == 'k' && (buf.getByte(i + 1) | 0x20) == 'i'
                && (buf.getByte(i + 2) | 0x20) == 'l' && (buf.getByte(i + 3) | 0x20) == 'l';
    }

    private static long parse(String digits) {
        try {
            return Long.parseLong(digits);
        } catch (NumberFormatException tooLarge) {
            return -1;
        }
    }
}
