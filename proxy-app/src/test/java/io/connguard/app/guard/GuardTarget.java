package io.connguard.app.guard;

import com.zaxxer.hikari.HikariConfig;
import com.zaxxer.hikari.HikariDataSource;
import io.connguard.core.testing.Database;

import java.sql.Connection;
import java.sql.SQLException;
import java.sql.Statement;

/**
 * What the guard scenarios need to know about one database: how to reach it through the proxy and
 * directly, how it names the proxy's errors, and how it shows its own connections. One implementation
 * per protocol; the scenarios are the same for both.
 */
public interface GuardTarget {

    String PASSWORD = "guard-pw";

    Database database();

    /** The listener's {@code protocol}. */
    String protocol();

    /** A connection through the proxy as {@code user}, announcing {@code application}. */
    Connection open(int port, String user, String application) throws SQLException;

    /** An application's pool through the proxy, as HikariCP would be configured in production. */
    default HikariDataSource pool(int port, String user, String application, int size, long connectionTimeoutMillis) {
        HikariConfig config = new HikariConfig();
        config.setJdbcUrl(url(port, application));
        config.setUsername(user);
        config.setPassword(PASSWORD);
        config.setMaximumPoolSize(size);
        config.setMinimumIdle(0);
        config.setConnectionTimeout(connectionTimeoutMillis);
        config.setInitializationFailTimeout(-1);
        config.setPoolName("guard-" + user);
        // HikariCP sets DriverManager's JVM-wide login timeout from connectionTimeout, which would then
        // cut short every later Connector/J handshake in this JVM (a connection queued at a cap waits in
        // its handshake): give the old value back once the pool is set up.
        int loginTimeout = java.sql.DriverManager.getLoginTimeout();
        try {
            return new HikariDataSource(config);
        } finally {
            java.sql.DriverManager.setLoginTimeout(loginTimeout);
        }
    }

    /** The JDBC URL through the proxy, with the application name set. */
    String url(int port, String application);

    /** Creates the login {@code user} (idempotent) with {@link #PASSWORD}; it may use the scenario table once {@link #resetTable} ran. */
    void ensureUser(String user) throws SQLException;

    /** Creates the scenario table {@code cg_guard_rows(id int primary key, v int)} with rows 1..10, v = 0. */
    void resetTable() throws SQLException;

    /** Connections the database itself has open for {@code user}, counted on the server. */
    int serverConnections(String user) throws SQLException;

    /** A user the database authenticates by password from 127.0.0.1 (the guard users may be trusted). */
    String passwordCheckedUser();

    /** The SQLState of "too many connections" for a client cap (53300 / 08004). */
    String tooManyConnectionsState();

    /**
     * Connections per client key the database may see beyond the client's cap: MySQL lets one over-cap
     * connection authenticate on probation (so that a driver's cancel reaches the server at the cap), which
     * then waits for its slot on that connection; PostgreSQL cancels need no connection of their own.
     */
    default int connectionsBeyondTheCap() {
        return 0;
    }

    /** The SQLState of "too many connections" when the client key is the user alone (53300 / 42000 for 1226). */
    String perUserTooManyConnectionsState();

    /** The SQLState of the refusal of a new connection while the proxy drains (57P03 / 08S01 for 1053). */
    String drainingState();

    /** Asserts that {@code e} is the driver's report of the idle-in-transaction kill (25P03 / 4031). */
    void assertIdleInTransactionKill(SQLException e);

    /** Makes lock waits on this direct connection fail after a second instead of waiting. */
    void shortLockWait(Statement statement) throws SQLException;

    /** A statement that keeps the server busy for {@code seconds}. */
    String sleep(double seconds);
}
