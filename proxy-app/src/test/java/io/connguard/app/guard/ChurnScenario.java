package io.connguard.app.guard;

import io.connguard.core.testing.LeakGuard;
import io.connguard.core.testing.TestProxy;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInstance;
import org.junit.jupiter.api.extension.ExtendWith;

import java.sql.Connection;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowableOfType;
import static org.awaitility.Awaitility.await;

/**
 * Churn under caps: 300 client threads connect, query, hold transactions and disconnect (politely and
 * abruptly) for a while; afterwards every count returns to zero and no permit was lost.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@ExtendWith(LeakGuard.class)
abstract class ChurnScenario {

    static final int THREADS = 300;
    static final long SECONDS = Long.getLong("connguard.churn.seconds", 60);
    static final int CAP = 10;
    static final List<String> USERS = List.of(GuardScenarios.APP, GuardScenarios.OTHER, GuardScenarios.REPORTING);

    private final GuardTarget target;

    ChurnScenario(GuardTarget target) {
        this.target = target;
    }

    @Test
    void threeHundredThreadsChurnAndEveryCountReturnsToZero() throws Exception {
        target.resetTable();
        for (String user : USERS) {
            target.ensureUser(user);
        }
        try (TestProxy proxy = TestProxy.start("""
                listeners:
                  - name: db
                    protocol: %s
                    listen: 127.0.0.1:0
                    upstream: %s
                clients:
                  defaults:
                    maxConnections: %d
                    queueTimeout: 1s
                    maxQueued: 1000
                    idleInTransactionTimeout: 2s
                """.formatted(target.protocol(), target.database().hostPort(), CAP))) {
            int port = proxy.port("db");
            AtomicLong queries = new AtomicLong();
            AtomicInteger rejected = new AtomicInteger();
            AtomicInteger aborted = new AtomicInteger();
            Map<String, Throwable> unexpected = new ConcurrentHashMap<>();
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(SECONDS);
            ExecutorService pool = Executors.newFixedThreadPool(THREADS);
            ExecutorService aborts = Executors.newCachedThreadPool();
            for (int t = 0; t < THREADS; t++) {
                String user = USERS.get(t % USERS.size());
                pool.execute(() -> {
                    ThreadLocalRandom random = ThreadLocalRandom.current();
                    while (System.nanoTime() < deadline) {
                        try {
                            Connection c = target.open(port, user, "churn");
                            try (Statement s = c.createStatement()) {
                                if (random.nextBoolean()) {
                                    c.setAutoCommit(false);
                                    s.executeUpdate("UPDATE cg_guard_rows SET v = v + 1 WHERE id = "
                                            + (1 + random.nextInt(10)));
                                    Thread.sleep(random.nextInt(20));
                                    if (random.nextInt(4) == 0) {
                                        c.abort(aborts);
                                        aborted.incrementAndGet();
                                        continue;
                                    }
                                    c.commit();
                                } else {
                                    s.execute("SELECT 1");
                                }
                                queries.incrementAndGet();
                            }
                            if (random.nextInt(5) == 0) {
                                c.abort(aborts);
                                aborted.incrementAndGet();
                            } else {
                                c.close();
                            }
                        } catch (SQLException e) {
                            if (target.tooManyConnectionsState().equals(e.getSQLState())) {
                                rejected.incrementAndGet();
                            } else {
                                unexpected.putIfAbsent(e.getClass().getSimpleName() + " " + e.getSQLState()
                                        + " " + e.getMessage(), e);
                            }
                        } catch (InterruptedException e) {
                            return;
                        }
                    }
                });
            }
            pool.shutdown();
            assertThat(pool.awaitTermination(SECONDS + 120, TimeUnit.SECONDS)).isTrue();
            aborts.shutdown();
            assertThat(queries.get()).isPositive();
            assertThat(aborted.get()).as("some sessions ended abruptly").isPositive();
            assertThat(unexpected.keySet()).as("errors other than the cap's rejection, with their causes: %s",
                    unexpected.values().stream().map(ChurnScenario::causes).toList()).isEmpty();

            await().atMost(30, TimeUnit.SECONDS).untilAsserted(() -> {
                assertThat(proxy.clients()).as("/clients after the churn").isEmpty();
                assertThat(proxy.sessions()).isEmpty();
                for (String user : USERS) {
                    assertThat(target.serverConnections(user)).as("database connections of %s", user).isZero();
                }
            });

            List<Connection> full = new ArrayList<>();
            try {
                for (int i = 0; i < CAP; i++) {
                    full.add(target.open(port, GuardScenarios.APP, "churn"));
                }
                SQLException over = catchThrowableOfType(SQLException.class,
                        () -> target.open(port, GuardScenarios.APP, "churn").close());
                assertThat((Throwable) over).as("the cap still admits exactly maxConnections").isNotNull();
                assertThat(over.getSQLState()).isEqualTo(target.tooManyConnectionsState());
            } finally {
                for (Connection c : full) {
                    c.close();
                }
            }
        }
    }

    /** An exception and its causes, one message each, so a failure says what the driver met. */
    private static String causes(Throwable e) {
        StringBuilder out = new StringBuilder();
        for (Throwable t = e; t != null; t = t.getCause() == t ? null : t.getCause()) {
            out.append(out.length() == 0 ? "" : " <- ").append(t.getClass().getSimpleName()).append(": ").append(t.getMessage());
        }
        return out.toString();
    }
}
