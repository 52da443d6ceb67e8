package io.connguard.mysql;

import io.connguard.core.api.SqlFingerprint;
import io.netty.buffer.ByteBuf;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * Keeps the first bytes of the last COM_QUERY / COM_STMT_PREPARE text in one array of the session, and
 * turns them into a fingerprint only when someone asks (a kill, a leak report, {@code /sessions}). The
 * array is allocated at the first statement and grows only for a longer one, up to {@link #LIMIT}: a
 * session of short statements keeps a short array, and none before its first.
 */
final class MySqlStatementCapture {

    static final int LIMIT = 384;

    private static final byte[] NONE = new byte[0];

    private byte[] text = NONE;
    private int length;

    void start() {
        length = 0;
    }

    void append(ByteBuf buf, int index, int count) {
        int n = Math.min(count, LIMIT - length);
        if (n > 0) {
            if (length + n > text.length) {
                text = Arrays.copyOf(text, Math.min(LIMIT, Math.max(length + n, text.length + (text.length >> 1))));
            }
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
