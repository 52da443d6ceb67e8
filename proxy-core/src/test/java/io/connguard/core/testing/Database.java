package io.connguard.core.testing;

import java.net.URLEncoder;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;

/**
 * A real database server for integration tests, as {@link RealDatabases} found it.
 *
 * @param kind     POSTGRES or MYSQL (MySQL or MariaDB)
 * @param source   how it was found, for messages
 */
public record Database(Kind kind, String host, int port, String user, String password, String database,
                       String source) {

    public enum Kind { POSTGRES, MYSQL }

    /** {@code host:port}, as a listener's {@code upstream}. */
    public String hostPort() {
        return host + ":" + port;
    }

    /** A JDBC URL straight to the server, without credentials (pass them to the driver). */
    public String jdbcUrl() {
        return jdbcUrl(host, port);
    }

    /** A JDBC URL to the same database through another address, typically the proxy's listener. */
    public String jdbcUrl(String viaHost, int viaPort) {
        return switch (kind) {
            case POSTGRES -> "jdbc:postgresql://" + viaHost + ":" + viaPort + "/" + encode(database);
            case MYSQL -> "jdbc:mysql://" + viaHost + ":" + viaPort + "/" + encode(database);
        };
    }

    /** A JDBC URL for the MariaDB driver (it does not accept jdbc:mysql: by default). */
    public String mariadbUrl(String viaHost, int viaPort) {
        return "jdbc:mariadb://" + viaHost + ":" + viaPort + "/" + encode(database);
    }

    /** A connection straight to the server, bypassing any proxy. */
    public Connection connectDirect() throws SQLException {
        return DriverManager.getConnection(jdbcUrl(), user, password);
    }

    private static String encode(String s) {
        return URLEncoder.encode(s, StandardCharsets.UTF_8);
    }
}
