package io.connguard.app.fleet;

import io.connguard.core.testing.Database;
import io.connguard.core.testing.PrometheusScrape;
import io.connguard.core.testing.RealDatabases;
import io.connguard.core.testing.RedisProcess;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInfo;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/**
 * Fleet budgets across three connguard processes (the packaged jar, as three pods would run it) sharing one
 * Redis, against the real PostgreSQL and MariaDB. The database is asked itself how many connections it
 * has for the test's own client (an application name on PostgreSQL, the {@code cg_fleet} user on MariaDB),
 * never a global count, since other tests use the same servers.
 */
class FleetIT {

    private static final int SHARED_REDIS = 6379;
    private static final String MY_USER = "cg_fleet";
    private static final String MY_PASSWORD = "cg_fleet_pw";

    @TempDir
    Path dir;

    private final List<Replica> replicas = new ArrayList<>();
    private final List<Connection> open = new ArrayList<>();
    private final ExecutorService clients = Executors.newCachedThreadPool();
    private final String fleet = "it-" + UUID.randomUUID().toString().substring(0, 8);
    private final String app = "fleet-it-" + fleet;

    private String testName = "test";

    private int loginTimeout;

    @BeforeEach
    void name(TestInfo info) {
        testName = info.getTestMethod().map(java.lang.reflect.Method::getName).orElse("test");
        // The JVM-wide login timeout is whatever an earlier test class left: HikariCP sets it from its
        // connectionTimeout, and Connector/J ends a handshake that waits longer (here: a connection queued
        // for its 20 s queueTimeout) as a communications failure. These clients wait as long as connguard says.
        loginTimeout = DriverManager.getLoginTimeout();
        DriverManager.setLoginTimeout(0);
    }

    @AfterEach
    void stop() throws Exception {
        for (Connection c : open) {
            try {
                c.close();
            } catch (SQLException ignored) {
                // the replica behind it may be gone already
            }
        }
        clients.shutdownNow();
        DriverManager.setLoginTimeout(loginTimeout);
        for (Replica replica : replicas) {
            replica.close();
            // The whole log, for a failed run: target/fleet-it-logs/<test>-<replica>.log.
            Path logs = Files.createDirectories(Path.of("target", "fleet-it-logs"));
            Files.writeString(logs.resolve(testName + "-" + replica.name() + ".log"), replica.log());
            // What each replica said about its leases, for the report of a failed run.
            String[] lines = replica.log().lines().filter(l -> l.contains("Fleet") || l.contains("fleet")
                    || l.contains("rejected")).toArray(String[]::new);
            System.out.println("---- replica " + replica.name() + " (" + lines.length + " fleet lines, last 80)");
            for (int i = Math.max(0, lines.length - 80); i < lines.length; i++) {
                System.out.println(lines[i]);
            }
        }
    }

    @Test
    void fifteenConnectionsOfferedThroughThreeReplicasNeverMakeMoreThanTheFleetCapOfSix() throws Exception {
        startReplicas(SHARED_REDIS, "15s", 20, "30s", 6);
        for (Database.Kind kind : List.of(Database.Kind.POSTGRES, Database.Kind.MYSQL)) {
            AtomicInteger most = new AtomicInteger();
            java.util.concurrent.atomic.AtomicReference<String> atMost = new java.util.concurrent.atomic.AtomicReference<>("");
            AtomicBoolean watching = new AtomicBoolean(true);
            CompletableFuture<Void> watcher = CompletableFuture.runAsync(() -> {
                while (watching.get()) {
                    List<String> rows = serverConnections(kind);
                    if (rows.size() > most.get()) {
                        most.set(rows.size());
                        atMost.set(String.join("\n", rows));
                    }
                    sleep(20);
                }
            }, clients);
            List<CompletableFuture<Void>> offered = new ArrayList<>();
            for (int i = 0; i < 15; i++) {
                Replica via = replicas.get(i % 3);
                offered.add(CompletableFuture.runAsync(() -> {
                    try (Connection c = connect(kind, via); Statement s = c.createStatement()) {
                        s.execute(kind == Database.Kind.POSTGRES ? "SELECT pg_sleep(0.6)" : "SELECT SLEEP(0.6)");
                    } catch (Exception e) {
                        throw new AssertionError(kind + " through " + via.name() + ": " + e, e);
                    }
                }, clients));
            }
            CompletableFuture.allOf(offered.toArray(CompletableFuture[]::new)).get(120, TimeUnit.SECONDS);
            watching.set(false);
            watcher.get(10, TimeUnit.SECONDS);
            System.out.printf("FleetIT: %s: at most %d connections at once on the server for 15 offered%n", kind, most.get());
            assertThat(most.get()).as("%s: the most connections the database saw for the client at once:%n%s", kind,
                            atMost.get())
                    .isLessThanOrEqualTo(6).isGreaterThanOrEqualTo(4);
            double queued = 0;
            for (Replica replica : replicas) {
                queued += metrics(replica).sum("connguard_client_admissions_total", "outcome", "queued",
                        "listener", listener(kind));
            }
            assertThat(queued).as("%s: connections that waited for a fleet lease", kind).isPositive();
        }
    }

