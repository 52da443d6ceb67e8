package io.connguard.mysql;

import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;
import io.connguard.core.testing.LeakGuard;
import io.connguard.core.testing.TestProxy;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.sql.Connection;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Drivers of other ecosystems through a {@code pool.mode: session} MySQL listener with a password account:
 * npm {@code mysql2} (plain queries, prepared {@code execute()}, transactions, a connection per round) and
 * MariaDB Connector/J with server-side prepared statements ({@code useServerPrepStmts=true}) behind
 * HikariCP, whose client connections, replaced midway, land on server threads earlier ones left; and a
 * new pool that more clients than its size reach at once.
 */
@ExtendWith(LeakGuard.class)
class MySqlSessionPoolDriversIT {

    private static final int SIZE = 3;
    /** The driver's connections behind Hikari's proxies that have been borrowed once. */
    private static final Set<Connection> CLIENT_CONNECTIONS = java.util.concurrent.ConcurrentHashMap.newKeySet();

    @BeforeAll
    static void account() throws SQLException {
        MySqlSessionPoolIT.account();
    }

    private static TestProxy proxy() {
        return MySqlIt.proxy("    pool:\n      mode: session\n      size: " + SIZE + "\n", """
                    maxConnections: 0
                    queueTimeout: 20s
                    idleInTransactionTimeout: 0
                    leakDetectionThreshold: 0
                """);
    }

    private static String table(String prefix) throws SQLException {
        String table = prefix + "_" + Long.toHexString(System.nanoTime());
        try (Connection admin = MySqlIt.database().connectDirect(); Statement s = admin.createStatement()) {
            s.execute("CREATE TABLE " + table + " (id INT AUTO_INCREMENT PRIMARY KEY, worker INT, round INT)");
        }
        return table;
    }

    private static void drop(String table) throws SQLException {
        try (Connection admin = MySqlIt.database().connectDirect(); Statement s = admin.createStatement()) {
            s.execute("DROP TABLE IF EXISTS " + table);
        }
    }

    /**
     * Clients that queue on a new pool before any login was accepted wait with no password the pool knows:
     * the login opened for each later asks for it, and must get it from the client (their answers to the
     * greeting, checked against the first login's password by then, cannot log in).
     */
    @Test
    void twiceAsManyClientsAsTheSizeOfANewPoolAllGetIn() throws Exception {
        try (TestProxy proxy = proxy()) {
            ExecutorService clients = Executors.newFixedThreadPool(2 * SIZE);
            try {
                List<Future<String>> users = new ArrayList<>();
                for (int i = 0; i < 2 * SIZE; i++) {
                    users.add(clients.submit(() -> {
                        try (Connection c = MySqlIt.connect(MySqlIt.mysqlUrl(proxy,
                                "sslMode=DISABLED&allowPublicKeyRetrieval=true&connectTimeout=30000"),
                                MySqlSessionPoolIT.USER, MySqlSessionPoolIT.PASSWORD);
                             Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT CURRENT_USER(), SLEEP(0.3)")) {
                            rs.next();
                            return rs.getString(1);
                        }
                    }));
                }
                for (Future<String> user : users) {
                    assertThat(user.get(60, TimeUnit.SECONDS)).isEqualTo(MySqlSessionPoolIT.USER + "@%");
                }
            } finally {
                clients.shutdownNow();
            }
            assertThat(MySqlSessionPoolIT.serverThreads()).hasSizeLessThanOrEqualTo(SIZE);
        }
    }

    @Test
    void npmMysql2QueriesPreparedStatementsAndTransactions() throws Exception {
        Path dir = Path.of("src/test/node").toAbsolutePath();
        if (!Files.isDirectory(dir.resolve("node_modules/mysql2"))) {
            org.junit.jupiter.api.Assertions.fail("npm package mysql2 is not installed in " + dir
                    + "; run `npm ci` there (.ci/run does)");
        }
        String table = table("cg_node");
        try (TestProxy proxy = proxy()) {
            ProcessBuilder node = new ProcessBuilder("node", "session-pool.js", table).directory(dir.toFile())
                    .redirectErrorStream(true);
            Map<String, String> env = node.environment();
            env.put("MYSQL_HOST", "127.0.0.1");
            env.put("MYSQL_PORT", String.valueOf(proxy.port("my")));
            env.put("MYSQL_USER", MySqlSessionPoolIT.USER);
            env.put("MYSQL_PASSWORD", MySqlSessionPoolIT.PASSWORD);
            env.put("MYSQL_DATABASE", MySqlIt.database().database());
            Process process = node.start();
            process.getOutputStream().close();
            String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            assertThat(process.waitFor(120, TimeUnit.SECONDS)).isTrue();
            assertThat(process.exitValue()).as(output).isZero();
            assertThat(output.strip()).as("6 workers x 10 rounds, each its own connection").isEqualTo("ok 60");
            assertThat(MySqlSessionPoolIT.serverThreads()).as("server threads of the pool").hasSizeLessThanOrEqualTo(SIZE);
            MySqlIt.assertTrackerInSync(proxy);
        } finally {
            drop(table);
        }
    }

