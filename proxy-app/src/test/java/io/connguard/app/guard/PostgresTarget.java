package io.connguard.app.guard;

import io.connguard.core.testing.Database;
import io.connguard.core.testing.RealDatabases;

import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.Properties;

import static org.assertj.core.api.Assertions.assertThat;

/** The guard scenarios' view of PostgreSQL, through pgjdbc. */
public final class PostgresTarget implements GuardTarget {

    private final Database db = RealDatabases.postgres();

    @Override
    public Database database() {
        return db;
    }

    @Override
    public String protocol() {
        return "postgres";
    }

    @Override
    public String passwordCheckedUser() {
        // .ci/setup-postgres.sh: scram-sha-256 from 127.0.0.1; the guard users are trusted.
        return "cg_scram";
    }

    @Override
    public String url(int port, String application) {
        // pgjdbc sends ApplicationName in the StartupMessage (where the proxy reads it) only when it may
        // assume a 9.0+ server; otherwise it sets it with a SET after connecting.
        // sslmode=disable: the guard's listeners offer no TLS, and with the default (prefer) pgjdbc waits at
        // most sslResponseTimeout (5 s) for the answer to its SSLRequest, a bound the churn scenario's 300
        // threads exceed on a slow 2-core machine while connguard works through its accept queue.
        return db.jdbcUrl("127.0.0.1", port) + "?ApplicationName=" + application
                + "&assumeMinServerVersion=9.0&connectTimeout=30&sslmode=disable";
    }

    @Override
    public Connection open(int port, String user, String application) throws SQLException {
        Properties props = new Properties();
        props.setProperty("user", user);
        props.setProperty("password", PASSWORD);
        return DriverManager.getConnection(url(port, application), props);
    }

    @Override
    public void ensureUser(String user) throws SQLException {
        try (Connection c = db.connectDirect(); Statement s = c.createStatement()) {
            s.execute("DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '" + user + "') THEN "
                    + "CREATE ROLE " + user + " LOGIN PASSWORD '" + PASSWORD + "'; END IF; END $$");
        }
    }

    @Override
    public void resetTable() throws SQLException {
        try (Connection c = db.connectDirect(); Statement s = c.createStatement()) {
            s.execute("CREATE TABLE IF NOT EXISTS cg_guard_rows (id int PRIMARY KEY, v int NOT NULL)");
            s.execute("TRUNCATE cg_guard_rows");
            s.execute("INSERT INTO cg_guard_rows SELECT g, 0 FROM generate_series(1, 10) g");
            // Every test user may use it (MySQL's users get the whole database): creating a user then
            // needs no table, and the table needs no particular user.
            s.execute("GRANT ALL ON TABLE cg_guard_rows TO PUBLIC");
        }
    }

    @Override
    public int serverConnections(String user) throws SQLException {
        try (Connection c = db.connectDirect();
             PreparedStatement s = c.prepareStatement("SELECT count(*) FROM pg_stat_activity WHERE usename = ?")) {
            s.setString(1, user);
            try (ResultSet rs = s.executeQuery()) {
                rs.next();
                return rs.getInt(1);
            }
        }
    }

    @Override
    public String tooManyConnectionsState() {
        return "53300";
    }

    @Override
    public String perUserTooManyConnectionsState() {
        return "53300";
    }

    @Override
    public String drainingState() {
        return "57P03";
    }

    @Override
    public void assertIdleInTransactionKill(SQLException e) {
        assertThat(e.getSQLState()).as("SQLState of %s", e).isEqualTo("25P03");
        assertThat(e.getMessage()).contains("idle-in-transaction timeout");
    }

    @Override
    public void shortLockWait(Statement statement) throws SQLException {
        statement.execute("SET lock_timeout = '1s'");
    }

    @Override
    public String sleep(double seconds) {
        return "SELECT pg_sleep(" + seconds + ")";
    }
}
