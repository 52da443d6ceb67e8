package io.connguard.postgres;

import io.connguard.core.testing.LeakGuard;
import io.connguard.core.testing.TestProxy;
import io.netty.buffer.PooledByteBufAllocator;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

import java.io.InputStream;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

import static io.connguard.postgres.PgIt.connect;
import static io.connguard.postgres.PgIt.unique;
import static org.assertj.core.api.Assertions.assertThat;

/** A 100 MB value crosses the proxy as it arrives: the proxy's buffers stay small while the row streams. */
@ExtendWith(LeakGuard.class)
class PgLargeValueIT {

    private static final int SIZE = 100 * 1024 * 1024;

    private static TestProxy proxy;

    @BeforeAll
    static void start() {
        proxy = PgIt.proxy();
    }

    @AfterAll
    static void stop() {
        proxy.close();
    }

    @Test
    void aHundredMegabyteByteaIsReadWhileTheProxysMemoryStaysBounded() throws Exception {
        ScheduledExecutorService sampler = Executors.newSingleThreadScheduledExecutor();
        // pgjdbc reads the value in binary (prepareThreshold=-1 forces a server-prepared, binary-result
        // statement), so the DataRow carries exactly SIZE bytes of value.
        try (Connection c = connect(proxy, unique("bytea"), "prepareThreshold", "-1");
             PreparedStatement ps = c.prepareStatement(
                     "SELECT convert_to(repeat('0123456789abcdef', ?), 'SQL_ASCII'), md5(repeat('0123456789abcdef', ?))")) {
            ps.setInt(1, SIZE / 16);
            ps.setInt(2, SIZE / 16);
            long baseline = PooledByteBufAllocator.DEFAULT.metric().usedDirectMemory()
                    + PooledByteBufAllocator.DEFAULT.metric().usedHeapMemory();
            AtomicLong peak = new AtomicLong(baseline);
            sampler.scheduleAtFixedRate(() -> peak.accumulateAndGet(
                    PooledByteBufAllocator.DEFAULT.metric().usedDirectMemory()
                            + PooledByteBufAllocator.DEFAULT.metric().usedHeapMemory(), Math::max),
                    0, 2, TimeUnit.MILLISECONDS);
            try (ResultSet rs = ps.executeQuery()) {
                assertThat(rs.next()).isTrue();
                long length = 0;
                java.security.MessageDigest md5 = java.security.MessageDigest.getInstance("MD5");
                try (InputStream in = rs.getBinaryStream(1)) {
                    byte[] chunk = new byte[1 << 16];
                    for (int n = in.read(chunk); n >= 0; n = in.read(chunk)) {
                        md5.update(chunk, 0, n);
                        length += n;
                    }
                }
                assertThat(length).isEqualTo(SIZE);
                assertThat(java.util.HexFormat.of().formatHex(md5.digest())).isEqualTo(rs.getString(2));
            }
            sampler.shutdown();
            sampler.awaitTermination(5, TimeUnit.SECONDS);
            assertThat(peak.get() - baseline).as("pooled memory the proxy grew by while relaying a 100 MB row")
                    .isLessThan(16L * 1024 * 1024);
        } finally {
            sampler.shutdownNow();
        }
    }
}
