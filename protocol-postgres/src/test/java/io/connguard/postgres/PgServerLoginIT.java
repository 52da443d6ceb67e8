package io.connguard.postgres;

import io.connguard.core.testing.Database;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.Unpooled;
import io.netty.buffer.UnpooledByteBufAllocator;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.sql.Connection;
import java.sql.SQLException;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;

import static io.connguard.postgres.PgIt.longValue;
import static io.connguard.postgres.PgIt.requireRole;
import static io.connguard.postgres.PgIt.unique;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * {@link PgServerLogin} against the real server: trust, SCRAM-SHA-256 (server signature verified) and md5
 * logins reach ReadyForQuery with the backend key of a live backend; a wrong password gets the server's
 * own 28P01; a login without a password pauses when the server asks for one. The roles and their
 * pg_hba.conf lines come from .ci/setup-postgres.sh.
 */
class PgServerLoginIT {

    @BeforeAll
    static void roles() throws SQLException {
        requireRole("cg_scram");
        requireRole("cg_md5");
    }

    /** Runs a login over a blocking socket; {@code late} answers a pause for a password (null: stop there). */
    private static PgServerLogin login(String user, String password, String late, String application)
            throws IOException, SQLException {
        Database db = PgIt.db();
        Map<String, String> params = new LinkedHashMap<>();
        params.put("user", user);
        params.put("database", db.database());
        params.put("application_name", application);
        PgServerLogin login = new PgServerLogin(UnpooledByteBufAllocator.DEFAULT, params,
                password == null ? null : password.toCharArray());
        try (Socket socket = new Socket(db.host(), db.port())) {
            socket.setSoTimeout(10_000);
            OutputStream out = socket.getOutputStream();
            InputStream in = socket.getInputStream();
            write(out, login.startupMessage());
            byte[] chunk = new byte[8192];
            PgServerLogin.Status status = PgServerLogin.Status.RUNNING;
            while (status == PgServerLogin.Status.RUNNING) {
                int n = in.read(chunk);
                if (n < 0) {
                    break;
                }
                status = login.feed(Unpooled.wrappedBuffer(Arrays.copyOf(chunk, n)), buf -> write(out, buf));
                if (status == PgServerLogin.Status.PASSWORD_NEEDED && late != null) {
                    status = login.password(late.toCharArray(), buf -> write(out, buf));
                }
            }
            if (status == PgServerLogin.Status.READY) {
                try (Connection direct = PgIt.direct()) {
                    assertThat(longValue(direct, "SELECT count(*) FROM pg_stat_activity WHERE pid = "
                            + login.processId() + " AND application_name = '" + application + "'"))
                            .as("the backend key names the live backend").isEqualTo(1);
                }
            }
        }
        return login;
    }

    private static void write(OutputStream out, ByteBuf buf) {
        try {
            out.write(ByteBufUtil.getBytes(buf));
            out.flush();
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        } finally {
            buf.release();
        }
    }

    @Test
    void trustLogsInWithoutAPassword() throws Exception {
        PgServerLogin login = login(PgIt.db().user(), null, null, unique("login"));
        try {
            assertThat(login.status()).isEqualTo(PgServerLogin.Status.READY);
            assertThat(login.method()).isEqualTo(PgServerLogin.Method.NONE);
            assertThat(login.serverParameters()).containsKeys("server_version", "client_encoding", "DateStyle",
                    "TimeZone", "application_name");
            assertThat(login.secret()).hasSizeGreaterThanOrEqualTo(4);
        } finally {
            login.release();
        }
    }

    @Test
    void scramAndMd5LogIn() throws Exception {
        PgServerLogin scram = login("cg_scram", "cg_scram_pw", null, unique("scram"));
        PgServerLogin md5 = login("cg_md5", "cg_md5_pw", null, unique("md5"));
        try {
            assertThat(scram.status()).as(scram.failure()).isEqualTo(PgServerLogin.Status.READY);
            assertThat(scram.method()).isEqualTo(PgServerLogin.Method.SCRAM_SHA_256);
            assertThat(md5.status()).as(md5.failure()).isEqualTo(PgServerLogin.Status.READY);
            assertThat(md5.method()).isEqualTo(PgServerLogin.Method.MD5);
        } finally {
            scram.release();
            md5.release();
        }
    }

    @Test
    void aWrongPasswordGetsTheServers28P01() throws Exception {
        PgServerLogin scram = login("cg_scram", "not-the-password", null, unique("wrong"));
        PgServerLogin md5 = login("cg_md5", "not-the-password", null, unique("wrong"));
        try {
            assertThat(scram.status()).isEqualTo(PgServerLogin.Status.FAILED);
            assertThat(scram.error().code()).isEqualTo("28P01");
            assertThat(md5.error().code()).isEqualTo("28P01");
        } finally {
            scram.release();
            md5.release();
        }
    }

    @Test
    void withoutAPasswordTheLoginPausesAndResumes() throws Exception {
        PgServerLogin paused = login("cg_scram", null, null, unique("paused"));
        PgServerLogin resumed = login("cg_scram", null, "cg_scram_pw", unique("resumed"));
        try {
            assertThat(paused.status()).isEqualTo(PgServerLogin.Status.PASSWORD_NEEDED);
            assertThat(paused.method()).isEqualTo(PgServerLogin.Method.SCRAM_SHA_256);
            assertThat(resumed.status()).as(resumed.failure()).isEqualTo(PgServerLogin.Status.READY);
        } finally {
            paused.release();
            resumed.release();
        }
    }
}
