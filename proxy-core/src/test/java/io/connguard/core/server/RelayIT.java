package io.connguard.core.server;

import io.connguard.core.testing.LeakGuard;
import io.connguard.core.testing.LineClient;
import io.connguard.core.testing.TestProxy;
import io.connguard.core.testing.TestUpstreams;
import io.netty.buffer.PooledByteBufAllocator;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

import java.io.IOException;
import java.io.InputStream;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.SocketException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

/**
 * The relay engine through the test protocol: integrity under concurrency, backpressure, close propagation;
 * and a listener's port across runs (refused while taken, every connection closed on stop, bound again on
 * restart while the old ones linger in TIME_WAIT).
 */
@ExtendWith(LeakGuard.class)
class RelayIT {

    private static TestUpstreams upstreams;

    @BeforeAll
    static void servers() {
        upstreams = new TestUpstreams();
    }

    @AfterAll
    static void stop() {
        upstreams.close();
    }

    private static TestProxy proxy(InetSocketAddress upstream) {
        return proxy(0, upstream);
    }

    private static TestProxy proxy(int port, InetSocketAddress upstream) {
        return TestProxy.start("""
                listeners:
                  - name: relay
                    protocol: line
                    listen: 127.0.0.1:%d
                    upstream: 127.0.0.1:%d
                clients:
                  defaults:
                    maxConnections: 0
                """.formatted(port, upstream.getPort()));
    }

    private static int freePort() throws IOException {
        try (ServerSocket socket = new ServerSocket(0)) {
            return socket.getLocalPort();
        }
    }

    @Test
    void thousandConcurrentSessionsEchoRandomPayloadsIntact() throws Exception {
        int sessions = 1000;
        try (TestProxy proxy = proxy(upstreams.echo())) {
            int port = proxy.port("relay");
            CountDownLatch allOpen = new CountDownLatch(sessions);
            ExecutorService pool = Executors.newFixedThreadPool(sessions);
            try {
                List<Future<Long>> results = new ArrayList<>();
                for (int i = 0; i < sessions; i++) {
                    int n = i;
                    results.add(pool.submit(() -> {
                        try (LineClient client = LineClient.hello(port, "u" + n, "db", "app")) {
                            assertThat(client.readLine()).isEqualTo("WELCOME");
                            allOpen.countDown();
                            assertThat(allOpen.await(60, TimeUnit.SECONDS)).isTrue();
                            Random random = new Random(n);
                            long echoed = 0;
                            for (int round = 0; round < 3; round++) {
                                byte[] payload = new byte[1 + random.nextInt(64 * 1024)];
                                random.nextBytes(payload);
                                client.send(payload);
                                byte[] back = client.readExactly(payload.length);
                                assertThat(Arrays.equals(back, payload)).as("payload of session %d intact", n).isTrue();
                                echoed += payload.length;
                            }
                            return echoed;
                        }
                    }));
                }
                long total = 0;
                for (Future<Long> result : results) {
                    total += result.get(120, TimeUnit.SECONDS);
                }
                assertThat(total).isGreaterThan(sessions * 3L);
            } finally {
                pool.shutdownNow();
            }
            await().atMost(10, TimeUnit.SECONDS).until(() -> proxy.server().registry().size() == 0);
            await().atMost(10, TimeUnit.SECONDS).until(() -> upstreams.openConnections() == 0);
        }
    }

    @Test
    void slowClientKeepsProxyDirectMemoryBounded() throws Exception {
        long total = 200L * 1024 * 1024;
        try (TestProxy proxy = proxy(upstreams.firehose(total));
             LineClient client = LineClient.hello(proxy.port("relay"), "slow", "db", "app")) {
            assertThat(client.readLine()).isEqualTo("WELCOME");
            client.send("go");
            long baseline = PooledByteBufAllocator.DEFAULT.metric().usedDirectMemory();
            AtomicLong peak = new AtomicLong();
            byte[] chunk = new byte[64 * 1024];
            long received = 0;
            long mismatch = -1;
            InputStream in = client.input();
            int reads = 0;
            while (received < total) {
                int n = in.read(chunk);
                if (n < 0) {
                    break;
                }
                for (int i = 0; i < n && mismatch < 0; i++) {
                    if ((chunk[i] & 0xff) != (int) ((received + i) % 251)) {
                        mismatch = received + i;
                    }
                }
                received += n;
                if (++reads % 16 == 0) {
                    // Read far slower than the upstream writes, so the proxy must hold back the upstream.
                    Thread.sleep(2);
                    peak.accumulateAndGet(PooledByteBufAllocator.DEFAULT.metric().usedDirectMemory(), Math::max);
                }
            }
            assertThat(mismatch).as("first corrupted byte offset").isEqualTo(-1);
            assertThat(received).isEqualTo(total);
            assertThat(peak.get() - baseline).as("direct memory the proxy grew by while streaming 200 MiB")
                    .isLessThan(32L * 1024 * 1024);
        }
    }

    @Test
    void aClientThatNeverFinishesItsHandshakeIsClosedWithoutAnUpstreamConnection() throws Exception {
        try (TestProxy proxy = TestProxy.start("""
                listeners:
                  - name: relay
                    protocol: line
                    listen: 127.0.0.1:0
                    upstream: 127.0.0.1:%d
                    handshakeTimeout: 500ms
                """.formatted(upstreams.echo().getPort()));
             LineClient silent = new LineClient(proxy.port("relay"));
             LineClient slowloris = new LineClient(proxy.port("relay"))) {
            int before = upstreams.openConnections();
            slowloris.send("HEL");
            Thread.sleep(200);
            slowloris.send("LO");
            assertThat(silent.readLine()).startsWith("ERROR PROTOCOL_VIOLATION handshake not completed");
            assertThat(silent.closedByPeer()).isTrue();
            assertThat(slowloris.readLine()).startsWith("ERROR PROTOCOL_VIOLATION handshake not completed");
            assertThat(upstreams.openConnections()).as("no upstream connection was opened").isEqualTo(before);
            assertThat(proxy.scrape().sum("connguard_client_sessions_closed_total"))
                    .as("sessions that never identified are not counted").isZero();
        }
    }

