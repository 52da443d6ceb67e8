package io.connguard.mysql;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;

import java.nio.charset.StandardCharsets;

/**
 * Writes the COM_QUERY {@code SIGNAL SQLSTATE .. SET MYSQL_ERRNO = .., MESSAGE_TEXT = ..} that makes the
 * server answer with a given error: transaction mode sends it in place of a client command that connguard
 * must answer itself, so that the ERR comes back in order with the answers to commands pipelined before it.
 *
 * @see <a href="https://mariadb.com/kb/en/signal/">SIGNAL</a>
 */
final class MySqlSignal {

    /** SIGNAL keeps MESSAGE_TEXT to this many characters. */
    static final int MAX_MESSAGE = 128;

    private MySqlSignal() {
    }

    /** The SIGNAL for the error of {@code err}, a whole ERR packet (header included), which is released. */
    static ByteBuf of(ByteBufAllocator alloc, ByteBuf err) {
        try {
            int p = err.readerIndex() + MySqlWire.HEADER_SIZE;
            int end = err.writerIndex();
            int code = err.getUnsignedShortLE(p + 1);
            int message = p + 3;
            String sqlState = "HY000";
            if (message + 6 <= end && err.getByte(message) == '#') {
                sqlState = err.toString(message + 1, 5, StandardCharsets.US_ASCII);
                message += 6;
            }
            return of(alloc, code, sqlState, err.toString(message, end - message, StandardCharsets.UTF_8));
        } finally {
            err.release();
        }
    }

    static ByteBuf of(ByteBufAllocator alloc, int code, String sqlState, String message) {
        if (!sqlState.matches("[0-9A-Z]{5}") || sqlState.startsWith("00") || sqlState.startsWith("01")
                || sqlState.startsWith("02")) {
            sqlState = "HY000";                                 // SIGNAL raises no error for these classes
        }
        String text = message.length() > MAX_MESSAGE ? message.substring(0, MAX_MESSAGE) : message;
        String literal = MySqlSessionState.literal(text);
        if (!literal.startsWith("'") && !literal.startsWith("X'")) {
            literal = "'" + literal + "'";                      // a number: still a string here
        }
        String sql = "SIGNAL SQLSTATE '" + sqlState + "' SET MYSQL_ERRNO = " + code + ", MESSAGE_TEXT = " + literal;
        ByteBuf out = alloc.buffer(MySqlWire.HEADER_SIZE + 1 + sql.length() * 3);
        int start = MySqlWire.startPacket(out, 0);
        out.writeByte(MySqlCommand.COM_QUERY);
        out.writeCharSequence(sql, StandardCharsets.UTF_8);
        MySqlWire.finishPacket(out, start);
        return out;
    }
}
