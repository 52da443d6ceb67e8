package io.connguard.mysql;

import io.connguard.core.api.SqlFingerprint;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;

import static org.assertj.core.api.Assertions.assertThat;

class MySqlStatementCaptureTest {

    @Test
    void keepsEachStatementWholeWhileItsArrayGrowsAcrossReads() {
        MySqlStatementCapture capture = new MySqlStatementCapture();
        assertThat(capture.fingerprint()).isEmpty();
        String longer = "SELECT id, name, email FROM customers WHERE region = 'north' AND created > NOW()";
        for (String sql : new String[] {"SELECT 1", longer, "SELECT 2", longer + " ORDER BY id"}) {
            text(capture, sql, 7);
            assertThat(capture.fingerprint()).isEqualTo(SqlFingerprint.of(sql, SqlFingerprint.MYSQL));
        }
    }

    @Test
    void keepsAtMostItsLimit() {
        MySqlStatementCapture capture = new MySqlStatementCapture();
        String sql = "SELECT " + "x, ".repeat(300) + "1";
        text(capture, sql, 50);
        String kept = sql.substring(0, MySqlStatementCapture.LIMIT);
        assertThat(capture.fingerprint()).isEqualTo(SqlFingerprint.of(kept, SqlFingerprint.MYSQL));
    }

    /** A COM_QUERY's text fed in pieces of {@code piece} bytes, as the command scanner feeds it. */
    private static void text(MySqlStatementCapture capture, String sql, int piece) {
        ByteBuf text = Unpooled.wrappedBuffer(sql.getBytes(StandardCharsets.UTF_8));
        capture.start();
        for (int at = 0; at < text.writerIndex(); at += piece) {
            capture.append(text, at, Math.min(piece, text.writerIndex() - at));
        }
        text.release();
    }
}
