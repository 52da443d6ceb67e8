package io.connguard.app.guard;

import com.fasterxml.jackson.databind.JsonNode;
import com.zaxxer.hikari.HikariDataSource;
import io.connguard.core.testing.LeakGuard;
import io.connguard.core.testing.LogCapture;
import io.connguard.core.testing.PrometheusScrape;
import io.connguard.core.testing.TestProxy;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.extension.ExtendWith;

import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowableOfType;
import static org.assertj.core.api.Assertions.within;
import static org.awaitility.Awaitility.await;

/**
 * The guard's scenarios from the field, run the same way against each database through its real driver
 * (subclasses pick the database). Each asserts what a user would check: the driver's error, the rows,
 * what the database itself shows, the log line, the numbers in {@code /metrics}.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@ExtendWith(LeakGuard.class)
abstract class GuardScenarios {

    static final String APP = "cg_guard_app";
    static final String OTHER = "cg_guard_other";
    static final String REPORTING = "cg_guard_reporting";

    private final GuardTarget target;

    GuardScenarios(GuardTarget target) {
        this.target = target;
    }

    @BeforeAll
    void users() throws SQLException {
        target.resetTable();
        for (String user : List.of(APP, OTHER, REPORTING)) {
            target.ensureUser(user);
        }
    }

    private TestProxy proxy(String clients) {
        return TestProxy.start("""
                listeners:
                  - name: db
                    protocol: %s
                    listen: 127.0.0.1:0
                    upstream: %s
                clients:
                %s
                """.formatted(target.protocol(), target.database().hostPort(), clients.indent(2)));
    }

    private static String[] key(String user, String application) {
        return new String[] {"listener", "db", "user", user, "application", application};
    }

    private static String[] with(String[] labels, String... more) {
        String[] all = java.util.Arrays.copyOf(labels, labels.length + more.length);
        System.arraycopy(more, 0, all, labels.length, more.length);
        return all;
    }

    private static int selectOne(Connection c) throws SQLException {
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT 1")) {
            rs.next();
            return rs.getInt(1);
        }
    }

    // ------------------------------------------------------------------ 1. the leak from the field

    @Test
    void aLeakingPoolIsCappedAtTheDatabaseAndOnlyItsOwnBorrowsFail() throws Exception {
        try (TestProxy proxy = proxy("""
                defaults:
                  maxConnections: 5
                  queueTimeout: 2s
                """);
             HikariDataSource pool = target.pool(proxy.port("db"), APP, "leaky", 50, 6000)) {
            int port = proxy.port("db");
            AtomicInteger maxSeen = new AtomicInteger();
            AtomicBoolean watching = new AtomicBoolean(true);
            Thread watcher = new Thread(() -> {
                while (watching.get()) {
                    try {
                        maxSeen.accumulateAndGet(target.serverConnections(APP), Math::max);
                        Thread.sleep(20);
                    } catch (Exception e) {
                        return;
                    }
                }
            });
            watcher.start();
            List<Connection> leaked = new ArrayList<>();
            try {
                for (int i = 0; i < 5; i++) {
                    Connection c = pool.getConnection();
                    assertThat(selectOne(c)).isEqualTo(1);
                    leaked.add(c);
                }
                long start = System.nanoTime();
                SQLException sixth = catchThrowableOfType(SQLException.class, pool::getConnection);
                assertThat((Throwable) sixth).as("the 6th borrow fails").isNotNull();
                assertThat(sixth.getSQLState()).isEqualTo(target.tooManyConnectionsState());
                assertThat((System.nanoTime() - start) / 1e9).as("it waited queueTimeout first").isGreaterThan(1.9);

                try (Connection other = target.open(port, OTHER, "reports")) {
                    assertThat(selectOne(other)).as("another user is not affected").isEqualTo(1);
                }
                await().atMost(10, TimeUnit.SECONDS).until(() -> proxy.clients().findValues("queued").stream()
                        .allMatch(q -> q.asInt() == 0));
                PrometheusScrape scrape = proxy.scrape();
                assertThat(scrape.value("connguard_client_connections", with(key(APP, "leaky"), "state", "idle")))
                        .isEqualTo(5);
                assertThat(scrape.value("connguard_client_admissions_total",
                        with(key(APP, "leaky"), "outcome", "rejected_queue_timeout"))).isPositive();
                assertThat(target.serverConnections(APP)).isEqualTo(5);

                ExecutorService waiters = Executors.newFixedThreadPool(2);
                try {
                    List<Future<Connection>> tries = new ArrayList<>();
                    for (int i = 0; i < 2; i++) {
                        tries.add(waiters.submit(() -> target.open(port, APP, "leaky")));
                    }
                    await().atMost(5, TimeUnit.SECONDS).until(() -> proxy.clients().findValues("queued").stream()
                            .mapToInt(JsonNode::asInt).sum() == 2);
                    pool.evictConnection(leaked.remove(0));
                    // Hold what the waiters got until both have an answer: closing one would let the other in.
                    List<Connection> admitted = new ArrayList<>();
                    int rejected = 0;
                    try {
                        for (Future<Connection> attempt : tries) {
                            try {
                                Connection c = attempt.get(10, TimeUnit.SECONDS);
                                admitted.add(c);
                                assertThat(selectOne(c)).isEqualTo(1);
                            } catch (java.util.concurrent.ExecutionException e) {
                                assertThat(((SQLException) e.getCause()).getSQLState())
                                        .isEqualTo(target.tooManyConnectionsState());
                                rejected++;
                            }
                        }
                        assertThat(admitted).as("closing one leaked connection lets exactly one waiter in").hasSize(1);
                        assertThat(rejected).isEqualTo(1);
                    } finally {
                        for (Connection c : admitted) {
                            c.close();
                        }
                    }
                } finally {
                    waiters.shutdownNow();
                }
            } finally {
                watching.set(false);
                watcher.join();
                for (Connection c : leaked) {
                    pool.evictConnection(c);
                }
            }
            assertThat(maxSeen.get()).as("connections the database saw from the leaking user (cap 5)")
                    .isLessThanOrEqualTo(5 + target.connectionsBeyondTheCap());
        }
    }

    // ------------------------------------------------------------------ 2. the forgotten transaction

    @Test
    void aForgottenTransactionIsKilledRolledBackAndItsLocksFreed() throws Exception {
        target.resetTable();
        try (TestProxy proxy = proxy("""
                defaults:
                  idleInTransactionTimeout: 1s
                """);
             Connection forgetful = target.open(proxy.port("db"), APP, "forgetful")) {
            forgetful.setAutoCommit(false);
            try (Statement s = forgetful.createStatement()) {
                assertThat(s.executeUpdate("UPDATE cg_guard_rows SET v = 42 WHERE id = 1")).isEqualTo(1);
            }
            await().atMost(10, TimeUnit.SECONDS).until(() -> target.serverConnections(APP) == 0);
            SQLException next = catchThrowableOfType(SQLException.class, () -> selectOne(forgetful));
            assertThat((Throwable) next).as("the driver's next call fails").isNotNull();
            target.assertIdleInTransactionKill(next);

            try (Connection direct = target.database().connectDirect(); Statement s = direct.createStatement()) {
                try (ResultSet rs = s.executeQuery("SELECT v FROM cg_guard_rows WHERE id = 1")) {
                    rs.next();
                    assertThat(rs.getInt(1)).as("the update was rolled back").isZero();
                }
                direct.setAutoCommit(false);
                target.shortLockWait(s);
                assertThat(s.executeUpdate("UPDATE cg_guard_rows SET v = 7 WHERE id = 1"))
                        .as("the row's lock is free").isEqualTo(1);
                direct.rollback();
            }
            assertThat(proxy.scrape().value("connguard_client_sessions_closed_total",
                    with(key(APP, "forgetful"), "reason", "idle_in_transaction"))).isEqualTo(1);
        }
    }

    // ------------------------------------------------------------------ 3. the leak report

    @Test
    void anIdleSessionIsReportedOnceWithItsClientAndFingerprintAndClearedWhenUsed() throws Exception {
        try (TestProxy proxy = proxy("""
                defaults:
                  maxConnections: 1
                  queueTimeout: 200ms
                  leakDetectionThreshold: 1s
                """);
             LogCapture log = new LogCapture("io.connguard.session");
             Connection holder = target.open(proxy.port("db"), APP, "holder")) {
            try (Statement s = holder.createStatement();
                 ResultSet rs = s.executeQuery("SELECT count(*) FROM cg_guard_rows WHERE id = 7 OR 'hunter2' = 'x'")) {
                assertThat(rs.next()).isTrue();
            }
            // Idle past the threshold while its client needs another connection: a leak suspect.
            await().atMost(10, TimeUnit.SECONDS).until(() -> java.time.Instant.parse(proxy.sessions().get(0)
                    .get("stateSince").asText()).isBefore(java.time.Instant.now().minusMillis(1200)));
            SQLException refused = catchThrowableOfType(SQLException.class,
                    () -> target.open(proxy.port("db"), APP, "holder").close());
            assertThat(refused.getSQLState()).isEqualTo(target.tooManyConnectionsState());
            await().atMost(10, TimeUnit.SECONDS).until(() -> proxy.sessions().get(0).get("leakSuspect").asBoolean());
            assertThat(proxy.scrape().value("connguard_client_leak_suspects", key(APP, "holder"))).isEqualTo(1);
            // Idle for three thresholds: a repeated report would have come by now.
            await().atMost(15, TimeUnit.SECONDS).until(() -> idleLongerThan(proxy.sessions().get(0), 3000));
            List<LogCapture.Line> warnings = log.lines("WARN", "connection leak suspected");
            assertThat(warnings).as("exactly one WARN line").hasSize(1);
            LogCapture.Line line = warnings.get(0);
            assertThat(line.field("user")).isEqualTo(APP);
            assertThat(line.field("application")).isEqualTo("holder");
            assertThat(line.field("address")).isEqualTo("127.0.0.1");
            assertThat(line.field("lastStatement")).isEqualTo("SELECT count(*) FROM cg_guard_rows WHERE id = ? OR ? = ?");
            assertThat(line.message()).as("the fields name the client; the message does not repeat it")
                    .doesNotContain("user=").contains("a connection of the same client")
                    .endsWith("last statement: SELECT count(*) FROM cg_guard_rows WHERE id = ? OR ? = ?");
            assertThat(line.text()).doesNotContain("hunter2").doesNotContain("= 7");
            JsonNode session = proxy.sessions().get(0);
            assertThat(session.get("lastStatement").asText())
                    .isEqualTo("SELECT count(*) FROM cg_guard_rows WHERE id = ? OR ? = ?");

            assertThat(selectOne(holder)).isEqualTo(1);
            assertThat(proxy.sessions().get(0).get("leakSuspect").asBoolean()).as("using it clears the flag").isFalse();
            assertThat(proxy.scrape().value("connguard_client_leak_suspects", key(APP, "holder"))).isZero();
        }
    }

    @Test
    void aHealthyPoolsSpareConnectionsAreNoLeakSuspectsButALeakedOneUnderLoadIs() throws Exception {
        try (TestProxy proxy = proxy("""
                defaults:
                  maxConnections: 10
                  leakDetectionThreshold: 1s
                """);
             LogCapture log = new LogCapture("io.connguard.session");
             HikariDataSource pool = target.pool(proxy.port("db"), APP, "steady", 5, 5000)) {
            pool.setMinimumIdle(5);
            await().atMost(10, TimeUnit.SECONDS).until(() -> proxy.sessions().size() == 5);
            // Borrowed once every 100 ms and returned: one connection works, the spares idle past the threshold.
            long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(3);
            while (System.nanoTime() < until) {
                try (Connection c = pool.getConnection()) {
                    assertThat(selectOne(c)).isEqualTo(1);
                }
                Thread.sleep(100);
            }
            assertThat(proxy.scrape().value("connguard_client_leak_suspects", key(APP, "steady"))).isZero();
            assertThat(log.lines("WARN", "connection leak suspected")).isEmpty();

            Connection leaked = pool.getConnection();
            try {
                assertThat(selectOne(leaked)).isEqualTo(1);
                // Never returned: wait until every session, the leaked one included, is idle past the threshold.
                await().atMost(15, TimeUnit.SECONDS).until(() -> {
                    for (JsonNode session : proxy.sessions()) {
                        if (!idleLongerThan(session, 1200)) {
                            return false;
                        }
                    }
                    return true;
                });
                ExecutorService load = Executors.newFixedThreadPool(4);
                try {
                    List<Future<?>> workers = new ArrayList<>();
                    for (int i = 0; i < 4; i++) {
                        workers.add(load.submit(() -> {
                            for (int n = 0; n < 20; n++) {
                                try (Connection c = pool.getConnection(); Statement st = c.createStatement()) {
                                    st.execute(target.sleep(0.05));
                                }
                            }
                            return null;
                        }));
                    }
                    for (Future<?> worker : workers) {
                        worker.get(60, TimeUnit.SECONDS);
                    }
                } finally {
                    load.shutdownNow();
                }
                await().atMost(10, TimeUnit.SECONDS).until(() ->
                        proxy.scrape().value("connguard_client_leak_suspects", key(APP, "steady")) == 1);
                assertThat(log.lines("WARN", "connection leak suspected")).hasSize(1).allSatisfy(line -> {
                    assertThat(line.field("application")).isEqualTo("steady");
                    assertThat(line.message()).contains("other connections of the same client were busy at once");
                });
            } finally {
                leaked.close();
            }
        }
    }

    private static List<String> applications(TestProxy proxy) {
        List<String> names = new ArrayList<>();
        proxy.sessions().forEach(session -> names.add(session.get("application").asText()));
        return names;
    }

    /** Whether /sessions shows {@code session} in its state (idle) for longer than {@code millis}. */
    private static boolean idleLongerThan(JsonNode session, long millis) {
        return java.time.Instant.parse(session.get("stateSince").asText())
                .isBefore(java.time.Instant.now().minusMillis(millis));
    }

    // ------------------------------------------------------------------ 4. rules

    @Test
    void rulesGiveReportingALowerCapAndBatchJobsALongerTransactionTimeout() throws Exception {
        try (TestProxy proxy = proxy("""
                defaults:
                  maxConnections: 4
                  queueTimeout: 500ms
                  idleInTransactionTimeout: 1s
                rules:
                  - match: { user: %s }
                    maxConnections: 2
                  - match: { application: "batch-*" }
                    idleInTransactionTimeout: 30s
                """.formatted(REPORTING))) {
            int port = proxy.port("db");
            List<Connection> held = new ArrayList<>();
            try {
                for (int i = 0; i < 2; i++) {
                    held.add(target.open(port, REPORTING, "dashboards"));
                }
                SQLException third = catchThrowableOfType(SQLException.class,
                        () -> target.open(port, REPORTING, "dashboards").close());
                assertThat(third.getSQLState()).isEqualTo(target.tooManyConnectionsState());
                for (int i = 0; i < 4; i++) {
                    held.add(target.open(port, OTHER, "web"));
                }
                SQLException fifth = catchThrowableOfType(SQLException.class,
                        () -> target.open(port, OTHER, "web").close());
                assertThat(fifth.getSQLState()).isEqualTo(target.tooManyConnectionsState());
                assertThat(proxy.scrape().value("connguard_client_max_connections", key(REPORTING, "dashboards")))
                        .isEqualTo(2);
                assertThat(proxy.scrape().value("connguard_client_max_connections", key(OTHER, "web"))).isEqualTo(4);
            } finally {
                for (Connection c : held) {
                    c.close();
                }
            }
            target.resetTable();
            try (Connection batch = target.open(port, APP, "batch-nightly");
                 Connection web = target.open(port, APP, "web")) {
                batch.setAutoCommit(false);
                web.setAutoCommit(false);
                try (Statement b = batch.createStatement(); Statement w = web.createStatement()) {
                    b.executeUpdate("UPDATE cg_guard_rows SET v = 1 WHERE id = 2");
                    w.executeUpdate("UPDATE cg_guard_rows SET v = 1 WHERE id = 3");
                }
                // The default idleInTransactionTimeout (1s) ends web's transaction; the batch rule's 30s keeps batch's.
                await().atMost(15, TimeUnit.SECONDS).until(() -> applications(proxy).equals(List.of("batch-nightly")));
                batch.commit();
                assertThat(selectOne(batch)).as("the batch job's transaction outlived the default timeout").isEqualTo(1);
                target.assertIdleInTransactionKill(catchThrowableOfType(SQLException.class, () -> selectOne(web)));
            }
        }
    }

    // ------------------------------------------------------------------ 5. reload

    @Test
    void reloadLowersACapWithoutKillingAndRaisesItToAdmitTheWaiter() throws Exception {
        String clients = """
                defaults:
                  maxConnections: %d
                  queueTimeout: 20s
                """;
        try (TestProxy proxy = proxy(clients.formatted(3))) {
            int port = proxy.port("db");
            List<Connection> held = new ArrayList<>();
            ExecutorService waiter = Executors.newSingleThreadExecutor();
            try {
                for (int i = 0; i < 3; i++) {
                    held.add(target.open(port, APP, "reloaded"));
                }
                assertThat(proxy.reload(configWithCap(clients, 2)).ok()).isTrue();
                for (Connection c : held) {
                    assertThat(selectOne(c)).as("a lowered cap kills nobody").isEqualTo(1);
                }
                Future<Connection> fourth = waiter.submit(() -> target.open(port, APP, "reloaded"));
                await().atMost(5, TimeUnit.SECONDS).until(() -> proxy.clients().get(0).get("queued").asInt() == 1);
                held.remove(0).close();
                // Once its slot is given back 2 sessions remain, the lowered cap: the waiter must still wait.
                await().atMost(10, TimeUnit.SECONDS).until(() -> proxy.clients().get(0).get("total").asInt() == 2);
                assertThat(proxy.clients().get(0).get("queued").asInt()).isEqualTo(1);
                assertThat(fourth).as("2 sessions still hold the lowered cap of 2").isNotDone();
                assertThat(proxy.reload(configWithCap(clients, 4)).ok()).isTrue();
                try (Connection admitted = fourth.get(10, TimeUnit.SECONDS)) {
                    assertThat(selectOne(admitted)).as("the raised cap admits the waiter").isEqualTo(1);
                }
                assertThat(proxy.scrape().value("connguard_client_max_connections", key(APP, "reloaded"))).isEqualTo(4);
            } finally {
                waiter.shutdownNow();
                for (Connection c : held) {
                    c.close();
                }
            }
        }
    }

    private String configWithCap(String clients, int cap) {
        return """
                listeners:
                  - name: db
                    protocol: %s
                    listen: 127.0.0.1:0
                    upstream: %s
                clients:
                %s
                """.formatted(target.protocol(), target.database().hostPort(), clients.formatted(cap).indent(2));
    }

    @Test
    void aLongQueryInsideATransactionIsNotIdle() throws Exception {
        try (TestProxy proxy = proxy("defaults:\n  idleInTransactionTimeout: 1s");
             Connection c = target.open(proxy.port("db"), APP, "patient")) {
            c.setAutoCommit(false);
            try (Statement s = c.createStatement()) {
                s.executeUpdate("UPDATE cg_guard_rows SET v = v WHERE id = 4");
                s.execute(target.sleep(2.5));
            }
            c.commit();
            assertThat(selectOne(c)).as("a request in flight is never idle").isEqualTo(1);
        }
    }

    @Test
    void aCapKeyedByUserAloneIsReportedAsPerUser() throws Exception {
        try (TestProxy proxy = proxy("""
                identity: [user]
                defaults:
                  maxConnections: 1
                  queueTimeout: 0
                """);
             Connection first = target.open(proxy.port("db"), APP, "one")) {
            SQLException second = catchThrowableOfType(SQLException.class,
                    () -> target.open(proxy.port("db"), APP, "another-app").close());
            assertThat(second.getSQLState()).isEqualTo(target.perUserTooManyConnectionsState());
            assertThat(second.getMessage()).contains("too many connections for client user=" + APP);
            assertThat(selectOne(first)).isEqualTo(1);
        }
    }

    @Test
    void newConnectionsDuringADrainGetTheShutdownErrorWhileOpenOnesFinish() throws Exception {
        TestProxy proxy = TestProxy.start("""
                listeners:
                  - name: db
                    protocol: %s
                    listen: 127.0.0.1:0
                    upstream: %s
                shutdown:
                  drainTimeout: 30s
                """.formatted(target.protocol(), target.database().hostPort()));
        try (Connection open = target.open(proxy.port("db"), APP, "draining")) {
            proxy.server().drain();
            await().atMost(5, TimeUnit.SECONDS).until(() -> proxy.server().drainControl().refusing());
            SQLException refused = catchThrowableOfType(SQLException.class,
                    () -> target.open(proxy.port("db"), APP, "late").close());
            assertThat(refused.getSQLState()).isEqualTo(target.drainingState());
            assertThat(refused.getMessage()).contains("shutting down");
            assertThat(selectOne(open)).as("the open session finishes its work").isEqualTo(1);
        } finally {
            assertThat(proxy.server().terminated().get(10, TimeUnit.SECONDS)).isZero();
            proxy.close();
        }
    }

    // ------------------------------------------------------------------ observability

    @Test
    void busySecondsGrowByTheTimeSessionsSpendInQueries() throws Exception {
        try (TestProxy proxy = proxy("defaults:\n  maxConnections: 10")) {
            int port = proxy.port("db");
            List<Connection> sessions = new ArrayList<>();
            for (int i = 0; i < 3; i++) {
                sessions.add(target.open(port, APP, "sleepy"));
            }
            double before = proxy.scrape().value("connguard_client_busy_seconds_total", key(APP, "sleepy"));
            ExecutorService pool = Executors.newFixedThreadPool(3);
            try {
                List<Future<?>> running = new ArrayList<>();
                for (Connection c : sessions) {
                    running.add(pool.submit(() -> {
                        try (Statement s = c.createStatement()) {
                            s.execute(target.sleep(1.5));
                        }
                        return null;
                    }));
                }
                await().atMost(5, TimeUnit.SECONDS).until(() -> proxy.scrape().value("connguard_client_connections",
                        with(key(APP, "sleepy"), "state", "active")) == 3);
                for (Future<?> r : running) {
                    r.get(10, TimeUnit.SECONDS);
                }
            } finally {
                pool.shutdownNow();
                for (Connection c : sessions) {
                    c.close();
                }
            }
            double busy = proxy.scrape().value("connguard_client_busy_seconds_total", key(APP, "sleepy")) - before;
            // 3 sessions × 1.5 s of sleep, plus each statement's own round trips: tolerance 0.45 s in all.
            assertThat(busy).isCloseTo(4.5, within(0.45));
        }
    }

    // ------------------------------------------------------------------ 9. what the logs never hold

    @Test
    void passwordsAndLiteralValuesNeverReachTheLogsEvenAtTrace() throws Exception {
        target.resetTable();
        ch.qos.logback.classic.Logger connguard =
                (ch.qos.logback.classic.Logger) org.slf4j.LoggerFactory.getLogger("io.connguard");
        ch.qos.logback.classic.Level level = connguard.getLevel();
        connguard.setLevel(ch.qos.logback.classic.Level.TRACE);
        String wrongPassword = "wr0ng-S3cret-pw";
        String literal = "l1teral-S3cret";
        try (TestProxy proxy = proxy("""
                defaults:
                  idleInTransactionTimeout: 1s
                  leakDetectionThreshold: 1s
                """);
             LogCapture log = new LogCapture("io.connguard")) {
            Connection c = target.open(proxy.port("db"), APP, "secrets");
            c.setAutoCommit(false);
            try (Statement s = c.createStatement()) {
                s.executeUpdate("UPDATE cg_guard_rows SET v = 5 WHERE id = 3 AND '" + literal + "' <> ''");
            }
            await().atMost(10, TimeUnit.SECONDS).until(() -> target.serverConnections(APP) == 0);
            // Closing rolls back first; Connector/J reports the killed session there, pgjdbc does not.
            org.assertj.core.api.Assertions.catchThrowable(c::close);
            java.util.Properties props = new java.util.Properties();
            props.setProperty("user", target.passwordCheckedUser());
            props.setProperty("password", wrongPassword);
            int loginTimeout = java.sql.DriverManager.getLoginTimeout(); // JVM-wide: given back for later tests
            java.sql.DriverManager.setLoginTimeout(10);
            SQLException refused;
            try {
                refused = catchThrowableOfType(SQLException.class,
                        () -> java.sql.DriverManager.getConnection(target.url(proxy.port("db"), "secrets"), props).close());
            } finally {
                java.sql.DriverManager.setLoginTimeout(loginTimeout);
            }
            assertThat((Throwable) refused).as("a wrong password is refused by the database").isNotNull();
            await().atMost(10, TimeUnit.SECONDS).until(() -> proxy.sessions().isEmpty());

            List<LogCapture.Line> lines = log.lines();
            assertThat(lines).as("the kill was logged, with its statement")
                    .anyMatch(l -> l.text().contains("UPDATE cg_guard_rows SET v = ? WHERE id = ? AND ? <> ?"));
            for (LogCapture.Line line : lines) {
                assertThat(line.text()).doesNotContain(GuardTarget.PASSWORD, wrongPassword, literal);
            }
        } finally {
            connguard.setLevel(level);
        }
    }
}
