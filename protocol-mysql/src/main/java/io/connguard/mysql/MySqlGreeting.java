package io.connguard.mysql;

import io.connguard.core.auth.Randomness;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.util.concurrent.FastThreadLocal;

import java.nio.charset.StandardCharsets;

import static io.connguard.mysql.MySqlCapabilities.CLIENT_MYSQL;
import static io.connguard.mysql.MySqlCapabilities.CLIENT_PLUGIN_AUTH;
import static io.connguard.mysql.MySqlCapabilities.CLIENT_SECURE_CONNECTION;
import static io.connguard.mysql.MySqlWire.readInt1;
import static io.connguard.mysql.MySqlWire.readInt2;
import static io.connguard.mysql.MySqlWire.readInt4;

/**
 * The server's first packet, HandshakeV10: decoded from a real server, and re-issued by the proxy to
 * its client with the proxy's own connection id and scramble.
 *
 * @see <a href="https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_connection_phase_packets_protocol_handshake_v10.html">HandshakeV10</a>
 * @see <a href="https://mariadb.com/kb/en/connection/#initial-handshake-packet">MariaDB initial handshake</a>
 * @param capabilities classic flags in the low 32 bits, MariaDB extended capabilities in the high 32
 * @param scramble     the auth plugin data (normally 20 bytes), without the trailing NUL
 */
