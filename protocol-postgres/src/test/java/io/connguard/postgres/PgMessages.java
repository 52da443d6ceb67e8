package io.connguard.postgres;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/** Hand-built PostgreSQL messages for tests, written from the message-format chapter of the spec. */
final class PgMessages {

    static final int PROTOCOL_3_0 = 3 << 16;
    static final int PROTOCOL_3_2 = 3 << 16 | 2;

    private PgMessages() {
    }

    static byte[] concat(byte[]... parts) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (byte[] part : parts) {
            out.writeBytes(part);
        }
        return out.toByteArray();
    }

    static byte[] cstring(String s) {
        return concat(s.getBytes(StandardCharsets.UTF_8), new byte[] {0});
    }

    static byte[] int32(int value) {
        return ByteBuffer.allocate(4).putInt(value).array();
    }

    static byte[] int16(int value) {
        return ByteBuffer.allocate(2).putShort((short) value).array();
    }

    /** A typed message: type byte, Int32 length (itself included), body. */
    static byte[] message(char type, byte[]... body) {
        byte[] content = concat(body);
        return concat(new byte[] {(byte) type}, int32(content.length + 4), content);
    }

    /** A StartupMessage with the given name/value pairs. */
    static byte[] startup(int version, String... pairs) {
        ByteArrayOutputStream body = new ByteArrayOutputStream();
        body.writeBytes(int32(version));
        for (String s : pairs) {
            body.writeBytes(cstring(s));
        }
        body.write(0);
        return concat(int32(body.size() + 4), body.toByteArray());
    }

    static byte[] startup(String... pairs) {
        return startup(PROTOCOL_3_0, pairs);
    }

    static byte[] sslRequest() {
        return concat(int32(8), int32(80877103));
    }

    static byte[] gssEncRequest() {
        return concat(int32(8), int32(80877104));
    }

    static byte[] cancelRequest(int pid, byte[] key) {
        return concat(int32(12 + key.length), int32(80877102), int32(pid), key);
    }

    static byte[] key(int length, int seed) {
        byte[] key = new byte[length];
        Arrays.fill(key, (byte) seed);
        key[0] = (byte) length;
        return key;
    }

    // ---------------------------------------------------------------- frontend

    static byte[] query(String sql) {
        return message('Q', cstring(sql));
    }

    static byte[] parse(String name, String sql) {
        return message('P', cstring(name), cstring(sql), int16(0));
    }

    static byte[] bind() {
        return message('B', cstring(""), cstring(""), int16(0), int16(0), int16(0));
    }

    static byte[] execute() {
        return message('E', cstring(""), int32(0));
    }

    static byte[] sync() {
        return message('S');
    }

    static byte[] flush() {
        return message('H');
    }

    static byte[] terminate() {
        return message('X');
    }

    static byte[] copyData(String data) {
        return message('d', data.getBytes(StandardCharsets.UTF_8));
    }

    static byte[] copyDone() {
        return message('c');
    }

    static byte[] extended(String sql) {
        return concat(parse("", sql), bind(), execute(), sync());
    }

    // ---------------------------------------------------------------- backend

    static byte[] authenticationOk() {
        return message('R', int32(0));
    }

    static byte[] backendKeyData(int pid, byte[] key) {
        return message('K', int32(pid), key);
    }

    static byte[] parameterStatus(String name, String value) {
        return message('S', cstring(name), cstring(value));
    }

    static byte[] readyForQuery(char status) {
        return message('Z', new byte[] {(byte) status});
    }

    static byte[] commandComplete(String tag) {
        return message('C', cstring(tag));
    }

    static byte[] notice(String text) {
        return message('N', cstring("SNOTICE"), cstring("C00000"), cstring("M" + text), new byte[] {0});
    }

    static byte[] notification(int pid, String channel, String payload) {
        return message('A', int32(pid), cstring(channel), cstring(payload));
    }

    static byte[] copyInResponse() {
        return message('G', new byte[] {0}, int16(0));
    }

    static byte[] copyOutResponse() {
        return message('H', new byte[] {0}, int16(0));
    }

    static byte[] negotiateProtocolVersion(int newestMinor, String... unsupported) {
        byte[][] names = new byte[unsupported.length][];
        for (int i = 0; i < unsupported.length; i++) {
            names[i] = cstring(unsupported[i]);
        }
        return message('v', int32(newestMinor), int32(unsupported.length), concat(names));
    }

    static byte[] errorResponse(String severity, String code, String text) {
        return message('E', cstring("S" + severity), cstring("V" + severity), cstring("C" + code),
                cstring("M" + text), new byte[] {0});
    }

    /** What a server sends after a successful trust login: AuthenticationOk, a parameter, the key, ready. */
    static byte[] loginOk(int pid, byte[] key) {
        return concat(authenticationOk(), parameterStatus("server_version", "15.20"), backendKeyData(pid, key),
                readyForQuery('I'));
    }
}
