package io.connguard.postgres;

import io.connguard.core.api.SqlFingerprint;
import io.netty.buffer.ByteBuf;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * Keeps the first few hundred bytes of the statement text of the client's last Query or Parse message in
 * one buffer of the session, and fingerprints it only when someone asks (a leak or kill report,
 * {@code /sessions}). The buffer is allocated at the first statement and grows only for a longer one, up
 * to {@link #CAPACITY}: a session of short statements keeps a short buffer, and none before its first.
 *
 * @see <a href="https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-QUERY">Query</a>,
 *     <a href="https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-PARSE">Parse</a>
 */
final class PgStatementCapture {

    static final int CAPACITY = 400;

    /** Parse carries a statement name before its text; this much body is read to get past it. */
    static final int MAX_PREFIX = 1024;

    private static final byte[] NONE = new byte[0];

    private byte[] text = NONE;
    private int length;
    private boolean skippingName;
    private boolean complete;

    /** A Query ({@code hasName} false) or Parse ({@code hasName} true) message starts. */
    void begin(boolean hasName) {
        length = 0;
        skippingName = hasName;
        complete = false;
    }

    /** A chunk of that message's body. */
    void accept(ByteBuf buf, int index, int count) {
        int end = index + count;
        int at = index;
        if (skippingName) {
            int nul = buf.indexOf(at, end, (byte) 0);
            if (nul < 0) {
                return;
            }
            skippingName = false;
            at = nul + 1;
        }
        if (complete || at >= end) {
            return;
        }
        int nul = buf.indexOf(at, end, (byte) 0);
        int stop = nul < 0 ? end : nul;
        int copy = Math.min(stop - at, CAPACITY - length);
        if (length + copy > text.length) {
            text = Arrays.copyOf(text, Math.min(CAPACITY, Math.max(length + copy, text.length + (text.length >> 1))));
        }
        buf.getBytes(at, text, length, copy);
        length += copy;
        complete = nul >= 0 || length == CAPACITY;
    }

    /** The fingerprint of the captured text (literals replaced by {@code ?}); "" before any statement. */
    String fingerprint() {
        if (length == 0) {
            return "";
        }
        return SqlFingerprint.of(new String(text, 0, length, StandardCharsets.UTF_8), SqlFingerprint.POSTGRES);
    }
}
