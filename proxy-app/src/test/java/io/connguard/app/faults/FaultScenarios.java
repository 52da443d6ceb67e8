package io.connguard.app.faults;

import io.connguard.core.testing.FaultRelay;
import io.connguard.core.testing.LeakGuard;
import io.connguard.core.testing.PrometheusScrape;
import io.connguard.core.testing.TestProxy;
import io.netty.buffer.PooledByteBufAllocator;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.extension.ExtendWith;

import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowableOfType;
import static org.awaitility.Awaitility.await;

/**
 * Robustness scenarios (issue 9): a database host that refuses or drops connects, a database that ends a
 * session mid-query, a client that vanishes inside a transaction, clients that never finish their
 * handshake, and handshakes whose length fields lie. Each runs against the real database through its
 * real driver (or raw bytes, where the scenario is about bytes), with a {@link FaultRelay} playing the
 * broken network, and asserts what the issue asks: the client's error and how fast it comes, the permit
 * given back, the database's own view, the numbers in {@code /metrics}.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@ExtendWith(LeakGuard.class)
abstract class FaultScenarios {

    static final String CONNECT_USER = "cg_fault_connect";
    static final String TERMINATE_USER = "cg_fault_terminate";
    static final String LOCK_USER = "cg_fault_lock";
    static final String LOCK_TABLE = "cg_fault_lock_rows";
    static final Duration CONNECT_TIMEOUT = Duration.ofSeconds(1);
    static final Duration HANDSHAKE_TIMEOUT = Duration.ofMillis(1500);
    /** Scheduling slack on a busy 2-core machine, added to the proxy's own timeouts. */
    static final Duration SLACK = Duration.ofMillis(2500);

    private final FaultTarget target;

    FaultScenarios(FaultTarget target) {
        this.target = target;
    }

    @BeforeAll
    void prepare() throws SQLException {
        for (String user : List.of(CONNECT_USER, TERMINATE_USER, LOCK_USER)) {
            target.guard().ensureUser(user);
        }
        target.ensureLockTable(LOCK_TABLE);
    }

    /** A proxy with one listener {@code db} to {@code upstream}, the scenario timeouts, a cap of 1 per client. */
    private TestProxy proxy(String upstream) {
        return TestProxy.start("""
                listeners:
                  - name: db
                    protocol: %s
                    listen: 127.0.0.1:0
                    upstream: %s
                    connectTimeout: %dms
                    handshakeTimeout: %dms
                clients:
                  defaults:
                    maxConnections: 1
                    queueTimeout: 0
                """.formatted(target.guard().protocol(), upstream, CONNECT_TIMEOUT.toMillis(),
                HANDSHAKE_TIMEOUT.toMillis()));
    }

    private String directUpstream() {
        return target.guard().database().hostPort();
    }

    private static double listenerValue(PrometheusScrape scrape, String name) {
        return scrape.value(name, "listener", "db");
    }

    private static Duration since(long startNanos) {
        return Duration.ofNanos(System.nanoTime() - startNanos);
    }

    private static int selectOne(Connection c) throws SQLException {
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT 1")) {
            rs.next();
            return rs.getInt(1);
        }
    }

    private static void awaitNoSessions(TestProxy proxy) {
        await().atMost(5, TimeUnit.SECONDS).untilAsserted(() -> assertThat(proxy.sessions()).isEmpty());
    }

    // ------------------------------------------------------------------ the database cannot be reached

    @Test
    void anUnreachableDatabaseFailsTheClientWithinTheConnectTimeoutAndGivesThePermitBack() throws Exception {
        try (FaultRelay host = FaultRelay.to(target.guard().database().host(), target.guard().database().port());
             TestProxy proxy = proxy(host.hostPort())) {
            int port = proxy.port("db");
            try (Connection warm = target.guard().open(port, CONNECT_USER, "connect")) {
                assertThat(selectOne(warm)).as("through the healthy relay").isEqualTo(1);
            }
            awaitNoSessions(proxy);

            host.refuseConnects();
            long start = System.nanoTime();
            SQLException refused = catchThrowableOfType(SQLException.class,
                    () -> target.guard().open(port, CONNECT_USER, "connect").close());
            Duration refusedAfter = since(start);
            assertThat((Throwable) refused).as("a refused upstream connect").isNotNull();
            target.assertUpstreamUnavailable(refused);
            assertThat(refused.getMessage()).contains("connection refused");
            assertThat(refusedAfter).as("a refusal is reported at once, well within connectTimeout")
                    .isLessThan(CONNECT_TIMEOUT);

            host.blackholeConnects();
            start = System.nanoTime();
            SQLException timedOut = catchThrowableOfType(SQLException.class,
                    () -> target.guard().open(port, CONNECT_USER, "connect").close());
            Duration timedOutAfter = since(start);
            assertThat((Throwable) timedOut).as("an upstream connect that is never answered").isNotNull();
            target.assertUpstreamUnavailable(timedOut);
            assertThat(timedOut.getMessage()).contains("connect timed out (connectTimeout)");
            assertThat(timedOutAfter).as("the client hears about it at connectTimeout, not at its own timeout")
                    .isGreaterThanOrEqualTo(CONNECT_TIMEOUT.minusMillis(50))
                    .isLessThan(CONNECT_TIMEOUT.plus(SLACK));

            PrometheusScrape scrape = proxy.scrape();
            assertThat(listenerValue(scrape, "connguard_listener_upstream_connect_errors_total")).isEqualTo(2);
            assertThat(listenerValue(scrape, "connguard_listener_upstream_connections")).isZero();
            assertThat(proxy.clients()).as("no permit is held after the failures").isEmpty();

            host.acceptConnects();
            try (Connection again = target.guard().open(port, CONNECT_USER, "connect")) {
                assertThat(selectOne(again)).as("the cap of 1 admits again: both permits came back").isEqualTo(1);
            }
            System.out.printf("[faults] %s connect errors: refused after %d ms, blackholed after %d ms%n",
                    target.guard().protocol(), refusedAfter.toMillis(), timedOutAfter.toMillis());
        }
    }

    // ------------------------------------------------------------------ the database ends the session

    @Test
    void aSessionTheDatabaseTerminatesMidQueryFailsTheQueryAndFreesItsPermit() throws Exception {
        try (TestProxy proxy = proxy(directUpstream())) {
            int port = proxy.port("db");
            ExecutorService runner = Executors.newSingleThreadExecutor();
            try (Connection victim = target.guard().open(port, TERMINATE_USER, "terminated")) {
                long backend = target.backendId(victim);
                Future<?> query = runner.submit(() -> {
                    try (Statement s = victim.createStatement()) {
                        s.execute(target.guard().sleep(30));
                    }
                    return null;
                });
                await().atMost(5, TimeUnit.SECONDS).until(() -> "active".equals(
                        proxy.sessions().path(0).path("state").asText()));
                long start = System.nanoTime();
                target.terminateBackend(backend);
                ExecutionException failed = catchThrowableOfType(ExecutionException.class,
                        () -> query.get(10, TimeUnit.SECONDS));
                Duration after = since(start);
                assertThat((Throwable) failed).as("the query in flight fails instead of hanging").isNotNull();
                assertThat(failed.getCause()).isInstanceOf(SQLException.class);
                target.assertTerminatedByServer((SQLException) failed.getCause());
                assertThat(after).as("the end reaches the client at once").isLessThan(Duration.ofSeconds(3));
                System.out.printf("[faults] %s terminated backend reported after %d ms%n",
                        target.guard().protocol(), after.toMillis());
            } finally {
                runner.shutdownNow();
            }
            awaitNoSessions(proxy);
            assertThat(proxy.scrape().value("connguard_client_sessions_closed_total", "listener", "db",
                    "application", "terminated", "reason", "upstream")).isEqualTo(1);
            try (Connection next = target.guard().open(port, TERMINATE_USER, "terminated")) {
                assertThat(selectOne(next)).as("the cap of 1 admits again: the permit came back").isEqualTo(1);
            }
        }
    }

    @Test
    void aDatabaseHostThatResetsMidQueryFailsTheQueryAtOnce() throws Exception {
        try (FaultRelay host = FaultRelay.to(target.guard().database().host(), target.guard().database().port());
             TestProxy proxy = proxy(host.hostPort())) {
            int port = proxy.port("db");
            ExecutorService runner = Executors.newSingleThreadExecutor();
            try (Connection victim = target.guard().open(port, TERMINATE_USER, "reset")) {
                Future<?> query = runner.submit(() -> {
                    try (Statement s = victim.createStatement()) {
                        s.execute(target.guard().sleep(3));
                    }
                    return null;
                });
                await().atMost(5, TimeUnit.SECONDS).until(() -> "active".equals(
                        proxy.sessions().path(0).path("state").asText()));
                long start = System.nanoTime();
                host.reset();
                ExecutionException failed = catchThrowableOfType(ExecutionException.class,
                        () -> query.get(10, TimeUnit.SECONDS));
                assertThat((Throwable) failed).as("the query fails when its server connection is reset").isNotNull();
                assertThat(failed.getCause()).isInstanceOf(SQLException.class);
                assertThat(since(start)).as("long before the 3 s query would have ended")
                        .isLessThan(Duration.ofMillis(2000));
            } finally {
                runner.shutdownNow();
            }
            awaitNoSessions(proxy);
            PrometheusScrape scrape = proxy.scrape();
            assertThat(scrape.value("connguard_client_sessions_closed_total", "listener", "db",
                    "application", "reset", "reason", "upstream")).isEqualTo(1);
            assertThat(listenerValue(scrape, "connguard_listener_upstream_connections")).isZero();
            try (Connection next = target.guard().open(port, TERMINATE_USER, "reset")) {
                assertThat(selectOne(next)).isEqualTo(1);
            }
        }
    }

    // ------------------------------------------------------------------ the client vanishes

    @Test
    void aClientResetInsideATransactionReleasesItsLockWithinASecond() throws Exception {
        clientVanishesHoldingALock("reset", FaultRelay::reset);
    }

    @Test
    void aClientHalfCloseInsideATransactionReleasesItsLockWithinASecond() throws Exception {
        clientVanishesHoldingALock("halfclose", FaultRelay::halfClose);
    }

    private void clientVanishesHoldingALock(String application, Consumer<FaultRelay> vanish) throws Exception {
        int row = application.equals("reset") ? 1 : 2;
        String lockRow = "SELECT v FROM " + LOCK_TABLE + " WHERE id = " + row + " FOR UPDATE";
        try (TestProxy proxy = proxy(directUpstream());
             FaultRelay clientSide = FaultRelay.to("127.0.0.1", proxy.port("db"))) {
            Connection holder = target.guard().open(clientSide.port(), LOCK_USER, application);
            ExecutorService aborts = Executors.newSingleThreadExecutor();
            try {
                holder.setAutoCommit(false);
                try (Statement s = holder.createStatement()) {
                    s.executeQuery(lockRow).close();
                }
                try (Connection probe = target.guard().database().connectDirect(); Statement s = probe.createStatement()) {
                    SQLException held = catchThrowableOfType(SQLException.class,
                            () -> s.executeQuery(lockRow + " NOWAIT").close());
                    assertThat((Throwable) held).as("the row is locked by the client's transaction").isNotNull();
                }

                vanish.accept(clientSide);
                long start = System.nanoTime();
                try (Connection other = target.guard().database().connectDirect()) {
                    other.setAutoCommit(false);
                    try (Statement s = other.createStatement()) {
                        target.guard().shortLockWait(s);
                        s.executeQuery(lockRow).close(); // fails after the 1 s lock wait if still held
                    }
                    other.rollback();
                }
                System.out.printf("[faults] %s lock free %d ms after the client's %s%n",
                        target.guard().protocol(), since(start).toMillis(), application);
            } finally {
                holder.abort(aborts);
                aborts.shutdown();
            }
            awaitNoSessions(proxy);
            assertThat(proxy.scrape().value("connguard_client_sessions_closed_total", "listener", "db",
                    "application", application, "reason", "client")).isEqualTo(1);
            await().atMost(5, TimeUnit.SECONDS).untilAsserted(() -> assertThat(
                    target.guard().serverConnections(LOCK_USER)).as("the database connection is gone").isZero());
        }
    }

    // ------------------------------------------------------------------ clients that never finish the handshake

    @Test
    void silentAndSlowlorisClientsAreClosedAtHandshakeTimeoutWithoutAnUpstreamConnection() throws Exception {
        try (FaultRelay host = FaultRelay.to(target.guard().database().host(), target.guard().database().port());
             TestProxy proxy = proxy(host.hostPort())) {
            int port = proxy.port("db");
            warmGreeting(port);
            int upstreamBefore = host.accepted();
            double connectsBefore = listenerValue(proxy.scrape(), "connguard_listener_upstream_connect_seconds_count");

            try (RawClient silent = RawClient.connect(port); RawClient slowloris = RawClient.connect(port)) {
                target.readGreeting(silent.in());
                target.readGreeting(slowloris.in());
                slowloris.trickle(target.handshake("cg_fault_slowloris"), Duration.ofSeconds(1));
                for (RawClient client : List.of(silent, slowloris)) {
                    RawClient.Ending ending = client.readToEnd(HANDSHAKE_TIMEOUT.plus(SLACK).plus(SLACK));
                    assertThat(ending.how()).as("the proxy closes the connection").isNotEqualTo(RawClient.How.STILL_OPEN);
                    assertThat(ending.after()).as("closed at handshakeTimeout")
                            .isGreaterThanOrEqualTo(HANDSHAKE_TIMEOUT.minusMillis(50))
                            .isLessThan(HANDSHAKE_TIMEOUT.plus(SLACK));
                    assertHandshakeTimeoutError(ending.received());
                }
            }
            // MySQL opens the upstream as the client connects (under the listener's cap) and closes it unauthenticated.
            int early = target.opensUpstreamBeforeHandshake() ? 2 : 0;
            assertThat(host.accepted()).as("connections that reached the database host").isEqualTo(upstreamBefore + early);
            PrometheusScrape scrape = proxy.scrape();
            assertThat(listenerValue(scrape, "connguard_listener_upstream_connect_seconds_count")).isEqualTo(connectsBefore + early);
            assertThat(listenerValue(scrape, "connguard_listener_upstream_connect_errors_total")).isZero();
            awaitNoSessions(proxy);
            await().atMost(5, TimeUnit.SECONDS).untilAsserted(() -> assertThat(
                    listenerValue(proxy.scrape(), "connguard_listener_upstream_connections")).as("upstreams still open").isZero());
        }
    }

    /** MySQL greets the client from a greeting learned once per listener; learn it before counting connections. */
    private void warmGreeting(int port) throws SQLException {
        try (Connection c = target.guard().open(port, CONNECT_USER, "warm")) {
            assertThat(selectOne(c)).isEqualTo(1);
        }
    }

    // ------------------------------------------------------------------ lying and oversized length fields

    @Test
    void aTenMegabyteHandshakeIsRefusedWithoutBufferingIt() throws Exception {
        try (FaultRelay host = FaultRelay.to(target.guard().database().host(), target.guard().database().port());
             TestProxy proxy = proxy(host.hostPort())) {
            int port = proxy.port("db");
            warmGreeting(port);
            int upstreamBefore = host.accepted();
            int size = 10 * 1024 * 1024;
            byte[] header = target.handshakeHeader(Math.min(size, 0xFFFFFF));
            byte[] packet = Arrays.copyOf(header, size);
            Arrays.fill(packet, header.length, packet.length, (byte) 'x');

            MemoryPeak peak = MemoryPeak.start();
            RawClient.Ending ending;
            try (RawClient client = RawClient.connect(port)) {
                target.readGreeting(client.in());
                client.writeInBackground(packet);
                ending = client.readToEnd(Duration.ofSeconds(5));
            } finally {
                peak.stop();
            }
            assertThat(ending.how()).as("the proxy ends the connection").isNotEqualTo(RawClient.How.STILL_OPEN);
            assertThat(ending.after()).as("at once, not at handshakeTimeout").isLessThan(HANDSHAKE_TIMEOUT);
            if (!target.toldBeforeHandshake()) {
                assertThat(ending.received()).as("closed without a word, as the server does").isEmpty();
            } else if (ending.received().length > 0) { // an RST may overtake the error packet while the client still writes
                assertThat(target.protocolError(ending.received())).hasValueSatisfying(e -> assertThat(e).contains("protocol violation"));
            }
            // The pool grows by whole 4 MiB chunks at most; 10 MB held anywhere would show as more than one.
            assertThat(peak.growth()).as("growth of the proxy's pooled buffers while 10 MB arrive")
                    .isLessThanOrEqualTo(4L * 1024 * 1024);
            assertThat(host.accepted()).as("connections that reached the database host (MySQL: the early upstream)")
                    .isEqualTo(upstreamBefore + (target.opensUpstreamBeforeHandshake() ? 1 : 0));
            awaitNoSessions(proxy);
        }
    }

    @Test
    void aHandshakePacketClaimingMoreThanItSendsIsClosedAtHandshakeTimeout() throws Exception {
        try (TestProxy proxy = proxy(directUpstream())) {
            int port = proxy.port("db");
            try (RawClient client = RawClient.connect(port)) {
                target.readGreeting(client.in());
                client.write(target.handshakeHeader(1000));
                client.write(new byte[10]);
                RawClient.Ending ending = client.readToEnd(HANDSHAKE_TIMEOUT.plus(SLACK).plus(SLACK));
                assertThat(ending.how()).isNotEqualTo(RawClient.How.STILL_OPEN);
                assertThat(ending.after()).isGreaterThanOrEqualTo(HANDSHAKE_TIMEOUT.minusMillis(50))
                        .isLessThan(HANDSHAKE_TIMEOUT.plus(SLACK));
                assertHandshakeTimeoutError(ending.received());
            }
        }
    }

    /** The protocol's error for a handshake not finished in time, or nothing where the server would say nothing. */
    private void assertHandshakeTimeoutError(byte[] received) {
        if (target.toldBeforeHandshake()) {
            assertThat(target.protocolError(received)).as("the protocol's error first")
                    .hasValueSatisfying(e -> assertThat(e).contains("handshake not completed"));
        } else {
            assertThat(received).as("closed without a word, as the server does").isEmpty();
        }
    }

    @Test
    void aHandshakePacketClaimingSixteenMebibytesIsAProtocolErrorAtOnce() throws Exception {
        try (TestProxy proxy = proxy(directUpstream())) {
            int port = proxy.port("db");
            try (RawClient client = RawClient.connect(port)) {
                target.readGreeting(client.in());
                client.write(target.handshakeHeader(0xFFFFFF));
                client.write(new byte[10]);
                RawClient.Ending ending = client.readToEnd(HANDSHAKE_TIMEOUT.plus(SLACK));
                if (target.toldBeforeHandshake()) {
                    assertThat(ending.how()).isEqualTo(RawClient.How.CLOSED);
                } else { // closed at once, unread bytes and all: the kernel may answer them with a reset
                    assertThat(ending.how()).isIn(RawClient.How.CLOSED, RawClient.How.RESET);
                }
                assertThat(ending.after()).as("at once, not at handshakeTimeout").isLessThan(HANDSHAKE_TIMEOUT);
                if (target.toldBeforeHandshake()) {
                    assertThat(target.protocolError(ending.received()))
                            .hasValueSatisfying(e -> assertThat(e).contains("protocol violation"));
                } else {
                    assertThat(ending.received()).as("closed without a word, as the server does").isEmpty();
                }
            }
        }
    }

    /** Samples the pooled allocator's used memory (where the proxy's buffers live) every few milliseconds. */
    private static final class MemoryPeak {
        private final long baseline = used();
        private final AtomicLong peak = new AtomicLong(baseline);
        private final AtomicBoolean running = new AtomicBoolean(true);
        private final Thread sampler = new Thread(() -> {
            while (running.get()) {
                peak.accumulateAndGet(used(), Math::max);
                try {
                    Thread.sleep(2);
                } catch (InterruptedException e) {
                    return;
                }
            }
        }, "memory-peak");

        static MemoryPeak start() {
            MemoryPeak peak = new MemoryPeak();
            peak.sampler.setDaemon(true);
            peak.sampler.start();
            return peak;
        }

        private static long used() {
            var metric = PooledByteBufAllocator.DEFAULT.metric();
            return metric.usedDirectMemory() + metric.usedHeapMemory();
        }

        void stop() throws InterruptedException {
            running.set(false);
            sampler.join();
        }

        long growth() {
            return peak.get() - baseline;
        }
    }
}