    @Test
    void mariadbConnectorJServerPreparedStatementsBehindHikari() throws Exception {
        String table = table("cg_hikari");
        try (TestProxy proxy = proxy()) {
            HikariConfig config = new HikariConfig();
            config.setJdbcUrl(MySqlIt.mariadbUrl(proxy, "sslMode=disable&allowPublicKeyRetrieval=true"
                    + "&useServerPrepStmts=true&cachePrepStmts=true"));
            config.setUsername(MySqlSessionPoolIT.USER);
            config.setPassword(MySqlSessionPoolIT.PASSWORD);
            config.setMaximumPoolSize(SIZE);
            config.setConnectionTimeout(20_000);
            try (HikariDataSource pool = new HikariDataSource(config)) {
                Set<Long> first = work(pool, table, 0);
                assertThat(first).as("server threads behind Hikari's first connections").hasSizeLessThanOrEqualTo(SIZE);
                pool.getHikariPoolMXBean().softEvictConnections(); // new client connections for the second half
                Set<Long> second = work(pool, table, 1);
                assertThat(first).as("the new client connections got the server threads the evicted ones left")
                        .containsAll(second);
            }
            try (Connection admin = MySqlIt.database().connectDirect(); Statement s = admin.createStatement();
                 ResultSet rs = s.executeQuery("SELECT count(*), count(DISTINCT worker, round) FROM " + table)) {
                rs.next();
                assertThat(rs.getInt(1)).as("rows committed").isEqualTo(2 * SIZE * 20);
                assertThat(rs.getInt(2)).isEqualTo(2 * SIZE * 20);
            }
            MySqlIt.assertTrackerInSync(proxy);
        } finally {
            drop(table);
        }
    }

    /**
     * {@code SIZE} threads, 20 borrows each: a prepared INSERT and SELECT (from the driver's statement cache
     * after the first borrow of a connection, so prepared once per client connection and executed many
     * times), in a transaction; the server thread ids seen.
     */
    private static Set<Long> work(HikariDataSource pool, String table, int half) throws Exception {
        ExecutorService threads = Executors.newFixedThreadPool(SIZE);
        try {
            List<Future<Set<Long>>> results = new ArrayList<>();
            for (int w = 0; w < SIZE; w++) {
                int worker = half * SIZE + w;
                results.add(threads.submit(() -> borrow(pool, table, worker)));
            }
            Set<Long> seen = new HashSet<>();
            for (Future<Set<Long>> result : results) {
                seen.addAll(result.get(120, TimeUnit.SECONDS));
            }
            return seen;
        } finally {
            threads.shutdownNow();
        }
    }

    private static Set<Long> borrow(HikariDataSource pool, String table, int worker) throws SQLException {
        Set<Long> threads = new HashSet<>();
        for (int round = 0; round < 20; round++) {
            try (Connection c = pool.getConnection()) {
                c.setAutoCommit(false);
                long prepares = sessionStatus(c, "Com_stmt_prepare");
                try (PreparedStatement insert = c.prepareStatement("INSERT INTO " + table + " (worker, round) VALUES (?, ?)")) {
                    insert.setInt(1, worker);
                    insert.setInt(2, round);
                    assertThat(insert.executeUpdate()).isEqualTo(1);
                }
                try (PreparedStatement count = c.prepareStatement("SELECT count(*), max(round), CONNECTION_ID() FROM "
                        + table + " WHERE worker = ?")) {
                    count.setInt(1, worker);
                    try (ResultSet rs = count.executeQuery()) {
                        rs.next();
                        assertThat(rs.getInt(1)).as("worker %d round %d", worker, round).isEqualTo(round + 1);
                        assertThat(rs.getInt(2)).isEqualTo(round);
                        threads.add(rs.getLong(3));
                    }
                }
                boolean again = !CLIENT_CONNECTIONS.add(c.unwrap(Connection.class));
                long prepared = sessionStatus(c, "Com_stmt_prepare") - prepares;
                if (again) {
                    assertThat(prepared).as("a client connection that prepared them before executes its cached ones")
                            .isZero();
                } else {
                    assertThat(prepared).as("a new client connection prepares the two statements").isEqualTo(2);
                }
                c.commit();
            }
        }
        return threads;
    }

    private static long sessionStatus(Connection c, String name) throws SQLException {
        try (Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SHOW SESSION STATUS LIKE '" + name + "'")) {
            rs.next();
            return rs.getLong(2);
        }
    }
}
