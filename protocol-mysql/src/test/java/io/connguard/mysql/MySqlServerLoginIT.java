package io.connguard.mysql;

import io.connguard.core.testing.Database;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.Unpooled;
import io.netty.buffer.UnpooledByteBufAllocator;
import org.junit.jupiter.api.Test;

import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManager;
import javax.net.ssl.X509TrustManager;
import java.io.DataInputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.List;

import static io.connguard.mysql.MySqlServerLogin.Step;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * connguard's own login against the local MariaDB: native and ed25519 accounts, with and without TLS, a
 * wrong password getting the server's 1045, then COM_RESET_CONNECTION and COM_CHANGE_USER on the logged-in
 * connection.
 */
class MySqlServerLoginIT {

    private static final long WANTED = MySqlCapabilities.CLIENT_TRANSACTIONS | MySqlCapabilities.CLIENT_MULTI_RESULTS
            | MySqlCapabilities.CLIENT_DEPRECATE_EOF;
    /** utf8mb4_general_ci */
    private static final int COLLATION = 45;

    private final UnpooledByteBufAllocator alloc = new UnpooledByteBufAllocator(false);

    @Test
    void nativeAccountLogsInAndAWrongPasswordGetsTheServers1045() throws Exception {
        Database db = MySqlIt.database();
        try (Wire wire = new Wire(db)) {
            MySqlServerLogin login = login(MySqlIt.NATIVE_USER, MySqlIt.NATIVE_PASSWORD, db.database());
            assertThat(wire.run(login, false)).isEqualTo(Step.DONE);
            assertThat(login.capabilities() & MySqlCapabilities.CLIENT_SESSION_TRACK).isNotZero();
            assertThat(wire.query("SELECT CURRENT_USER(), DATABASE()")).isEqualTo(MySqlIt.NATIVE_USER + "@%|" + db.database());
            assertThat(wire.query("SELECT connection_id()")).isEqualTo(Long.toString(login.threadId()));
        }
        try (Wire wire = new Wire(db)) {
            MySqlServerLogin login = login(MySqlIt.NATIVE_USER, "not the password", db.database());
            assertThat(wire.run(login, false)).isEqualTo(Step.FAILED);
            assertThat(login.errorCode()).isEqualTo(1045);
            assertThat(login.sqlState()).isEqualTo("28000");
            assertThat(login.errorMessage()).contains("Access denied");
        }
    }

    @Test
    void overTlsWithConnectionAttributes() throws Exception {
        Database db = MySqlIt.database();
        try (Wire wire = new Wire(db)) {
            byte[] attributes = Packets.payload(12, "program_name", 9, "connguard");
            MySqlServerLogin login = new MySqlServerLogin(new MySqlServerLogin.Credentials(MySqlIt.NATIVE_USER,
                    MySqlIt.NATIVE_PASSWORD.getBytes(StandardCharsets.UTF_8), db.database(), COLLATION, attributes),
                    WANTED, true, null, alloc);
            assertThat(wire.run(login, true)).isEqualTo(Step.DONE);
            assertThat(wire.query("SELECT VARIABLE_VALUE <> '' FROM information_schema.SESSION_STATUS "
                    + "WHERE VARIABLE_NAME = 'SSL_CIPHER'")).isEqualTo("1");
            assertThat(wire.query("SELECT CURRENT_USER()")).isEqualTo(MySqlIt.NATIVE_USER + "@%");
        }
    }

    @Test
    void ed25519AccountLogsInAndAWrongPasswordGets1045() throws Exception {
        assertThat(MySqlIt.hasEd25519()).as("the ed25519 plugin and account (.ci/setup-mariadb.sh)").isTrue();
        Database db = MySqlIt.database();
        try (Wire wire = new Wire(db)) {
            MySqlServerLogin login = login(MySqlIt.ED25519_USER, MySqlIt.ED25519_PASSWORD, db.database());
            assertThat(wire.run(login, false)).as(login.errorMessage()).isEqualTo(Step.DONE);
            assertThat(login.plugin()).isEqualTo(MySqlAuthPlugins.ED25519);
            assertThat(wire.query("SELECT CURRENT_USER()")).isEqualTo(MySqlIt.ED25519_USER + "@%");
        }
        try (Wire wire = new Wire(db)) {
            MySqlServerLogin login = login(MySqlIt.ED25519_USER, "wrong", db.database());
            assertThat(wire.run(login, false)).isEqualTo(Step.FAILED);
            assertThat(login.errorCode()).isEqualTo(1045);
        }
    }

