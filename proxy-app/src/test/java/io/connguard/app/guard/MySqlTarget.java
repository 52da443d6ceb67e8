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

/** The guard scenarios' view of MySQL / MariaDB, through MySQL Connector/J. */
public final class MySqlTarget implements GuardTarget {

    private final Database db = RealDatabases.mysql();

    @Override
    public Database database() {
        return db;
    }

    @Override
    public String protocol() {
        return "mysql";
    }

    @Override
    public int connectionsBeyondTheCap() {
        return 1; // the one over-cap connection on probation (protocol-mysql/README.md, "Probation")
    }

    @Override
    public String passwordCheckedUser() {
        return GuardScenarios.APP;
    }

    @Override
    public String url(int port, String application) {
        return db.jdbcUrl("127.0.0.1", port) + "?connectionAttributes=program_name:" + application
                + "&sslMode=DISABLED&allowPublicKeyRetrieval=true&connectTimeout=30000";
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
            s.execute("CREATE USER IF NOT EXISTS '" + user + "'@'%' IDENTIFIED BY '" + PASSWORD + "'");
            s.execute("GRANT ALL ON " + db.database() + ".* TO '" + user + "'@'%'");
        }
    }

    @Override
    public void resetTable() throws SQLException {
        try (Connection c = db.connectDirect(); Statement s = c.createStatement()) {
            s.execute("CREATE TABLE IF NOT EXISTS cg_guard_rows (id int PRIMARY KEY, v int NOT NULL) ENGINE=InnoDB");
            s.execute("DELETE FROM cg_guard_rows");
            for (int i = 1; i <= 10; i++) {
                s.execute("INSERT INTO cg_guard_rows VALUES (" + i + ", 0)");
            }
        }
    }

    @Override
    public int serverConnections(String user) throws SQLException {
        try (Connection c = db.connectDirect();
             PreparedStatement s = c.prepareStatement(
                     "SELECT count(*) FROM information_schema.processlist WHERE user = ?")) {
            s.setString(1, user);
            try (ResultSet rs = s.executeQuery()) {
                rs.next();
                return rs.getInt(1);
            }
        }
    }

    @Override
    public String tooManyConnectionsState() {
        return "08004";
    }

    @Override
    public String perUserTooManyConnectionsState() {
        return "42000";
    }

    @Override
    public String drainingState() {
        return "08S01";
    }

    /**
     * The proxy answers with ERR 4031 HY000. MySQL Connector/J turns exactly that error into a
     * CommunicationsException carrying the server's message (NativeProtocol.checkErrorMessage, as for
     * MySQL's own wait_timeout disconnects); MariaDB Connector/J keeps the code.
     */
    @Override
    public void assertIdleInTransactionKill(SQLException e) {
        if (e instanceof com.mysql.cj.jdbc.exceptions.CommunicationsException) {
            assertThat(e.getMessage()).as("message of %s", e)
                    .startsWith("terminating connection due to idle-in-transaction timeout");
        } else {
            assertThat(e.getErrorCode()).as("error code of %s", e).isEqualTo(4031);
            assertThat(e.getSQLState()).isEqualTo("HY000");
        }
    }

    @Override
    public void shortLockWait(Statement statement) throws SQLException {
        statement.execute("SET SESSION innodb_lock_wait_timeout = 1");
    }

    @Override
    public String sleep(double seconds) {
        return "SELECT SLEEP(" + seconds + ")";
    }
}