    @Test
    void theShareOfAReplicaKilledWithSigkillGoesToTheSurvivorsWithinLeaseTtlPlusOneSecond() throws Exception {
        startReplicas(SHARED_REDIS, "3s", 20, "30s", 6);
        Replica doomed = replicas.get(0);
        for (int i = 0; i < 6; i++) {
            open.add(connect(Database.Kind.POSTGRES, doomed));
        }
        assertThat(serverCount(Database.Kind.POSTGRES)).isEqualTo(6);
        List<CompletableFuture<Connection>> waiting = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            Replica via = replicas.get(1 + i % 2);
            waiting.add(CompletableFuture.supplyAsync(() -> {
                try {
                    return connect(Database.Kind.POSTGRES, via);
                } catch (SQLException e) {
                    throw new AssertionError(e);
                }
            }, clients));
        }
        await().atMost(Duration.ofSeconds(90)).until(() -> queued(replicas.get(1)) + queued(replicas.get(2)) == 3);
        assertThat(waiting).noneMatch(CompletableFuture::isDone);
        assertThat(serverCount(Database.Kind.POSTGRES)).isEqualTo(6);

        long killed = System.nanoTime();
        doomed.kill();
        // The share is used once the survivors admit their waiters (each then opens its upstream connection):
        // their queues empty. Polled through /metrics, which adds its own delay to the measured time.
        await().atMost(Duration.ofSeconds(30)).pollInterval(Duration.ofMillis(50))
                .until(() -> queued(replicas.get(1)) + queued(replicas.get(2)) == 0);
        Duration took = Duration.ofNanos(System.nanoTime() - killed);
        CompletableFuture.allOf(waiting.toArray(CompletableFuture[]::new)).get(60, TimeUnit.SECONDS);
        Duration connected = Duration.ofNanos(System.nanoTime() - killed);
        for (CompletableFuture<Connection> w : waiting) {
            open.add(w.get());
        }
        System.out.printf("FleetIT: SIGKILL to the survivors' 3 waiters admitted: %d ms, connected: %d ms (leaseTtl 3 s)%n",
                took.toMillis(), connected.toMillis());
        assertThat(took).as("from SIGKILL to the survivors' waiters admitted").isLessThan(Duration.ofSeconds(4));
        assertThat(serverCount(Database.Kind.POSTGRES)).isEqualTo(3);
        for (Connection c : open.subList(6, 9)) {
            assertThat(selectOne(c)).isEqualTo(1);
        }
    }

    @Test
    void whenTheStoreStopsLocalCapsHoldAndWhenItReturnsTheBudgetIsEnforcedAgain() throws Exception {
        try (RedisProcess redis = RedisProcess.start(dir)) {
            startReplicas(redis.port(), "3s", 3, "20s", 4);
            Replica a = replicas.get(0);
            Replica b = replicas.get(1);
            Replica c = replicas.get(2);
            Database.Kind my = Database.Kind.MYSQL;
            List<Connection> held = new ArrayList<>();
            for (Replica r : List.of(a, a, b, b)) {
                held.add(connect(my, r));
            }
            open.addAll(held);
            CompletableFuture<Connection> fleetOnly = connectLater(my, c);
            await().atMost(Duration.ofSeconds(60)).until(() -> queued(c) == 1);
            assertThat(serverConnections(my)).as("the database's connections of %s", MY_USER).hasSize(4);

            redis.stop();
            // Waiting only for the fleet's budget, it is admitted by the local caps once the store is away.
            open.add(fleetOnly.get(15, TimeUnit.SECONDS));
            for (Replica r : replicas) {
                await().atMost(Duration.ofSeconds(15)).until(() -> storeUp(r) == 0.0);
                String ready = r.get("/readyz");
                assertThat(ready).startsWith("200\n").contains("unreachable, per-process caps only");
            }
            open.add(connect(my, a));
            assertThat(serverCount(my)).isEqualTo(6);
            // A's own cap of 3 still holds: a fourth waits its queueTimeout and is refused as over a cap.
            long asked = System.nanoTime();
            try {
                open.add(connect(my, a));
                throw new AssertionError("a fourth connection through A went over its local cap");
            } catch (SQLException e) {
                assertThat(e.getErrorCode()).as(e.getMessage()).isEqualTo(1040);
            }
            assertThat(Duration.ofNanos(System.nanoTime() - asked)).as("refused after its queueTimeout of 20 s")
                    .isGreaterThan(Duration.ofSeconds(19));
            for (Connection held1 : open) {
                assertThat(selectOne(held1)).as("nothing was dropped while the store was away").isEqualTo(1);
            }
            for (Replica r : replicas) {
                assertThat(r.log().split("does not answer", -1).length - 1).as("one WARN per outage on %s", r.name())
                        .isEqualTo(1);
            }

            redis.start();
            for (Replica r : replicas) {
                await().atMost(Duration.ofSeconds(30)).until(() -> storeUp(r) == 1.0);
            }
            String leases = "connguard:{" + fleet + "}:my/" + MY_USER + "/test//:leases";
            await().atMost(Duration.ofSeconds(15)).until(() -> redis.command("ZCARD", leases).equals(":6"));
            // Six live holders against a budget of four: nobody is killed, and nobody new gets in.
            CompletableFuture<Connection> late = connectLater(my, b);
            await().atMost(Duration.ofSeconds(30)).until(() -> queued(b) == 1);
            Thread.sleep(1000);
            assertThat(late).isNotDone();
            assertThat(serverCount(my)).isEqualTo(6);
            for (Connection held1 : open) {
                assertThat(selectOne(held1)).isEqualTo(1);
            }
            // Three leave: 3 < 4, the waiter gets the freed lease.
            for (Connection c1 : open.subList(0, 2)) {
                c1.close();
            }
            open.get(open.size() - 1).close();
            open.add(late.get(15, TimeUnit.SECONDS));
            assertThat(serverCount(my)).isLessThanOrEqualTo(4);
        }
    }

    // ------------------------------------------------------------------ helpers

    private void startReplicas(int redisPort, String ttl, int localCap, String queueTimeout, int fleetCap)
            throws Exception {
        // The MySQL client is a user of its own, shared by the tests: the database may still be tearing down
        // the previous test's connections (slowly when it is busy), and those would be counted here.
        await().atMost(Duration.ofSeconds(30)).until(() -> serverCount(Database.Kind.MYSQL) == 0);
        Database pg = RealDatabases.postgres();
        Database my = RealDatabases.mysql();
        String yaml = """
                admin:
                  listen: 127.0.0.1:0
                listeners:
                  - name: pg
                    protocol: postgres
                    listen: 127.0.0.1:0
                    upstream: %s
                  - name: my
                    protocol: mysql
                    listen: 127.0.0.1:0
                    upstream: %s
                clients:
                  defaults:
                    maxConnections: %d
                    queueTimeout: %s
                  rules:
                    - match: { application: "%s" }
                      fleetMaxConnections: %d
                    - match: { user: %s }
                      fleetMaxConnections: %d
                fleet:
                  store: redis://127.0.0.1:%d/0
                  name: %s
                  leaseTtl: %s
                shutdown:
                  drainTimeout: 2s
                logging:
                  level: debug
                ioThreads: 1
                """.formatted(pg.hostPort(), my.hostPort(), localCap, queueTimeout, app, fleetCap, MY_USER, fleetCap,
                redisPort, fleet, ttl);
        List<CompletableFuture<Replica>> starting = new ArrayList<>();
        for (String name : List.of("a", "b", "c")) {
            starting.add(CompletableFuture.supplyAsync(() -> {
                try {
                    return Replica.start(dir, name, yaml);
                } catch (IOException | InterruptedException e) {
                    throw new AssertionError(e);
                }
            }));
        }
        for (CompletableFuture<Replica> r : starting) {
            replicas.add(r.get(90, TimeUnit.SECONDS));
        }
        for (Replica r : replicas) {
            await().atMost(Duration.ofSeconds(60)).until(() -> storeUp(r) == 1.0);
        }
    }

    private Connection connect(Database.Kind kind, Replica via) throws SQLException {
        Properties props = new Properties();
        String url;
        try {
            if (kind == Database.Kind.POSTGRES) {
                Database pg = RealDatabases.postgres();
                url = pg.jdbcUrl("127.0.0.1", via.port("postgres"));
                props.setProperty("user", pg.user());
                if (pg.password() != null) {
                    props.setProperty("password", pg.password());
                }
                props.setProperty("ApplicationName", app);
                props.setProperty("assumeMinServerVersion", "9.0");
                props.setProperty("loginTimeout", "60");
            } else {
                url = RealDatabases.mysql().jdbcUrl("127.0.0.1", via.port("mysql"));
                props.setProperty("user", MY_USER);
                props.setProperty("password", MY_PASSWORD);
                props.setProperty("sslMode", "DISABLED");
                props.setProperty("allowPublicKeyRetrieval", "true");
                props.setProperty("connectTimeout", "60000");
            }
        } catch (IOException e) {
            throw new SQLException(e);
        }
        return DriverManager.getConnection(url, props);
    }

    private CompletableFuture<Connection> connectLater(Database.Kind kind, Replica via) {
        return CompletableFuture.supplyAsync(() -> {
            try {
                return connect(kind, via);
            } catch (SQLException e) {
                throw new AssertionError(e);
            }
        }, clients);
    }

    /**
     * The database's connections for the test's client, one line each (id, command, state, seconds), asked
     * of the database itself: what a failed count printed.
     */
    private List<String> serverConnections(Database.Kind kind) {
        Database db = kind == Database.Kind.POSTGRES ? RealDatabases.postgres() : RealDatabases.mysql();
        String sql = kind == Database.Kind.POSTGRES
                ? "SELECT pid, state, backend_start::text, client_port FROM pg_stat_activity WHERE application_name = '" + app + "'"
                : "SELECT ID, COMMAND, STATE, TIME FROM information_schema.PROCESSLIST WHERE USER = '" + MY_USER + "'";
        List<String> rows = new ArrayList<>();
        try (Connection c = db.connectDirect(); Statement s = c.createStatement(); ResultSet rs = s.executeQuery(sql)) {
            while (rs.next()) {
                rows.add(rs.getString(1) + " " + rs.getString(2) + " " + rs.getString(3) + " " + rs.getString(4));
            }
            return rows;
        } catch (SQLException e) {
            throw new AssertionError("cannot list " + kind + " connections: " + e, e);
        }
    }

    /** How many connections the database has for the test's client, asked of the database itself. */
    private int serverCount(Database.Kind kind) {
        Database db = kind == Database.Kind.POSTGRES ? RealDatabases.postgres() : RealDatabases.mysql();
        String sql = kind == Database.Kind.POSTGRES
                ? "SELECT count(*) FROM pg_stat_activity WHERE application_name = '" + app + "'"
                : "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = '" + MY_USER + "'";
        try (Connection c = db.connectDirect(); Statement s = c.createStatement(); ResultSet rs = s.executeQuery(sql)) {
            rs.next();
            return rs.getInt(1);
        } catch (SQLException e) {
            throw new AssertionError("cannot count " + kind + " connections: " + e, e);
        }
    }

    private static int selectOne(Connection c) throws SQLException {
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT 1")) {
            rs.next();
            return rs.getInt(1);
        }
    }

    private static String listener(Database.Kind kind) {
        return kind == Database.Kind.POSTGRES ? "pg" : "my";
    }

    private static PrometheusScrape metrics(Replica replica) throws IOException, InterruptedException {
        String reply = replica.get("/metrics");
        return PrometheusScrape.parse(reply.substring(reply.indexOf('\n') + 1));
    }

    private static double queued(Replica replica) throws IOException, InterruptedException {
        return metrics(replica).sum("connguard_client_queued");
    }

    private double storeUp(Replica replica) throws IOException, InterruptedException {
        return metrics(replica).value("connguard_fleet_store_up", "fleet", fleet);
    }

    private static void sleep(long millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
