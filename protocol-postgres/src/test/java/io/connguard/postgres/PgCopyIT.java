package io.connguard.postgres;

import io.connguard.core.testing.LeakGuard;
import io.connguard.core.testing.TestProxy;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;
import org.postgresql.PGConnection;
import org.postgresql.copy.CopyManager;

import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.util.concurrent.atomic.AtomicLong;

import static io.connguard.postgres.PgIt.connect;
import static io.connguard.postgres.PgIt.direct;
import static io.connguard.postgres.PgIt.execute;
import static io.connguard.postgres.PgIt.longValue;
import static io.connguard.postgres.PgIt.unique;
import static org.assertj.core.api.Assertions.assertThat;

/** COPY through the proxy: 100 MB in and out with pgjdbc's CopyManager, streamed, never collected. */
@ExtendWith(LeakGuard.class)
class PgCopyIT {

    private static final long SIZE = 100L * 1024 * 1024;
    /** One COPY text row: an id, a tab, 90 letters, a newline. */
    private static final int PAYLOAD = 90;

    private static TestProxy proxy;

    @BeforeAll
    static void start() {
        proxy = PgIt.proxy();
    }

    @AfterAll
    static void stop() {
        proxy.close();
    }

    /** Generates COPY text rows "i\t<90 letters>\n" on the fly until at least {@code size} bytes. */
    private static final class Rows extends InputStream {
        private final long size;
        private long produced;
        private long row;
        private byte[] line = new byte[0];
        private int at;

        Rows(long size) {
            this.size = size;
        }

        long rows() {
            return row;
        }

        @Override
        public int read() {
            byte[] one = new byte[1];
            return read(one, 0, 1) < 0 ? -1 : one[0] & 0xFF;
        }

        @Override
        public int read(byte[] b, int off, int len) {
            if (at == line.length) {
                if (produced >= size) {
                    return -1;
                }
                row++;
                char letter = (char) ('a' + row % 26);
                line = (row + "\t" + String.valueOf(letter).repeat(PAYLOAD) + "\n").getBytes(StandardCharsets.US_ASCII);
                at = 0;
                produced += line.length;
            }
            int n = Math.min(len, line.length - at);
            System.arraycopy(line, at, b, off, n);
            at += n;
            return n;
        }
    }

    @Test
    void copyInAndOutOfAHundredMegabytes() throws Exception {
        String table = unique("copy");
        try (Connection c = connect(proxy, unique("copy"))) {
            execute(c, "CREATE UNLOGGED TABLE " + table + " (id bigint, payload text)");
            try {
                CopyManager copy = c.unwrap(PGConnection.class).getCopyAPI();
                Rows rows = new Rows(SIZE);
                long copied = copy.copyIn("COPY " + table + " FROM STDIN", rows, 64 * 1024);
                assertThat(copied).isEqualTo(rows.rows());
                try (Connection d = direct()) {
                    assertThat(longValue(d, "SELECT count(*) FROM " + table)).isEqualTo(rows.rows());
                    assertThat(longValue(d, "SELECT sum(length(payload)) FROM " + table)).isEqualTo(rows.rows() * PAYLOAD);
                }

                AtomicLong bytes = new AtomicLong();
                AtomicLong newlines = new AtomicLong();
                OutputStream counter = new OutputStream() {
                    @Override
                    public void write(int b) {
                        write(new byte[] {(byte) b}, 0, 1);
                    }

                    @Override
                    public void write(byte[] b, int off, int len) {
                        bytes.addAndGet(len);
                        for (int i = off; i < off + len; i++) {
                            if (b[i] == '\n') {
                                newlines.incrementAndGet();
                            }
                        }
                    }
                };
                long out = copy.copyOut("COPY " + table + " TO STDOUT", counter);
                assertThat(out).isEqualTo(rows.rows());
                assertThat(newlines.get()).isEqualTo(rows.rows());
                assertThat(bytes.get()).isGreaterThanOrEqualTo(SIZE);
                assertThat(longValue(c, "SELECT 1")).as("the session is in sync after both copies").isEqualTo(1);
            } finally {
                execute(c, "DROP TABLE " + table);
            }
        }
    }

    @Test
    void aCopyTheClientAbortsRollsBackAndTheSessionGoesOn() throws Exception {
        String table = unique("copyfail");
        try (Connection c = connect(proxy, unique("copyfail"))) {
            execute(c, "CREATE TABLE " + table + " (id int)");
            try {
                CopyManager copy = c.unwrap(PGConnection.class).getCopyAPI();
                var in = copy.copyIn("COPY " + table + " FROM STDIN");
                in.writeToCopy("1\n2\n".getBytes(StandardCharsets.US_ASCII), 0, 4);
                in.cancelCopy();
                assertThat(longValue(c, "SELECT count(*) FROM " + table)).isZero();
            } finally {
                execute(c, "DROP TABLE " + table);
            }
        }
    }
}
