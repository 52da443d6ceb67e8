package io.connguard.mysql;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;

import java.nio.charset.StandardCharsets;

import static io.connguard.mysql.MySqlCapabilities.CLIENT_CONNECT_ATTRS;
import static io.connguard.mysql.MySqlCapabilities.CLIENT_CONNECT_WITH_DB;
import static io.connguard.mysql.MySqlCapabilities.CLIENT_MYSQL;
import static io.connguard.mysql.MySqlCapabilities.CLIENT_PLUGIN_AUTH;
import static io.connguard.mysql.MySqlCapabilities.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA;
import static io.connguard.mysql.MySqlCapabilities.CLIENT_PROTOCOL_41;
import static io.connguard.mysql.MySqlCapabilities.CLIENT_SECURE_CONNECTION;
import static io.connguard.mysql.MySqlCapabilities.CLIENT_SSL;

/**
 * The client's HandshakeResponse41 (or its 32-byte SSLRequest prefix): decoded for the identity, and
 * re-encoded for the real server with an empty auth response and a plugin name no account uses, so
 * that the server answers with an AuthSwitchRequest carrying its real scramble.
 *
 * @see <a href="https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_connection_phase_packets_protocol_handshake_response.html">HandshakeResponse41</a>
 * @see <a href="https://mariadb.com/kb/en/connection/#handshake-response-packet">MariaDB handshake response</a>
 * @param capabilities classic flags in the low 32 bits, MariaDB extended capabilities in the high 32
 * @param attributes   the connection attributes' key/value bytes as sent (without their total length)
 * @param sslRequest   the packet was an SSLRequest: the client wants TLS before the rest
 * @param authData     the auth response to the greeting's scramble, for {@code authPlugin}
 */
