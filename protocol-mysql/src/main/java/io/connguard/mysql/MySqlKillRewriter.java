package io.connguard.mysql;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;

import java.nio.charset.StandardCharsets;
import java.util.function.LongUnaryOperator;

/**
 * Rewrites the thread id of every {@code KILL [HARD|SOFT] [CONNECTION|QUERY] n} statement of a COM_QUERY,
 * wherever it stands in a multi-statement ({@code KILL QUERY 7; SELECT 1}), and of COM_PROCESS_KILL, to the
 * id the listener's {@link MySqlThreadIds} resolves it to: the real thread behind an id connguard gave out,
 * or no thread at all for a minted id that is not one of this listener's live sessions. Drivers cancelling
 * through a second connection (Connector/J's {@code Statement.cancel()} and {@code setQueryTimeout}) so reach
 * the right thread, and never an unrelated one.
 *
 * <p>Statements are found with MySQL's lexical rules: quoted strings and identifiers ({@code '..'},
 * {@code ".."} with backslash escapes and doubled quotes, {@code `..`}) and comments ({@code -- },
 * {@code #}, {@code /* *&#47;}) are skipped, and a statement starts after a {@code ;}. Only COM_QUERY payloads
 * up to {@link #MAX_QUERY_LENGTH} bytes are looked at, and only when they contain "kill" at all.
 *
 * @see <a href="https://mariadb.com/kb/en/kill/">MariaDB KILL</a>
 * @see <a href="https://dev.mysql.com/doc/refman/8.0/en/comments.html">MySQL comments</a>
 * @see <a href="https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_com_process_kill.html">COM_PROCESS_KILL</a>
 */
final class MySqlKillRewriter {

    /** COM_QUERY statement texts longer than this are relayed as they are, never held to be looked at. */
    static final int MAX_QUERY_LENGTH = 4096;
    /** At most this many KILL statements of one COM_QUERY are rewritten. */
    private static final int MAX_KILLS = 16;

    /** One KILL statement's thread id: where its digits are and what the id is. */
    record Kill(int digitsStart, int digitsEnd, long id) {
    }

    private final LongUnaryOperator resolve;

    /** {@code resolve} gives the thread id to send for an id a client named (the same id to keep it). */
    MySqlKillRewriter(LongUnaryOperator resolve) {
        this.resolve = resolve;
    }

    /**
     * The COM_QUERY packet to send instead of the one whose statement text is at {@code index}, or null
     * to forward the original. Allocates only when an id changes.
     */
    ByteBuf rewriteQuery(ByteBufAllocator alloc, ByteBuf buf, int index, int length) {
        if (length > MAX_QUERY_LENGTH || !mentionsKill(buf, index, index + length)) {
            return null;
        }
        Kill[] kills = new Kill[MAX_KILLS];
        int found = findKills(buf, index, index + length, kills);
        long[] ids = new long[found];
        boolean changed = false;
        for (int k = 0; k < found; k++) {
            ids[k] = kills[k].id() < 0 ? kills[k].id() : resolve.applyAsLong(kills[k].id());
            changed |= ids[k] != kills[k].id();
        }
        if (!changed) {
            return null;
        }
        ByteBuf out = alloc.buffer(MySqlWire.HEADER_SIZE + 1 + length + found * 10);
        int start = MySqlWire.startPacket(out, 0);
        out.writeByte(MySqlCommand.COM_QUERY);
        int copied = index;
        for (int k = 0; k < found; k++) {
            out.writeBytes(buf, copied, kills[k].digitsStart() - copied);
            out.writeCharSequence(Long.toString(ids[k]), StandardCharsets.US_ASCII);
            copied = kills[k].digitsEnd();
        }
        out.writeBytes(buf, copied, index + length - copied);
        MySqlWire.finishPacket(out, start);
        return out;
    }

    /** The COM_PROCESS_KILL packet to send instead of one whose 4-byte id is at {@code index}, or null. */
    ByteBuf rewriteProcessKill(ByteBufAllocator alloc, ByteBuf buf, int index) {
        long id = buf.getUnsignedIntLE(index);
        long real = resolve.applyAsLong(id);
        if (real == id) {
            return null;
        }
        ByteBuf out = alloc.buffer(MySqlWire.HEADER_SIZE + 5);
        int start = MySqlWire.startPacket(out, 0);
        out.writeByte(MySqlCommand.COM_PROCESS_KILL).writeIntLE((int) real);
        MySqlWire.finishPacket(out, start);
        return out;
    }

    /**
     * The thread id of a statement text that is one bare KILL and nothing else (a trailing {@code ;} and
     * white space allowed), or -1: what a connection on probation may run.
     */
    static long soleKill(ByteBuf buf, int index, int length) {
        if (length > MAX_QUERY_LENGTH || !mentionsKill(buf, index, index + length)) {
            return -1;
        }
        Kill[] kills = new Kill[2];
        int end = index + length;
        if (findKills(buf, index, end, kills) != 1 || kills[0].id() < 0) {
            return -1;
        }
        int i = skipBlank(buf, index, end);
        if (kills[0].digitsStart() < i || !isKillAt(buf, i, end)) {
            return -1;
        }
        i = skipBlank(buf, kills[0].digitsEnd(), end);
        if (i < end && buf.getByte(i) == ';') {
            i = skipBlank(buf, i + 1, end);
        }
        return i == end ? kills[0].id() : -1;
    }

