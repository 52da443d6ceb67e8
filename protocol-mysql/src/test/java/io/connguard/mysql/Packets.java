package io.connguard.mysql;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;

/** Hand-built protocol packets and captured conversations for byte-level tests. */
final class Packets {

    /** One chunk of a captured conversation: who sent it, and the bytes as read. */
    record Chunk(boolean fromClient, byte[] bytes) {
    }

    private Packets() {
    }

    /** A conversation captured by {@code fixtures/capture.py}: lines "C hex" and "S hex". */
    static List<Chunk> fixture(String name) {
        try {
            Path path = Path.of(Packets.class.getResource("/fixtures/" + name + ".txt").toURI());
            List<Chunk> chunks = new ArrayList<>();
            for (String line : Files.readAllLines(path)) {
                if (!line.isBlank()) {
                    chunks.add(new Chunk(line.charAt(0) == 'C', HexFormat.of().parseHex(line.substring(2).trim())));
                }
            }
            return chunks;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (java.net.URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    static byte[] packet(int sequenceId, byte[] payload) {
        byte[] out = new byte[4 + payload.length];
        out[0] = (byte) payload.length;
        out[1] = (byte) (payload.length >>> 8);
        out[2] = (byte) (payload.length >>> 16);
        out[3] = (byte) sequenceId;
        System.arraycopy(payload, 0, out, 4, payload.length);
        return out;
    }

    static byte[] payload(Object... parts) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (Object part : parts) {
            if (part instanceof Integer b) {
                out.write(b);
            } else if (part instanceof byte[] bytes) {
                out.writeBytes(bytes);
            } else if (part instanceof String s) {
                out.writeBytes(s.getBytes(StandardCharsets.UTF_8));
            } else {
                throw new IllegalArgumentException(String.valueOf(part));
            }
        }
        return out.toByteArray();
    }

    static byte[] concat(byte[]... parts) {
        return payload((Object[]) parts);
    }

    static byte[] ok(int sequenceId, int status) {
        return packet(sequenceId, payload(0x00, 0, 0, status & 0xFF, status >>> 8, 0, 0));
    }

    /** An OK packet with the 0xFE header, as CLIENT_DEPRECATE_EOF ends result sets. */
    static byte[] okEof(int sequenceId, int status) {
        return packet(sequenceId, payload(0xFE, 0, 0, status & 0xFF, status >>> 8, 0, 0));
    }

    static byte[] eof(int sequenceId, int status) {
        return packet(sequenceId, payload(0xFE, 0, 0, status & 0xFF, status >>> 8));
    }

    static byte[] err(int sequenceId, int code, String message) {
        return packet(sequenceId, payload(0xFF, code & 0xFF, code >>> 8, "#HY000", message));
    }

    static byte[] progress(int sequenceId) {
        return packet(sequenceId, payload(0xFF, 0xFF, 0xFF, 1, 1, 1, 0x10, 0x27, 0, 3, "Foo"));
    }

    static byte[] columnCount(int sequenceId, int columns) {
        return packet(sequenceId, payload(columns));
    }

    static byte[] columnCount(int sequenceId, int columns, int metadataFollows) {
        return packet(sequenceId, payload(columns, metadataFollows));
    }

    static byte[] columnDefinition(int sequenceId, String name) {
        return packet(sequenceId, payload(3, "def", 4, "test", 1, "t", 1, "t", name.length(), name, name.length(), name,
                0x0C, 0x21, 0, 0x20, 0, 0, 0, 0xFD, 0, 0, 0, 0, 0));
    }

    static byte[] textRow(int sequenceId, String... values) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (String value : values) {
            out.write(value.length());
            out.writeBytes(value.getBytes(StandardCharsets.UTF_8));
        }
        return packet(sequenceId, out.toByteArray());
    }

    static byte[] binaryRow(int sequenceId, int value) {
        return packet(sequenceId, payload(0x00, 0x00, value, 0, 0, 0));
    }

    static byte[] command(int command, String text) {
        return packet(0, payload(command, text));
    }

    static byte[] query(String sql) {
        return command(MySqlCommand.COM_QUERY, sql);
    }

    static byte[] prepareOk(int sequenceId, int statementId, int columns, int params) {
        return packet(sequenceId, payload(0x00, statementId, 0, 0, 0, columns, 0, params, 0, 0, 0, 0));
    }

    static byte[] execute(int statementId, int cursorFlags) {
        return packet(0, payload(MySqlCommand.COM_STMT_EXECUTE, statementId, 0, 0, 0, cursorFlags, 1, 0, 0, 0));
    }

    static byte[] fetch(int statementId, int rows) {
        return packet(0, payload(0x1C, statementId, 0, 0, 0, rows, 0, 0, 0));
    }
}
