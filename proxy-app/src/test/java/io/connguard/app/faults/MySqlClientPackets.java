package io.connguard.app.faults;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;

/** The client's side of a MySQL handshake as raw bytes, for the scenarios that speak the protocol themselves. */
final class MySqlClientPackets {

    /** LONG_PASSWORD | CONNECT_WITH_DB | PROTOCOL_41 | SECURE_CONNECTION | PLUGIN_AUTH. */
    private static final int CAPABILITIES = 0x1 | 0x8 | 0x200 | 0x8000 | 0x80000;
    private static final int CONNECT_ATTRS = 0x100000;

    private MySqlClientPackets() {
    }

    /** A packet: 3-byte little-endian length, sequence number, payload. */
    static byte[] packet(int sequence, byte[] payload) {
        byte[] packet = new byte[4 + payload.length];
        packet[0] = (byte) payload.length;
        packet[1] = (byte) (payload.length >> 8);
        packet[2] = (byte) (payload.length >> 16);
        packet[3] = (byte) sequence;
        System.arraycopy(payload, 0, packet, 4, payload.length);
        return packet;
    }

    /**
     * A HandshakeResponse41 payload for mysql_native_password with {@code auth} as the scramble answer
     * (may be empty), and {@code programName} as the {@code program_name} connection attribute when not null.
     */
    static byte[] handshakeResponse(String user, String database, byte[] auth, String programName) {
        ByteArrayOutputStream body = new ByteArrayOutputStream();
        writeInt4(body, programName == null ? CAPABILITIES : CAPABILITIES | CONNECT_ATTRS);
        writeInt4(body, 1 << 24);
        body.write(45); // utf8mb4_general_ci
        body.writeBytes(new byte[23]);
        body.writeBytes(cString(user));
        body.write(auth.length);
        body.writeBytes(auth);
        body.writeBytes(cString(database));
        body.writeBytes(cString("mysql_native_password"));
        if (programName != null) {
            byte[] key = "program_name".getBytes(StandardCharsets.UTF_8);
            byte[] value = programName.getBytes(StandardCharsets.UTF_8);
            body.write(2 + key.length + value.length);
            body.write(key.length);
            body.writeBytes(key);
            body.write(value.length);
            body.writeBytes(value);
        }
        return body.toByteArray();
    }

    private static void writeInt4(ByteArrayOutputStream out, int value) {
        for (int shift = 0; shift < 32; shift += 8) {
            out.write(value >> shift);
        }
    }

    private static byte[] cString(String s) {
        byte[] bytes = s.getBytes(StandardCharsets.UTF_8);
        byte[] out = new byte[bytes.length + 1];
        System.arraycopy(bytes, 0, out, 0, bytes.length);
        return out;
    }
}
