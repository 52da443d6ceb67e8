package io.connguard.postgres;

import io.connguard.core.api.SqlFingerprint;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;

import static org.assertj.core.api.Assertions.assertThat;

class PgStatementCaptureTest {

    @Test
    void keepsEachStatementWholeWhileItsBufferGrowsAcrossReads() {
        PgStatementCapture capture = new PgStatementCapture();
        assertThat(capture.fingerprint()).isEmpty();
        String longer = "SELECT id, name, email FROM customers WHERE region = 'north' AND created > now()";
        for (String sql : new String[] {"SELECT 1", longer, "SELECT 2", longer + " ORDER BY id"}) {
            query(capture, sql, 7);
            assertThat(capture.fingerprint()).isEqualTo(SqlFingerprint.of(sql, SqlFingerprint.POSTGRES));
        }
    }

    @Test
    void keepsAtMostItsCapacity() {
        PgStatementCapture capture = new PgStatementCapture();
        String sql = "SELECT " + "x, ".repeat(300) + "1";
        query(capture, sql, 50);
        String kept = sql.substring(0, PgStatementCapture.CAPACITY);
        assertThat(capture.fingerprint()).isEqualTo(SqlFingerprint.of(kept, SqlFingerprint.POSTGRES));
    }

    /** A Query's body (the text and its NUL) fed in pieces of {@code piece} bytes. */
    private static void query(PgStatementCapture capture, String sql, int piece) {
        byte[] text = sql.getBytes(StandardCharsets.UTF_8);
        ByteBuf body = Unpooled.buffer(text.length + 1).writeBytes(text).writeByte(0);
        capture.begin(false);
        for (int at = 0; at < body.writerIndex(); at += piece) {
            capture.accept(body, at, Math.min(piece, body.writerIndex() - at));
        }
        body.release();
    }
}