record MySqlGreeting(String serverVersion, long connectionId, long capabilities, int charset, int status,
                     String authPluginName, byte[] scramble) {

    static final int PROTOCOL_VERSION = 10;
    private static final int SCRAMBLE_LENGTH = 20;

    /** Decodes a HandshakeV10 payload of {@code length} bytes starting at {@code index}. */
    static MySqlGreeting decode(ByteBuf buf, int index, int length) {
        int end = index + length;
        if (readInt1(buf, index, end) != PROTOCOL_VERSION) {
            throw new MalformedPacketException("not a HandshakeV10 greeting");
        }
        int i = index + 1;
        int nul = MySqlWire.nulIndex(buf, i, end);
        String version = buf.toString(i, nul - i, java.nio.charset.StandardCharsets.UTF_8);
        i = nul + 1;
        long connectionId = readInt4(buf, i, end);
        i += 4;
        if (i + 9 > end) {
            throw new MalformedPacketException("truncated greeting");
        }
        byte[] part1 = new byte[8];
        buf.getBytes(i, part1);
        i += 9;
        long capabilities = readInt2(buf, i, end);
        i += 2;
        if (i >= end) {
            return new MySqlGreeting(version, connectionId, capabilities, 0, 0, "", part1);
        }
        int charset = readInt1(buf, i, end);
        int status = readInt2(buf, i + 1, end);
        capabilities |= (long) readInt2(buf, i + 3, end) << 16;
        int authDataLength = readInt1(buf, i + 5, end);
        i += 6 + 6;
        long extended = readInt4(buf, i, end);
        if ((capabilities & CLIENT_MYSQL) == 0) {
            capabilities |= extended << 32;
        }
        i += 4;
        byte[] scramble = part1;
        if ((capabilities & CLIENT_SECURE_CONNECTION) != 0) {
            int part2Length = Math.max(13, authDataLength - 8);
            if (i + part2Length > end) {
                throw new MalformedPacketException("truncated scramble");
            }
            int significant = buf.getByte(i + part2Length - 1) == 0 ? part2Length - 1 : part2Length;
            scramble = new byte[8 + significant];
            System.arraycopy(part1, 0, scramble, 0, 8);
            buf.getBytes(i, scramble, 8, significant);
            i += part2Length;
        }
        String plugin = "";
        if ((capabilities & CLIENT_PLUGIN_AUTH) != 0 && i < end) {
            int pluginEnd = buf.indexOf(i, end, (byte) 0);
            pluginEnd = pluginEnd < 0 ? end : pluginEnd; // MySQL 5.5.7-5.5.9 omitted the NUL
            plugin = buf.toString(i, pluginEnd - i, java.nio.charset.StandardCharsets.US_ASCII);
        }
        return new MySqlGreeting(version, connectionId, capabilities, charset, status, plugin, scramble);
    }

    /** A MariaDB server greets with CLIENT_MYSQL clear and may carry extended capabilities. */
    boolean isMariaDb() {
        return (capabilities & CLIENT_MYSQL) == 0;
    }

    /**
     * Whether this server's COM_RESET_CONNECTION sets the character set variables back to the login's
     * collation, so a pooled connection's reset need not set them again: MariaDB 10.5 and later do (MDEV-18281;
     * checked on 10.11). MySQL sets them to the global values, as for other session variables.
     */
    boolean resetRestoresLoginCharset() {
        if (!isMariaDb()) {
            return false;
        }
        String version = serverVersion.startsWith("5.5.5-") ? serverVersion.substring(6) : serverVersion;
        int dot = version.indexOf('.');
        int end = dot + 1;
        while (end < version.length() && Character.isDigit(version.charAt(end))) {
            end++;
        }
        try {
            int major = Integer.parseInt(version.substring(0, dot));
            int minor = Integer.parseInt(version.substring(dot + 1, end));
            return major > 10 || (major == 10 && minor >= 5);
        } catch (NumberFormatException | StringIndexOutOfBoundsException e) {
            return false; // a version connguard cannot read: set them
        }
    }

    /**
     * The greeting the proxy sends its client: the server's, with its own id and scramble, minus what it
     * hides; CLIENT_SSL is offered when connguard terminates TLS from clients itself.
     */
    MySqlGreeting forClient(long proxyConnectionId, boolean offerTls) {
        return new MySqlGreeting(serverVersion, proxyConnectionId, clientCapabilities(offerTls),
                charset, status, authPluginName, freshScramble());
    }

    /**
     * A new 20-byte challenge, printable and never NUL (the greeting's part 2 is NUL-terminated), from
     * connguard's cryptographic generator: a password hash answers it, so it must not be predictable.
     */
    static byte[] freshScramble() {
        byte[] fresh = Randomness.bytes(SCRAMBLE_LENGTH);
        for (int i = 0; i < fresh.length; i++) {
            fresh[i] = (byte) (0x21 + (fresh[i] & 0xFF) % (0x7F - 0x21));
        }
        return fresh;
    }

    /** The server's own greeting as the proxy relays it: its thread id and scramble, minus what it hides. */
    MySqlGreeting relayed(boolean offerTls) {
        return new MySqlGreeting(serverVersion, connectionId, clientCapabilities(offerTls), charset, status,
                authPluginName, scramble);
    }

    private long clientCapabilities(boolean offerTls) {
        return capabilities & ~MySqlCapabilities.HIDDEN_FROM_CLIENT | (offerTls ? MySqlCapabilities.CLIENT_SSL : 0);
    }

    ByteBuf encode(ByteBufAllocator alloc, int sequenceId) {
        ByteBuf out = alloc.buffer(128);
        int start = MySqlWire.startPacket(out, sequenceId);
        out.writeByte(PROTOCOL_VERSION);
        out.writeBytes(Encoded.of(serverVersion)).writeByte(0);
        out.writeIntLE((int) connectionId);
        out.writeBytes(scramble, 0, 8).writeByte(0);
        out.writeShortLE((int) capabilities);
        out.writeByte(charset).writeShortLE(status).writeShortLE((int) (capabilities >>> 16));
        boolean secure = (capabilities & CLIENT_SECURE_CONNECTION) != 0;
        out.writeByte((capabilities & CLIENT_PLUGIN_AUTH) != 0 ? scramble.length + 1 : 0);
        out.writeZero(6);
        out.writeIntLE(isMariaDb() ? (int) (capabilities >>> 32) : 0);
        if (secure) {
            out.writeBytes(scramble, 8, scramble.length - 8).writeZero(Math.max(13, scramble.length - 7) - (scramble.length - 8));
        }
        if ((capabilities & CLIENT_PLUGIN_AUTH) != 0) {
            out.writeBytes(Encoded.of(authPluginName)).writeByte(0);
        }
        MySqlWire.finishPacket(out, start);
        return out;
    }

    /**
     * The UTF-8 bytes of the greeting's two strings (server version, auth plugin), which every greeting of a
     * listener repeats (the clients' copies share the server's String instances): encoded once per thread and
     * string, not at every connect. Two entries, looked up by identity; a miss replaces the older one.
     */
    private static final class Encoded {
        private static final FastThreadLocal<Encoded> OF_THREAD = new FastThreadLocal<>() {
            @Override
            protected Encoded initialValue() {
                return new Encoded();
            }
        };

        private final String[] strings = new String[2];
        private final byte[][] bytes = new byte[2][];
        private int older;

        static byte[] of(String value) {
            Encoded e = OF_THREAD.get();
            for (int i = 0; i < 2; i++) {
                if (e.strings[i] == value) {
                    return e.bytes[i];
                }
            }
            byte[] encoded = value.getBytes(StandardCharsets.UTF_8);
            e.strings[e.older] = value;
            e.bytes[e.older] = encoded;
            e.older ^= 1;
            return encoded;
        }
    }
}
