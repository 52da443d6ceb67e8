package io.connguard.mysql;

import io.netty.buffer.ByteBuf;

import java.nio.charset.StandardCharsets;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The session state information of one OK packet (sent with {@code SERVER_SESSION_STATE_CHANGED} to a
 * client with {@code CLIENT_SESSION_TRACK}): the system variables that changed and their new values in
 * the order the server listed them, the new schema, whether any session state changed at all
 * ({@code SESSION_TRACK_STATE_CHANGE}, also for what is not reported otherwise: user variables,
 * temporary tables, prepared statements), and the transaction entries when the server sends them.
 * Immutable; decoded from a whole OK payload.
 *
 * @see <a href="https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_basic_ok_packet.html">OK_Packet</a>
 * @see <a href="https://mariadb.com/kb/en/ok_packet/">MariaDB OK packet</a>
 */
record MySqlSessionChanges(Map<String, String> variables, String schema, boolean stateChanged,
                           String transactionCharacteristics, String transactionState) {

    static final int SERVER_SESSION_STATE_CHANGED = 0x4000;

    static final int SESSION_TRACK_SYSTEM_VARIABLES = 0;
    static final int SESSION_TRACK_SCHEMA = 1;
    static final int SESSION_TRACK_STATE_CHANGE = 2;
    static final int SESSION_TRACK_GTIDS = 3;
    static final int SESSION_TRACK_TRANSACTION_CHARACTERISTICS = 4;
    static final int SESSION_TRACK_TRANSACTION_STATE = 5;

    /** An OK packet without session state information. */
    static final MySqlSessionChanges NONE = new MySqlSessionChanges(Map.of(), null, false, null, null);

    /**
     * Decodes the OK payload {@code [index, end)} of {@code buf} (header 0x00, or 0xFE for an OK that ends a
     * result set under CLIENT_DEPRECATE_EOF), read with CLIENT_SESSION_TRACK. Unknown entry types are skipped.
     *
     * @throws MalformedPacketException when the payload does not hold what its flags announce
     */
    static MySqlSessionChanges decode(ByteBuf buf, int index, int end) {
        int header = MySqlWire.readInt1(buf, index, end);
        if (header != MySqlWire.OK && header != MySqlWire.EOF) {
            throw new MalformedPacketException("not an OK packet");
        }
        int i = index + 1;
        i = skipLenencInt(buf, i, end);                         // affected rows
        i = skipLenencInt(buf, i, end);                         // last insert id
        int status = MySqlWire.readInt2(buf, i, end);
        i += 4;                                                 // status flags, warnings
        if ((status & SERVER_SESSION_STATE_CHANGED) == 0 || i >= end) {
            return NONE;
        }
        i = skipLenencString(buf, i, end);                      // info
        long total = MySqlWire.readLenencInt(buf, i, end);
        i += MySqlWire.lenencSize(buf.getUnsignedByte(i));
        int stateEnd = i + checkedLength(total, i, end);
        Map<String, String> variables = new LinkedHashMap<>();
        String schema = null;
        boolean changed = false;
        String characteristics = null;
        String transactionState = null;
        while (i < stateEnd) {
            int type = MySqlWire.readInt1(buf, i, stateEnd);
            i++;
            long dataLength = MySqlWire.readLenencInt(buf, i, stateEnd);
            i += MySqlWire.lenencSize(buf.getUnsignedByte(i));
            int dataEnd = i + checkedLength(dataLength, i, stateEnd);
            switch (type) {
                case SESSION_TRACK_SYSTEM_VARIABLES -> {
                    int j = i;
                    while (j < dataEnd) {
                        String name = readLenencString(buf, j, dataEnd);
                        j = skipLenencString(buf, j, dataEnd);
                        String value = readLenencString(buf, j, dataEnd);
                        j = skipLenencString(buf, j, dataEnd);
                        variables.put(name, value);
                    }
                }
                case SESSION_TRACK_SCHEMA -> schema = readLenencString(buf, i, dataEnd);
                case SESSION_TRACK_STATE_CHANGE -> changed = true;
                case SESSION_TRACK_TRANSACTION_CHARACTERISTICS -> characteristics = readLenencString(buf, i, dataEnd);
                case SESSION_TRACK_TRANSACTION_STATE -> transactionState = readLenencString(buf, i, dataEnd);
                default -> {
                }
            }
            i = dataEnd;
        }
        return new MySqlSessionChanges(variables.isEmpty() ? Map.of() : Collections.unmodifiableMap(variables), schema, changed,
                characteristics, transactionState);
    }

    /** Nothing is reported that connguard replays: a change happened that only a pin can keep (or nothing did). */
    boolean onlyUntracked() {
        return variables.isEmpty() && schema == null;
    }

    private static int checkedLength(long length, int from, int end) {
        if (length < 0 || length > end - from) {
            throw new MalformedPacketException("session state information longer than its packet");
        }
        return (int) length;
    }

    private static int skipLenencInt(ByteBuf buf, int i, int end) {
        MySqlWire.readLenencInt(buf, i, end);
        return i + MySqlWire.lenencSize(buf.getUnsignedByte(i));
    }

    private static int skipLenencString(ByteBuf buf, int i, int end) {
        long length = MySqlWire.readLenencInt(buf, i, end);
        int start = i + MySqlWire.lenencSize(buf.getUnsignedByte(i));
        return start + checkedLength(length, start, end);
    }

    private static String readLenencString(ByteBuf buf, int i, int end) {
        long length = MySqlWire.readLenencInt(buf, i, end);
        int start = i + MySqlWire.lenencSize(buf.getUnsignedByte(i));
        return buf.toString(start, checkedLength(length, start, end), StandardCharsets.UTF_8);
    }
}
