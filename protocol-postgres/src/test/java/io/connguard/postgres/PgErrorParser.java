package io.connguard.postgres;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;

/** Reads an ErrorResponse the way a driver does, to check what a client would be told. */
final class PgErrorParser {

    private PgErrorParser() {
    }

    /** The fields of the single ErrorResponse that makes up {@code bytes}. */
    static Map<Character, String> fields(byte[] bytes) {
        ByteBuffer in = ByteBuffer.wrap(bytes);
        assertThat((char) in.get()).as("message type").isEqualTo('E');
        assertThat(in.getInt()).as("length").isEqualTo(bytes.length - 1);
        Map<Character, String> fields = new LinkedHashMap<>();
        for (byte code = in.get(); code != 0; code = in.get()) {
            int start = in.position();
            while (in.get() != 0) {
                // up to the field's NUL
            }
            fields.put((char) code, new String(bytes, start, in.position() - start - 1, StandardCharsets.UTF_8));
        }
        assertThat(in.hasRemaining()).as("nothing after the ErrorResponse (no ReadyForQuery)").isFalse();
        return fields;
    }
}