    @Test
    void resetConnectionAndChangeUserReuseAConnection() throws Exception {
        Database db = MySqlIt.database();
        try (Wire wire = new Wire(db)) {
            MySqlServerLogin login = login(MySqlIt.NATIVE_USER, MySqlIt.NATIVE_PASSWORD, db.database());
            assertThat(wire.run(login, false)).isEqualTo(Step.DONE);
            wire.query("SET @x = 42, time_zone = '+03:00'");
            ByteBuf reset = MySqlServerLogin.resetConnection(alloc);
            assertThat(wire.command(reset).get(0)[0]).as("COM_RESET_CONNECTION answers OK").isZero();
            assertThat(wire.query("SELECT CONCAT(IFNULL(@x, 'null'), ' ', @@time_zone = @@global.time_zone)")).isEqualTo("null 1");

            ByteBuf change = login.changeUser(credentials(MySqlIt.OTHER_USER, MySqlIt.OTHER_PASSWORD, db.database()));
            wire.write(change);
            assertThat(wire.run(login, false)).as(login.errorMessage()).isEqualTo(Step.DONE);
            assertThat(wire.query("SELECT CURRENT_USER()")).isEqualTo(MySqlIt.OTHER_USER + "@%");

            wire.write(login.changeUser(credentials(MySqlIt.NATIVE_USER, "wrong", db.database())));
            assertThat(wire.run(login, false)).isEqualTo(Step.FAILED);
            assertThat(login.errorCode()).isEqualTo(1045);
        }
        if (MySqlIt.hasEd25519()) {
            try (Wire wire = new Wire(db)) {
                MySqlServerLogin login = login(MySqlIt.NATIVE_USER, MySqlIt.NATIVE_PASSWORD, db.database());
                assertThat(wire.run(login, false)).isEqualTo(Step.DONE);
                wire.write(login.changeUser(credentials(MySqlIt.ED25519_USER, MySqlIt.ED25519_PASSWORD, db.database())));
                assertThat(wire.run(login, false)).as(login.errorMessage()).isEqualTo(Step.DONE);
                assertThat(wire.query("SELECT CURRENT_USER()")).isEqualTo(MySqlIt.ED25519_USER + "@%");
            }
        }
    }

    private MySqlServerLogin login(String user, String password, String database) {
        return new MySqlServerLogin(credentials(user, password, database), WANTED, false, null, alloc);
    }

    private static MySqlServerLogin.Credentials credentials(String user, String password, String database) {
        return new MySqlServerLogin.Credentials(user, password.getBytes(StandardCharsets.UTF_8), database, COLLATION,
                new byte[0]);
    }

    /** A blocking connection that carries the login's packets and, after it, queries. */
    private static final class Wire implements AutoCloseable {
        private Socket socket;
        private DataInputStream in;
        private OutputStream out;
        private final String host;

        Wire(Database db) throws IOException {
            host = db.host();
            socket = new Socket(db.host(), db.port());
            socket.setSoTimeout(10_000);
            streams();
        }

        private void streams() throws IOException {
            in = new DataInputStream(socket.getInputStream());
            out = socket.getOutputStream();
        }

        Step run(MySqlServerLogin login, boolean expectTls) throws IOException, GeneralSecurityException {
            while (true) {
                byte[] header = new byte[4];
                in.readFully(header);
                int length = (header[0] & 0xFF) | (header[1] & 0xFF) << 8 | (header[2] & 0xFF) << 16;
                byte[] payload = new byte[length];
                in.readFully(payload);
                ByteBuf buf = Unpooled.wrappedBuffer(payload);
                Step step = login.onPacket(buf, 0, length, header[3] & 0xFF);
                buf.release();
                if (step == Step.START_TLS) {
                    assertThat(expectTls).isTrue();
                    write(login.takeOutput());
                    SSLContext context = SSLContext.getInstance("TLS");
                    context.init(null, new TrustManager[] {new TrustAll()}, null);
                    SSLSocket tls = (SSLSocket) context.getSocketFactory().createSocket(socket, host, socket.getPort(), true);
                    tls.startHandshake();
                    socket = tls;
                    streams();
                    step = login.tlsEstablished();
                }
                if (step == Step.SEND) {
                    write(login.takeOutput());
                } else if (step == Step.DONE || step == Step.FAILED) {
                    return step;
                }
            }
        }

        void write(ByteBuf packet) throws IOException {
            out.write(ByteBufUtil.getBytes(packet));
            out.flush();
            packet.release();
        }

        List<byte[]> command(ByteBuf packet) throws IOException {
            write(packet);
            List<byte[]> response = new ArrayList<>();
            while (true) {
                byte[] header = new byte[4];
                in.readFully(header);
                byte[] payload = new byte[(header[0] & 0xFF) | (header[1] & 0xFF) << 8 | (header[2] & 0xFF) << 16];
                in.readFully(payload);
                response.add(payload);
                int first = payload[0] & 0xFF;
                boolean end = response.size() == 1 ? first == 0x00 || first == 0xFF
                        : first == 0xFF || first == 0xFE && payload.length < 0xFFFFFF; // CLIENT_DEPRECATE_EOF: OK 0xFE
                if (end) {
                    return response;
                }
            }
        }

        /** One row of text values joined by '|'. */
        String query(String sql) throws IOException {
            ByteBuf packet = Unpooled.wrappedBuffer(Packets.packet(0, Packets.payload(0x03, sql)));
            List<byte[]> response = command(packet);
            byte[] first = response.get(0);
            assertThat(first[0] & 0xFF).as(new String(first, StandardCharsets.UTF_8)).isNotEqualTo(0xFF);
            if (first[0] == 0) {
                return "";
            }
            int columns = first[0] & 0xFF;
            byte[] row = response.get(1 + columns);
            List<String> values = new ArrayList<>();
            int i = 0;
            for (int c = 0; c < columns; c++) {
                int length = row[i] & 0xFF;
                values.add(length == 0xFB ? "NULL" : new String(row, i + 1, length, StandardCharsets.UTF_8));
                i += length == 0xFB ? 1 : 1 + length;
            }
            return String.join("|", values);
        }

        @Override
        public void close() throws IOException {
            socket.close();
        }
    }

    private static final class TrustAll implements X509TrustManager {
        @Override
        public void checkClientTrusted(X509Certificate[] chain, String authType) {
        }

        @Override
        public void checkServerTrusted(X509Certificate[] chain, String authType) {
        }

        @Override
        public X509Certificate[] getAcceptedIssuers() {
            return new X509Certificate[0];
        }
    }
}