    /** Fills {@code kills} with the KILL statements of the text between {@code index} and {@code end}. */
    static int findKills(ByteBuf buf, int index, int end, Kill[] kills) {
        int found = 0;
        int i = index;
        while (i < end && found < kills.length) {
            i = skipBlank(buf, i, end);
            if (i < end && isKillAt(buf, i, end)) {
                Kill kill = parseKill(buf, i + 4, end);
                if (kill != null) {
                    kills[found++] = kill;
                    i = kill.digitsEnd();
                }
            }
            i = statementEnd(buf, i, end);
        }
        return found;
    }

    /** After {@code KILL}: [HARD|SOFT] [CONNECTION|QUERY] digits, followed by a word boundary; else null. */
    private static Kill parseKill(ByteBuf buf, int index, int end) {
        int i = skipBlank(buf, index, end);
        if (i == index) {
            return null; // KILL must be followed by white space or a comment
        }
        int word = wordEnd(buf, i, end);
        if (isWord(buf, i, word, "HARD") || isWord(buf, i, word, "SOFT")) {
            i = skipBlank(buf, word, end);
            word = wordEnd(buf, i, end);
        }
        if (isWord(buf, i, word, "CONNECTION") || isWord(buf, i, word, "QUERY")) {
            i = skipBlank(buf, word, end);
            word = wordEnd(buf, i, end);
        }
        int digits = i;
        while (i < end && isDigit(buf.getByte(i))) {
            i++;
        }
        if (i == digits || i < end && isWordByte(buf.getByte(i))) {
            return null; // KILL USER x, KILL QUERY ID n, KILL 12abc
        }
        long id = i - digits > 18 ? -1 : Long.parseLong(buf.toString(digits, i - digits, StandardCharsets.US_ASCII));
        return new Kill(digits, i, id);
    }

    /** The index after the {@code ;} that ends the statement at {@code index} (or {@code end}), skipping quotes and comments. */
    private static int statementEnd(ByteBuf buf, int index, int end) {
        int i = index;
        while (i < end) {
            byte b = buf.getByte(i);
            if (b == ';') {
                return i + 1;
            }
            if (b == '\'' || b == '"' || b == '`') {
                i = quotedEnd(buf, i, end, b);
            } else if (startsComment(buf, i, end)) {
                i = commentEnd(buf, i, end);
            } else {
                i++;
            }
        }
        return end;
    }

    private static int quotedEnd(ByteBuf buf, int index, int end, byte quote) {
        int i = index + 1;
        while (i < end) {
            byte b = buf.getByte(i);
            if (b == '\\' && quote != '`') {
                i += 2;
            } else if (b == quote) {
                if (i + 1 < end && buf.getByte(i + 1) == quote) {
                    i += 2;
                } else {
                    return i + 1;
                }
            } else {
                i++;
            }
        }
        return end;
    }

    private static boolean startsComment(ByteBuf buf, int i, int end) {
        byte b = buf.getByte(i);
        if (b == '#') {
            return true;
        }
        if (i + 1 >= end) {
            return false;
        }
        byte next = buf.getByte(i + 1);
        if (b == '/' && next == '*') {
            return true;
        }
        // "--" starts a comment only when followed by white space or a control character (or the end)
        return b == '-' && next == '-' && (i + 2 >= end || (buf.getByte(i + 2) & 0xFF) <= ' ');
    }

    private static int commentEnd(ByteBuf buf, int i, int end) {
        if (buf.getByte(i) == '/') {
            for (int j = i + 2; j + 1 < end; j++) {
                if (buf.getByte(j) == '*' && buf.getByte(j + 1) == '/') {
                    return j + 2;
                }
            }
            return end;
        }
        int newline = buf.indexOf(i, end, (byte) '\n');
        return newline < 0 ? end : newline + 1;
    }

    /** Skips white space and comments. */
    private static int skipBlank(ByteBuf buf, int index, int end) {
        int i = index;
        while (i < end) {
            if ((buf.getByte(i) & 0xFF) <= ' ') {
                i++;
            } else if (startsComment(buf, i, end)) {
                i = commentEnd(buf, i, end);
            } else {
                break;
            }
        }
        return i;
    }

    private static boolean isKillAt(ByteBuf buf, int i, int end) {
        return end - i >= 4 && (buf.getByte(i) | 0x20) == 'k' && (buf.getByte(i + 1) | 0x20) == 'i'
                && (buf.getByte(i + 2) | 0x20) == 'l' && (buf.getByte(i + 3) | 0x20) == 'l'
                && (i + 4 == end || !isWordByte(buf.getByte(i + 4)));
    }

    /** A quick look for "kill" anywhere, so that ordinary statements cost one pass over their bytes. */
    private static boolean mentionsKill(ByteBuf buf, int index, int end) {
        for (int i = index; i + 3 < end; i++) {
            if ((buf.getByte(i) | 0x20) == 'k' && (buf.getByte(i + 1) | 0x20) == 'i'
                    && (buf.getByte(i + 2) | 0x20) == 'l' && (buf.getByte(i + 3) | 0x20) == 'l') {
                return true;
            }
        }
        return false;
    }

    private static int wordEnd(ByteBuf buf, int index, int end) {
        int i = index;
        while (i < end && isWordByte(buf.getByte(i))) {
            i++;
        }
        return i;
    }

    private static boolean isWord(ByteBuf buf, int from, int to, String word) {
        if (to - from != word.length()) {
            return false;
        }
        for (int k = 0; k < word.length(); k++) {
            if ((buf.getByte(from + k) | 0x20) != (word.charAt(k) | 0x20)) {
                return false;
            }
        }
        return true;
    }

    private static boolean isWordByte(byte b) {
        return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || isDigit(b) || b == '_' || b == '$' || b < 0;
    }

    private static boolean isDigit(byte b) {
        return b >= '0' && b <= '9';
    }
}