    @Test
    void clientCloseClosesUpstreamAndUpstreamCloseClosesClient() throws Exception {
        try (TestProxy proxy = proxy(upstreams.echo())) {
            int before = upstreams.openConnections();
            LineClient client = LineClient.hello(proxy.port("relay"), "c", "db", "app");
            assertThat(client.readLine()).isEqualTo("WELCOME");
            await().atMost(5, TimeUnit.SECONDS).until(() -> upstreams.openConnections() == before + 1);
            client.close();
            await().atMost(5, TimeUnit.SECONDS).until(() -> upstreams.openConnections() == before);
            await().atMost(5, TimeUnit.SECONDS).until(() -> proxy.server().registry().size() == 0);
        }
        try (TestProxy proxy = proxy(upstreams.firehose(10));
             LineClient client = LineClient.hello(proxy.port("relay"), "c", "db", "app")) {
            assertThat(client.readLine()).isEqualTo("WELCOME");
            client.send("go");
            assertThat(client.readExactly(10)).hasSize(10);
            assertThat(client.closedByPeer()).as("client sees the upstream's close").isTrue();
            await().atMost(5, TimeUnit.SECONDS).until(() -> proxy.server().registry().size() == 0);
        }
    }

    @Test
    void theServerClosesAfterTheClientsOwnGoodbyeAndOtherwiseTheProxyEndsItsHalfOfTheStream() throws Exception {
        try (TestProxy proxy = proxy(upstreams.closesOnBye())) {
            int before = upstreams.openConnections();
            try (LineClient client = LineClient.hello(proxy.port("relay"), "c", "db", "app")) {
                assertThat(client.readLine()).isEqualTo("WELCOME");
                await().atMost(5, TimeUnit.SECONDS).until(() -> upstreams.openConnections() == before + 1);
                client.send("BYE\n");
            }
            await().atMost(5, TimeUnit.SECONDS).until(() -> upstreams.openConnections() == before);
            assertThat(upstreams.halfClosedByPeer()).as("the relayed goodbye needed no half-close").isZero();

            try (LineClient client = LineClient.hello(proxy.port("relay"), "c", "db", "app")) {
                assertThat(client.readLine()).isEqualTo("WELCOME");
                await().atMost(5, TimeUnit.SECONDS).until(() -> upstreams.openConnections() == before + 1);
                client.send("SELECT 1");
            }
            await().atMost(5, TimeUnit.SECONDS).until(() -> upstreams.openConnections() == before);
            assertThat(upstreams.halfClosedByPeer()).as("no goodbye: the proxy ended its half of the stream").isEqualTo(1);
            await().atMost(5, TimeUnit.SECONDS).until(() -> proxy.server().registry().size() == 0);
        }
    }

    @Test
    void aSecondProxyOnTheSamePortIsRefusedAndTheFirstKeepsEveryConnection() throws Exception {
        int port = freePort();
        try (TestProxy first = proxy(port, upstreams.echo())) {
            assertThatThrownBy(() -> proxy(port, upstreams.echo()))
                    .hasMessageContaining("cannot listen on 127.0.0.1:" + port)
                    .hasMessageContaining("Address already in use");
            for (int i = 0; i < 16; i++) {
                try (LineClient client = LineClient.hello(port, "u" + i, "db", "app")) {
                    assertThat(client.readLine()).isEqualTo("WELCOME");
                    client.send("ping " + i + "\n");
                    assertThat(client.readLine()).isEqualTo("ping " + i);
                }
            }
        }
    }

    @Test
    void stoppingClosesEveryConnectionAndARestartOnTheSamePortSucceedsWhileTheyLinger() throws Exception {
        int port = freePort();
        List<LineClient> clients = new ArrayList<>();
        try {
            try (TestProxy before = proxy(port, upstreams.echo())) {
                for (int i = 0; i < 8; i++) {
                    LineClient client = LineClient.hello(port, "u" + i, "db", "app");
                    assertThat(client.readLine()).isEqualTo("WELCOME");
                    clients.add(client);
                }
                // Traffic in flight keeps the loops busy as they are told to stop.
                for (LineClient client : clients) {
                    client.send(new byte[256 * 1024]);
                }
            }
            // Stopping closed every connection (one still open would time out reading here), and the proxy
            // closed first, so its side of those it ended cleanly waits in TIME_WAIT on this port.
            for (LineClient client : clients) {
                readToTheEnd(client);
            }
            try (TestProxy after = proxy(port, upstreams.echo());
                 LineClient client = LineClient.hello(port, "again", "db", "app")) {
                assertThat(client.readLine()).isEqualTo("WELCOME");
                assertThat(after.port("relay")).isEqualTo(port);
            }
        } finally {
            for (LineClient client : clients) {
                client.close();
            }
        }
    }

    /** Reads until the end of the stream or a reset (the proxy closed with the client's bytes unread). */
    private static void readToTheEnd(LineClient client) throws IOException {
        try {
            client.input().readAllBytes();
        } catch (SocketException reset) {
            assertThat(reset).hasMessageContaining("reset");
        }
    }
}
