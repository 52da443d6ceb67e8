package io.connguard.postgres;

import java.util.Arrays;

/**
 * One prepared statement's identity as the server sees it: the body of its Parse after the name (query
 * text, its NUL, the parameter type count and OIDs). Equal bodies are the same statement, whichever
 * client parsed it and under whatever name, so a server connection prepares it once for all of them.
 * Immutable; {@code pins} are the {@link PgPin} bits the text's execution starts.
 */
final class PgStatement {

    private final byte[] body;
    private final int hash;
    private final int pins;

    PgStatement(byte[] body, int pins) {
        this.body = body;
        this.hash = Arrays.hashCode(body);
        this.pins = pins;
    }

    /** The Parse body after the statement name; not to be modified. */
    byte[] body() {
        return body;
    }

    int pins() {
        return pins;
    }

    @Override
    public boolean equals(Object other) {
        return other instanceof PgStatement that && that.hash == hash && Arrays.equals(that.body, body);
    }

    @Override
    public int hashCode() {
        return hash;
    }

    @Override
    public String toString() {
        int end = 0;
        while (end < body.length && body[end] != 0 && end < 60) {
            end++;
        }
        return "PgStatement[" + new String(body, 0, end, java.nio.charset.StandardCharsets.UTF_8) + "]";
    }
}
