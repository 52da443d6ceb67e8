package io.connguard.app.faults;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Arrays;

/**
 * A MySQL storm client: reads the greeting, answers with a HandshakeResponse41 (mysql_native_password,
 * the application as the {@code program_name} connection attribute), answers an authentication switch
 * with the new scramble, and ends at OK (ready) or ERR (refused, coded by its error number); COM_QUIT.
 */
final class MySqlStormDialect implements StormDialect {

    private final String database;
    private final String password;

    MySqlStormDialect(String database, String password) {
        this.database = database;
        this.password = password;
    }

    @Override
    public Conversation newConversation(String user, String application) {
        return new Conversation() {
            private final ByteArrayOutputStream pending = new ByteArrayOutputStream();
            private boolean greeted;

            @Override
            public byte[] onConnected() {
                return new byte[0];
            }

            @Override
            public Step onBytes(ByteBuffer in) {
                byte[] chunk = new byte[in.remaining()];
                in.get(chunk);
                pending.writeBytes(chunk);
                ByteBuffer packets = ByteBuffer.wrap(pending.toByteArray()).order(ByteOrder.LITTLE_ENDIAN);
                Step step = new NeedMore();
                while (step instanceof NeedMore && packets.remaining() >= 4) {
                    int start = packets.position();
                    int length = (packets.get() & 0xff) | (packets.get() & 0xff) << 8 | (packets.get() & 0xff) << 16;
                    int sequence = packets.get() & 0xff;
                    if (packets.remaining() < length) {
                        packets.position(start);
                        break;
                    }
                    byte[] payload = new byte[length];
                    packets.get(payload);
                    step = onPacket(sequence, payload);
                }
                byte[] rest = new byte[packets.remaining()];
                packets.get(rest);
                pending.reset();
                pending.writeBytes(rest);
                return step;
            }

            private Step onPacket(int sequence, byte[] payload) {
                int first = payload.length == 0 ? -1 : payload[0] & 0xff;
                if (first == 0xff) {
                    int code = (payload[1] & 0xff) | (payload[2] & 0xff) << 8;
                    int text = payload.length > 3 && payload[3] == '#' ? 9 : 3;
                    return new Refused(Integer.toString(code),
                            new String(payload, text, payload.length - text, StandardCharsets.UTF_8));
                }
                if (!greeted) {
                    greeted = true;
                    byte[] response = MySqlClientPackets.handshakeResponse(user, database,
                            nativeScramble(scrambleOf(payload)), application);
                    return new Send(MySqlClientPackets.packet(sequence + 1, response));
                }
                if (first == 0x00) {
                    return new Ready();
                }
                if (first == 0xfe) {
                    int nameEnd = indexOf(payload, 1);
                    byte[] data = Arrays.copyOfRange(payload, nameEnd + 1, payload.length);
                    return new Send(MySqlClientPackets.packet(sequence + 1, nativeScramble(trimNul(data))));
                }
                return new Refused("unexpected", "packet 0x" + Integer.toHexString(first));
            }

            @Override
            public byte[] goodbye() {
                return MySqlClientPackets.packet(0, new byte[] {0x01});
            }
        };
    }

    /** The 20-byte scramble of a greeting: 8 bytes, then the rest up to its trailing NUL. */
    private static byte[] scrambleOf(byte[] greeting) {
        int i = indexOf(greeting, 1) + 1 + 4; // server version, thread id
        byte[] part1 = Arrays.copyOfRange(greeting, i, i + 8);
        i += 8 + 1 + 2 + 1 + 2 + 2; // filler, capabilities, charset, status, capabilities (upper)
        int length = greeting[i] & 0xff;
        i += 1 + 10;
        int part2Length = Math.max(13, length - 8) - 1; // without its NUL
        byte[] scramble = Arrays.copyOf(part1, 8 + part2Length);
        System.arraycopy(greeting, i, scramble, 8, part2Length);
        return scramble;
    }

    /** SHA1(password) XOR SHA1(scramble + SHA1(SHA1(password))); empty for an empty password. */
    private byte[] nativeScramble(byte[] scramble) {
        if (password.isEmpty()) {
            return new byte[0];
        }
        try {
            MessageDigest sha1 = MessageDigest.getInstance("SHA-1");
            byte[] stage1 = sha1.digest(password.getBytes(StandardCharsets.UTF_8));
            byte[] stage2 = sha1.digest(stage1);
            sha1.update(scramble);
            byte[] mix = sha1.digest(stage2);
            for (int i = 0; i < mix.length; i++) {
                mix[i] ^= stage1[i];
            }
            return mix;
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    private static byte[] trimNul(byte[] data) {
        return data.length > 0 && data[data.length - 1] == 0 ? Arrays.copyOf(data, data.length - 1) : data;
    }

    private static int indexOf(byte[] bytes, int from) {
        for (int i = from; i < bytes.length; i++) {
            if (bytes[i] == 0) {
                return i;
            }
        }
        return bytes.length;
    }
}