record MySqlHandshakeResponse(long capabilities, long maxPacketSize, int charset, String user, String database,
                              String authPlugin, byte[] attributes, String programName, boolean sslRequest,
                              byte[] authData) {

    /** The plugin named upstream: unknown to every server, so every account's plugin switches to itself. */
    static final String SWITCH_PLUGIN = "connguard_auth_switch";
    private static final int FIXED_PART = 32;

    static MySqlHandshakeResponse decode(ByteBuf buf, int index, int length) {
        int end = index + length;
        long capabilities = MySqlWire.readInt4(buf, index, end);
        if ((capabilities & CLIENT_PROTOCOL_41) == 0) {
            throw new MalformedPacketException("the pre-4.1 handshake (protocol 320) is not supported");
        }
        if (length < FIXED_PART) {
            throw new MalformedPacketException("truncated handshake response");
        }
        long maxPacket = MySqlWire.readInt4(buf, index + 4, end);
        int charset = MySqlWire.readInt1(buf, index + 8, end);
        if ((capabilities & CLIENT_MYSQL) == 0) {
            capabilities |= MySqlWire.readInt4(buf, index + 28, end) << 32;
        }
        if (length == FIXED_PART && (capabilities & CLIENT_SSL) != 0) {
            return new MySqlHandshakeResponse(capabilities, maxPacket, charset, "", "", "", new byte[0], "", true,
                    new byte[0]);
        }
        int i = index + FIXED_PART;
        int nul = MySqlWire.nulIndex(buf, i, end);
        String user = buf.toString(i, nul - i, StandardCharsets.UTF_8);
        i = nul + 1;
        int authStart;
        if ((capabilities & CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA) != 0) {
            long authLength = MySqlWire.readLenencInt(buf, i, end);
            i += MySqlWire.lenencSize(buf.getUnsignedByte(i));
            authStart = i;
            i += checkedLength(authLength, i, end);
        } else if ((capabilities & CLIENT_SECURE_CONNECTION) != 0) {
            int authLength = MySqlWire.readInt1(buf, i, end);
            authStart = i + 1;
            i += 1 + checkedLength(authLength, i + 1, end);
        } else {
            authStart = i;
            i = MySqlWire.nulIndex(buf, i, end) + 1;
        }
        byte[] authData = new byte[Math.max(0, i - authStart - ((capabilities & (CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
                | CLIENT_SECURE_CONNECTION)) == 0 ? 1 : 0))];
        buf.getBytes(authStart, authData);
        String database = "";
        if ((capabilities & CLIENT_CONNECT_WITH_DB) != 0 && i < end) {
            nul = MySqlWire.nulIndex(buf, i, end);
            database = buf.toString(i, nul - i, StandardCharsets.UTF_8);
            i = nul + 1;
        }
        String plugin = "";
        if ((capabilities & CLIENT_PLUGIN_AUTH) != 0 && i < end) {
            nul = buf.indexOf(i, end, (byte) 0);
            int pluginEnd = nul < 0 ? end : nul;
            plugin = buf.toString(i, pluginEnd - i, StandardCharsets.US_ASCII);
            i = pluginEnd + 1;
        }
        byte[] attributes = new byte[0];
        String programName = "";
        if ((capabilities & CLIENT_CONNECT_ATTRS) != 0 && i < end) {
            long attributesLength = MySqlWire.readLenencInt(buf, i, end);
            i += MySqlWire.lenencSize(buf.getUnsignedByte(i));
            int attributesEnd = i + checkedLength(attributesLength, i, end);
            attributes = new byte[attributesEnd - i];
            buf.getBytes(i, attributes);
            programName = attribute(buf, i, attributesEnd, "program_name");
        }
        return new MySqlHandshakeResponse(capabilities, maxPacket, charset, user, database, plugin, attributes,
                programName, false, authData);
    }

    /** The value of one connection attribute in the key/value pairs between {@code index} and {@code end}. */
    static String attribute(ByteBuf buf, int index, int end, String key) {
        int i = index;
        while (i < end) {
            long keyLength = MySqlWire.readLenencInt(buf, i, end);
            i += MySqlWire.lenencSize(buf.getUnsignedByte(i));
            int keyStart = i;
            i += checkedLength(keyLength, i, end);
            long valueLength = MySqlWire.readLenencInt(buf, i, end);
            i += MySqlWire.lenencSize(buf.getUnsignedByte(i));
            int valueStart = i;
            i += checkedLength(valueLength, i, end);
            if (buf.toString(keyStart, (int) keyLength, StandardCharsets.UTF_8).equals(key)) {
                return buf.toString(valueStart, (int) valueLength, StandardCharsets.UTF_8);
            }
        }
        return "";
    }

    static int checkedLength(long length, int index, int end) {
        if (length < 0 || length > end - index) {
            throw new MalformedPacketException("a length runs past the end of the packet");
        }
        return (int) length;
    }

    /** The SSLRequest the proxy sends the server before its TLS handshake. */
    static ByteBuf encodeSslRequest(ByteBufAllocator alloc, int sequenceId, long capabilities, long maxPacket,
                                    int charset) {
        ByteBuf out = alloc.buffer(MySqlWire.HEADER_SIZE + FIXED_PART);
        int start = MySqlWire.startPacket(out, sequenceId);
        writeFixedPart(out, capabilities | CLIENT_SSL, maxPacket, charset);
        MySqlWire.finishPacket(out, start);
        return out;
    }

    /** This response for the real server, with the negotiated {@code upstreamCapabilities} and no auth data. */
    ByteBuf encodeForUpstream(ByteBufAllocator alloc, int sequenceId, long upstreamCapabilities) {
        ByteBuf out = alloc.buffer(FIXED_PART + 64 + user.length() + database.length() + attributes.length);
        int start = MySqlWire.startPacket(out, sequenceId);
        writeFixedPart(out, upstreamCapabilities, maxPacketSize, charset);
        MySqlWire.writeNulTerminatedString(out, user);
        out.writeByte(0); // an empty auth response, in each of its three encodings
        if ((upstreamCapabilities & CLIENT_CONNECT_WITH_DB) != 0) {
            MySqlWire.writeNulTerminatedString(out, database);
        }
        MySqlWire.writeNulTerminatedString(out, SWITCH_PLUGIN);
        if ((upstreamCapabilities & CLIENT_CONNECT_ATTRS) != 0) {
            MySqlWire.writeLenencInt(out, attributes.length);
            out.writeBytes(attributes);
        }
        MySqlWire.finishPacket(out, start);
        return out;
    }

    private static void writeFixedPart(ByteBuf out, long capabilities, long maxPacket, int charset) {
        out.writeIntLE((int) capabilities).writeIntLE((int) maxPacket).writeByte(charset).writeZero(19);
        out.writeIntLE((capabilities & CLIENT_MYSQL) == 0 ? (int) (capabilities >>> 32) : 0);
    }
}
