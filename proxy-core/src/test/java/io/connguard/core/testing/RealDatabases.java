package io.connguard.core.testing;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.URI;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Map;

/**
 * Finds the real database servers integration tests run against, in the order README.md's Tests section gives:
 * <ol>
 *   <li>the environment: {@code CONNGUARD_IT_POSTGRES} / {@code CONNGUARD_IT_MYSQL} as JDBC URLs with
 *       {@code user} and {@code password} parameters;</li>
 *   <li>a server already listening on the default local port (127.0.0.1:5432 as {@code postgres},
 *       127.0.0.1:3306 as {@code root}, database {@code test});</li>
 *   <li>Testcontainers, when a Docker engine is available.</li>
 * </ol>
 * When none is found the test fails with a message saying how to provide one; it never skips.
 */
public final class RealDatabases {

    private static Database postgres;
    private static Database mysql;

    private RealDatabases() {
    }

    public static synchronized Database postgres() {
        if (postgres == null) {
            postgres = find(Database.Kind.POSTGRES, "CONNGUARD_IT_POSTGRES", 5432, "postgres");
        }
        return postgres;
    }

    public static synchronized Database mysql() {
        if (mysql == null) {
            mysql = find(Database.Kind.MYSQL, "CONNGUARD_IT_MYSQL", 3306, "root");
        }
        return mysql;
    }

    private static Database find(Database.Kind kind, String variable, int port, String user) {
        String url = System.getenv(variable);
        if (url != null && !url.isBlank()) {
            return fromUrl(kind, url, variable);
        }
        if (listening("127.0.0.1", port)) {
            return new Database(kind, "127.0.0.1", port, user, "", "test", "local server on 127.0.0.1:" + port);
        }
        if (Containers.dockerAvailable()) {
            return kind == Database.Kind.POSTGRES ? Containers.postgres() : Containers.mariadb();
        }
        String name = kind == Database.Kind.POSTGRES ? "PostgreSQL" : "MySQL/MariaDB";
        String example = kind == Database.Kind.POSTGRES
                ? "jdbc:postgresql://127.0.0.1:5432/test?user=postgres&password="
                : "jdbc:mysql://127.0.0.1:3306/test?user=root&password=";
        throw new IllegalStateException("No " + name + " server for the integration tests. Provide one: set "
                + variable + "=" + example + ", or run one on 127.0.0.1:" + port + " (user " + user
                + ", database test), or start a Docker engine so that Testcontainers can run one.");
    }

    static Database fromUrl(Database.Kind kind, String url, String variable) {
        if (!url.startsWith("jdbc:")) {
            throw new IllegalStateException(variable + " must be a JDBC URL, got " + url);
        }
        URI uri = URI.create(url.substring(5));
        Map<String, String> params = new HashMap<>();
        if (uri.getRawQuery() != null) {
            for (String pair : uri.getRawQuery().split("&")) {
                int eq = pair.indexOf('=');
                String key = eq < 0 ? pair : pair.substring(0, eq);
                String value = eq < 0 ? "" : URLDecoder.decode(pair.substring(eq + 1), StandardCharsets.UTF_8);
                params.put(key, value);
            }
        }
        int port = uri.getPort() > 0 ? uri.getPort() : (kind == Database.Kind.POSTGRES ? 5432 : 3306);
        String database = uri.getPath() == null || uri.getPath().length() <= 1 ? "test" : uri.getPath().substring(1);
        String user = params.getOrDefault("user", kind == Database.Kind.POSTGRES ? "postgres" : "root");
        return new Database(kind, uri.getHost(), port, user, params.getOrDefault("password", ""), database,
                variable);
    }

    private static boolean listening(String host, int port) {
        try (Socket socket = new Socket()) {
            socket.connect(new InetSocketAddress(host, port), 500);
            return true;
        } catch (IOException e) {
            return false;
        }
    }

    /** Testcontainers, touched only when no other server was found (its classes load lazily). */
    private static final class Containers {

        static boolean dockerAvailable() {
            try {
                return org.testcontainers.DockerClientFactory.instance().isDockerAvailable();
            } catch (Throwable e) {
                return false;
            }
        }

        static Database postgres() {
            var container = new org.testcontainers.postgresql.PostgreSQLContainer("postgres:15")
                    .withDatabaseName("test").withUsername("postgres").withPassword("postgres");
            container.start();
            return new Database(Database.Kind.POSTGRES, container.getHost(), container.getMappedPort(5432),
                    "postgres", "postgres", "test", "Testcontainers postgres:15");
        }

        static Database mariadb() {
            var container = new org.testcontainers.mariadb.MariaDBContainer("mariadb:10.11")
                    .withDatabaseName("test").withUsername("root").withPassword("");
            container.start();
            return new Database(Database.Kind.MYSQL, container.getHost(), container.getMappedPort(3306),
                    "root", "", "test", "Testcontainers mariadb:10.11");
        }
    }
}
