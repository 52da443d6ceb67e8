package io.connguard.mysql;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;

import java.nio.charset.StandardCharsets;

import static io.connguard.mysql.MySqlCapabilities.CLIENT_CONNECT_ATTRS;
import static io.connguard.mysql.MySqlCapabilities.CLIENT_PLUGIN_AUTH;
import static io.connguard.mysql.MySqlCapabilities.CLIENT_SECURE_CONNECTION;

/**
 * COM_CHANGE_USER: decoded for the new identity and re-encoded with an empty auth response and the
 * switch plugin, because the client computed its auth data from the proxy's scramble, which the server
 * does not know; the server then sends an AuthSwitchRequest with its own.
 *
 * @see <a href="https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_com_change_user.html">COM_CHANGE_USER</a>
 * @see <a href="https://mariadb.com/kb/en/com_change_user/">MariaDB COM_CHANGE_USER</a>
 * @param charset    the character set id, or -1 when the client left it out
 * @param attributes the connection attributes' key/value bytes, or null when absent
 */
record MySqlChangeUser(String user, String database, int charset, byte[] attributes, String programName) {

    /** Decodes a COM_CHANGE_USER payload (starting with its command byte) of {@code length} bytes. */
    static MySqlChangeUser decode(ByteBuf buf, int index, int length, long capabilities) {
        int end = index + length;
        int i = index + 1;
        int nul = MySqlWire.nulIndex(buf, i, end);
        String user = buf.toString(i, nul - i, StandardCharsets.UTF_8);
        i = nul + 1;
        if ((capabilities & CLIENT_SECURE_CONNECTION) != 0) {
            int authLength = MySqlWire.readInt1(buf, i, end);
            i += 1 + MySqlHandshakeResponse.checkedLength(authLength, i + 1, end);
        } else {
            i = MySqlWire.nulIndex(buf, i, end) + 1;
        }
        String database = "";
        if (i < end) {
            nul = MySqlWire.nulIndex(buf, i, end);
            database = buf.toString(i, nul - i, StandardCharsets.UTF_8);
            i = nul + 1;
        }
        int charset = -1;
        if (i + 2 <= end) {
            charset = MySqlWire.readInt2(buf, i, end);
            i += 2;
        }
        if ((capabilities & CLIENT_PLUGIN_AUTH) != 0 && i < end) {
            nul = buf.indexOf(i, end, (byte) 0);
            i = nul < 0 ? end : nul + 1;
        }
        byte[] attributes = null;
        String programName = null;
        if ((capabilities & CLIENT_CONNECT_ATTRS) != 0 && i < end) {
            long attributesLength = MySqlWire.readLenencInt(buf, i, end);
            i += MySqlWire.lenencSize(buf.getUnsignedByte(i));
            int attributesEnd = i + MySqlHandshakeResponse.checkedLength(attributesLength, i, end);
            attributes = new byte[attributesEnd - i];
            buf.getBytes(i, attributes);
            programName = MySqlHandshakeResponse.attribute(buf, i, attributesEnd, "program_name");
        }
        return new MySqlChangeUser(user, database, charset, attributes, programName);
    }

    /** The packet for the server: same user, database and attributes, no auth data, the switch plugin. */
    ByteBuf encodeForSwitch(ByteBufAllocator alloc, long capabilities, int defaultCharset) {
        ByteBuf out = alloc.buffer(64 + user.length() + database.length() + (attributes == null ? 0 : attributes.length));
        int start = MySqlWire.startPacket(out, 0);
        out.writeByte(MySqlCommand.COM_CHANGE_USER);
        MySqlWire.writeNulTerminatedString(out, user);
        out.writeByte(0); // empty auth response (1-byte length, or an empty string<NUL>)
        MySqlWire.writeNulTerminatedString(out, database);
        out.writeShortLE(charset >= 0 ? charset : defaultCharset);
        if ((capabilities & CLIENT_PLUGIN_AUTH) != 0) {
            MySqlWire.writeNulTerminatedString(out, MySqlHandshakeResponse.SWITCH_PLUGIN);
        }
        if ((capabilities & CLIENT_CONNECT_ATTRS) != 0 && attributes != null) {
            MySqlWire.writeLenencInt(out, attributes.length);
            out.writeBytes(attributes);
        }
        MySqlWire.finishPacket(out, start);
        return out;
    }
}
