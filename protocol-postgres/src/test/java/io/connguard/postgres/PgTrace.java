package io.connguard.postgres;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;

/**
 * A recorded PostgreSQL conversation (src/test/capture/pg_capture.py): the chunks each side sent, in the
 * order and with the boundaries TCP delivered them.
 */
record PgTrace(String name, List<Chunk> chunks) {

    /** One read: {@code fromClient} bytes went client → server, else server → client. */
    record Chunk(boolean fromClient, byte[] bytes) {
    }

    static final List<String> ALL = List.of("psql-simple", "psql-transaction", "psql-copy", "psql-notify",
            "scram", "md5", "wrong-password", "pgbench-simple", "pgbench-extended", "pgbench-prepared",
            "pgbench-pipeline", "pipelined-syncs", "extended-copy", "function-call", "replication");

    static PgTrace load(String name) {
        try (InputStream in = PgTrace.class.getResourceAsStream("fixtures/" + name + ".pgtrace")) {
            if (in == null) {
                throw new IllegalArgumentException("no fixture " + name);
            }
            ByteBuffer data = ByteBuffer.wrap(in.readAllBytes());
            List<Chunk> chunks = new ArrayList<>();
            while (data.hasRemaining()) {
                byte tag = data.get();
                byte[] bytes = new byte[data.getInt()];
                data.get(bytes);
                chunks.add(new Chunk(tag == 'C', bytes));
            }
            return new PgTrace(name, List.copyOf(chunks));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Everything one side sent, concatenated. */
    byte[] stream(boolean fromClient) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (Chunk chunk : chunks) {
            if (chunk.fromClient() == fromClient) {
                out.writeBytes(chunk.bytes());
            }
        }
        return out.toByteArray();
    }

    /** The same conversation with every chunk cut into pieces of at most {@code size} bytes. */
    PgTrace rechunked(int size) {
        List<Chunk> out = new ArrayList<>();
        for (Chunk chunk : chunks) {
            for (int at = 0; at < chunk.bytes().length; at += size) {
                out.add(new Chunk(chunk.fromClient(), slice(chunk.bytes(), at, Math.min(chunk.bytes().length, at + size))));
            }
        }
        return new PgTrace(name + "/" + size, out);
    }

    /** The same conversation with the chunk holding overall byte {@code offset} cut there in two. */
    PgTrace splitAt(int offset) {
        List<Chunk> out = new ArrayList<>();
        int at = 0;
        for (Chunk chunk : chunks) {
            int length = chunk.bytes().length;
            if (offset > at && offset < at + length) {
                out.add(new Chunk(chunk.fromClient(), slice(chunk.bytes(), 0, offset - at)));
                out.add(new Chunk(chunk.fromClient(), slice(chunk.bytes(), offset - at, length)));
            } else {
                out.add(chunk);
            }
            at += length;
        }
        return new PgTrace(name + "@" + offset, out);
    }

    int totalBytes() {
        return chunks.stream().mapToInt(chunk -> chunk.bytes().length).sum();
    }

    private static byte[] slice(byte[] bytes, int from, int to) {
        byte[] out = new byte[to - from];
        System.arraycopy(bytes, from, out, 0, out.length);
        return out;
    }

    @Override
    public String toString() {
        return name;
    }
}
