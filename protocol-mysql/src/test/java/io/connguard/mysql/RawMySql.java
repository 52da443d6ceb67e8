package io.connguard.mysql;

import java.io.DataInputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * A blocking MySQL client for integration tests that need to see packets as they are: it logs in with
 * mysql_native_password (following an auth switch to it), sends commands and returns the response's
 * payloads. Not a driver: only what the tests use.
 */
final class RawMySql implements AutoCloseable {

    static final long CAPABILITIES = MySqlCapabilities.CLIENT_MYSQL | MySqlCapabilities.CLIENT_PROTOCOL_41
            | MySqlCapabilities.CLIENT_SECURE_CONNECTION | MySqlCapabilities.CLIENT_PLUGIN_AUTH
            | MySqlCapabilities.CLIENT_TRANSACTIONS | MySqlCapabilities.CLIENT_MULTI_RESULTS
            | MySqlCapabilities.CLIENT_MULTI_STATEMENTS | MySqlCapabilities.CLIENT_SESSION_TRACK
            | MySqlCapabilities.CLIENT_CONNECT_WITH_DB;

    private final Socket socket;
    private final DataInputStream in;
    private final OutputStream out;

    RawMySql(String host, int port, String user, String password, String database) throws IOException {
        this(host, port, user, password, database, 45);
    }

    /** Logs in with {@code collation} (45 utf8mb4_general_ci, 8 latin1_swedish_ci ...). */
    RawMySql(String host, int port, String user, String password, String database, int collation) throws IOException {
        socket = new Socket(host, port);
        socket.setSoTimeout(10_000);
        in = new DataInputStream(socket.getInputStream());
        out = socket.getOutputStream();
        byte[] greeting = read();
        int i = 1;
        while (greeting[i] != 0) {
            i++;
        }
        i += 1 + 4;                                             // NUL, thread id
        byte[] scramble = Arrays.copyOfRange(greeting, i, i + 8);
        i += 8 + 1 + 2 + 1 + 2 + 2 + 1 + 10;                     // filler, caps, charset, status, caps, length, reserved
        int end = i;
        while (greeting[end] != 0) {
            end++;
        }
        scramble = Packets.concat(scramble, Arrays.copyOfRange(greeting, i, end));
        byte[] auth = nativePassword(password, scramble);
        byte[] response = Packets.payload(
                (int) (CAPABILITIES & 0xFF), (int) (CAPABILITIES >>> 8 & 0xFF), (int) (CAPABILITIES >>> 16 & 0xFF),
                (int) (CAPABILITIES >>> 24 & 0xFF), 0, 0, 0, 1, collation, new byte[23], user, 0, auth.length, auth,
                database, 0, "mysql_native_password", 0);
        write(1, response);
        byte[] answer = read();
        if ((answer[0] & 0xFF) == 0xFE) {                       // auth switch: plugin name, scramble
            int nul = 1;
            while (answer[nul] != 0) {
                nul++;
            }
            byte[] salt = Arrays.copyOfRange(answer, nul + 1, answer.length - 1);
            write(3, nativePassword(password, salt));
            answer = read();
        }
        if (answer[0] != 0) {
            throw new IOException("login failed: " + new String(answer, StandardCharsets.UTF_8));
        }
    }

    /** COM_QUERY: the payloads of its response, up to the OK / ERR / EOF that ends it. */
    List<byte[]> query(String sql) throws IOException {
        return command(Packets.payload(MySqlCommand.COM_QUERY, sql));
    }

    /** Any command that ends in OK / ERR, or a text result set (no CLIENT_DEPRECATE_EOF: two EOFs). */
    List<byte[]> command(byte[] payload) throws IOException {
        write(0, payload);
        List<byte[]> response = new ArrayList<>();
        int eofs = 0;
        while (true) {
            byte[] packet = read();
            response.add(packet);
            int header = packet[0] & 0xFF;
            if (response.size() == 1 && (header == 0x00 || header == 0xFF)) {
                return response;
            }
            if (header == 0xFE && packet.length < 9 && ++eofs == 2) {
                return response;
            }
            if (header == 0xFF) {
                return response;
            }
        }
    }

    /** The first row of a text result set, as strings (null for NULL). */
    List<String> row(String sql) throws IOException {
        List<byte[]> response = query(sql);
        int columns = response.get(0)[0] & 0xFF;
        byte[] row = response.get(columns + 2);
        List<String> values = new ArrayList<>();
        int i = 0;
        for (int c = 0; c < columns; c++) {
            int length = row[i] & 0xFF;
            if (length == 0xFB) {
                values.add(null);
                i++;
            } else {
                values.add(new String(row, i + 1, length, StandardCharsets.UTF_8));
                i += 1 + length;
            }
        }
        return values;
    }

    byte[] read() throws IOException {
        byte[] header = new byte[4];
        in.readFully(header);
        int length = (header[0] & 0xFF) | (header[1] & 0xFF) << 8 | (header[2] & 0xFF) << 16;
        byte[] payload = new byte[length];
        in.readFully(payload);
        return payload;
    }

    void write(int sequenceId, byte[] payload) throws IOException {
        out.write(Packets.packet(sequenceId, payload));
        out.flush();
    }

    @Override
    public void close() throws IOException {
        try {
            write(0, new byte[] {MySqlCommand.COM_QUIT});
        } finally {
            socket.close();
        }
    }

    static byte[] nativePassword(String password, byte[] scramble) {
        if (password.isEmpty()) {
            return new byte[0];
        }
        try {
            MessageDigest sha1 = MessageDigest.getInstance("SHA-1");
            byte[] stage1 = sha1.digest(password.getBytes(StandardCharsets.UTF_8));
            byte[] stage2 = sha1.digest(stage1);
            sha1.update(Arrays.copyOf(scramble, 20));
            byte[] mix = sha1.digest(stage2);
            for (int i = 0; i < mix.length; i++) {
                mix[i] ^= stage1[i];
            }
            return mix;
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
