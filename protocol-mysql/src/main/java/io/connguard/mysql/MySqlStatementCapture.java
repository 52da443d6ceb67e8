package io.connguard.mysql;

import io.connguard.core.api.SqlFingerprint;
import io.netty.buffer.ByteBuf;

import java.nio.charset.StandardCharsets;

/**
 * Keeps the first bytes of the last COM_QUERY / COM_STMT_PREPARE text in one array allocated per session,
 * and turns them into a fingerprint only when someone asks (a kill, a leak report, {@code /sessions}).
 */
final class MySqlStatementCapture {

    static final int LIMIT = 384;

    private final byte[] text = new byte[LIMIT];
    private int length;

    void start() {
        length = 0;
    }

    void append(ByteBuf buf, int index, int count) {
        int n = Math.min(count, LIMIT - length);
        if (n > 0) {
            buf.getBytes(index, text, length, n);
            length += n;
        }
    }

    String fingerprint() {
        if (length == 0) {
            return "";
        }
        return SqlFingerprint.of(new String(text, 0, length, StandardCharsets.UTF_8), SqlFingerprint.MYSQL);
    }
}
