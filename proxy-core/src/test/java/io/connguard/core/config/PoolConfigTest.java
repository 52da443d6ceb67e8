package io.connguard.core.config;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static org.assertj.core.api.Assertions.assertThat;

/** The {@code pool}, {@code auth} and {@code maxClientConnections} keys: defaults, values, validation. */
class PoolConfigTest {

    private static final String LISTENER = """
            listeners:
              - name: pg
                protocol: %s
                listen: 127.0.0.1:6432
                upstream: db.internal:5432
            """;

    /** postgres pools in both modes in this loader; mysql does not (yet). */
    private final ConfigLoader loader = new ConfigLoader(Map.<String, String>of()::get, Set.of("postgres", "mysql"),
            Map.of("postgres", Set.of("session", "transaction")));

    private List<String> errors(String yaml) {
        try {
            loader.parse(yaml);
        } catch (ConfigException e) {
            return e.errors().stream().map(ConfigError::toString).toList();
        }
        throw new AssertionError("expected configuration errors for:\n" + yaml);
    }

    @Test
    void everyPoolKeyIsRead(@TempDir Path dir) throws Exception {
        Path users = dir.resolve("userlist.txt");
        Files.writeString(users, "\"app\" \"secret\"\n");
        ListenerConfig pg = loader.parse(LISTENER.formatted("postgres") + """
                    pool:
                      mode: transaction
                      size: 5
                      minIdle: 2
                      idleTimeout: 30s
                      maxLifetime: 10m
                      reset: none
                    auth:
                      mode: passthrough
                      usersFile: %s
                """.formatted(users)).listeners().get(0);
        assertThat(pg.pool()).isEqualTo(new PoolConfig(PoolConfig.Mode.TRANSACTION, 5, 2, Duration.ofSeconds(30),
                Duration.ofMinutes(10), PoolConfig.Reset.NONE));
        assertThat(pg.pool().pooled()).isTrue();
        assertThat(pg.auth()).isEqualTo(new AuthConfig(AuthConfig.Mode.PASSTHROUGH, users));
    }

    @Test
    void badPoolValuesNameTheKey() {
        assertThat(errors(LISTENER.formatted("postgres") + """
                    pool:
                      mode: statement
                      size: 0
                      minIdle: -1
                      idleTimeout: soon
                      reset: sometimes
                    auth:
                      mode: trust
                """)).containsExactlyInAnyOrder(
                "listeners[0].pool.mode (line 7): expected one of relay, session, transaction, got 'statement'",
                "listeners[0].pool.size (line 8): must be between 1 and 100000, got 0",
                "listeners[0].pool.minIdle (line 9): must be between 0 and 100000, got -1",
                "listeners[0].pool.idleTimeout (line 10): expected a duration such as 250ms, 5s, 10m, 1h or 0, got 'soon'",
                "listeners[0].pool.reset (line 11): expected one of auto, none, got 'sometimes'",
                "listeners[0].auth.mode (line 13): expected one of passthrough, got 'trust'");
    }

    @Test
    void minIdleAbovePoolSizeIsAnError() {
        assertThat(errors(LISTENER.formatted("postgres") + """
                    pool:
                      mode: session
                      size: 3
                      minIdle: 4
                """)).containsExactly("listeners[0].pool.minIdle (line 9): must not be greater than pool.size 3, got 4");
    }

    @Test
    void aProtocolThatCannotPoolRefusesPooledModes() {
        assertThat(errors(LISTENER.formatted("mysql") + """
                    pool:
                      mode: session
                """)).containsExactly(
                "listeners[0].pool.mode (line 7): pool.mode session is not supported for protocol mysql yet (use relay)");
        assertThat(errors(LISTENER.formatted("mysql") + """
                    pool:
                      mode: transaction
                """)).containsExactly(
                "listeners[0].pool.mode (line 7): pool.mode transaction is not supported for protocol mysql yet (use relay)");
    }

    @Test
    void aModeTheProtocolDoesNotListIsRefusedAndSoIsUpstreamTls() {
        ConfigLoader sessionOnly = new ConfigLoader(Map.<String, String>of()::get, Set.of("postgres"),
                Map.of("postgres", Set.of("session")));
        try {
            sessionOnly.parse(LISTENER.formatted("postgres") + "    pool:\n      mode: transaction\n");
            throw new AssertionError("transaction accepted");
        } catch (ConfigException e) {
            assertThat(e.errors().get(0).toString()).isEqualTo("listeners[0].pool.mode (line 7): pool.mode transaction "
                    + "is not supported for protocol postgres yet (use relay)");
        }
        assertThat(errors(LISTENER.formatted("postgres") + """
                    upstreamTls:
                      mode: require
                    pool:
                      mode: session
                """)).containsExactly("listeners[0].upstreamTls (line 7): upstreamTls is not supported with "
                + "pool.mode session yet (use relay, or disable upstream TLS)");
    }

    @Test
    void aRelayListenerIgnoresNoUsersFile(@TempDir Path dir) throws Exception {
        Path users = dir.resolve("userlist.txt");
        Files.writeString(users, "\"app\" \"secret\"\n");
        assertThat(errors(LISTENER.formatted("postgres") + """
                    auth:
                      usersFile: %s
                """.formatted(users))).containsExactly("listeners[0].auth.usersFile (line 7): auth.usersFile applies "
                + "only to pooled listeners (pool.mode session or transaction); in relay mode the database verifies "
                + "every client itself");
    }

    @Test
    void aUsersFileIsCheckedWhenLoadedWithoutEchoingPasswords(@TempDir Path dir) throws Exception {
        Path missing = dir.resolve("missing.txt");
        Path hashed = dir.resolve("hashed.txt");
        Files.writeString(hashed, "\"app\" \"md5aabbccddeeff00112233445566778899\"\n");
        String pooled = LISTENER.formatted("postgres") + """
                    pool:
                      mode: session
                    auth:
                      usersFile: %s
                """;
        assertThat(errors(pooled.formatted(missing))).containsExactly("listeners[0].auth.usersFile (line 9): cannot read "
                + "users file " + missing + ": NoSuchFileException");
        List<String> errors = errors(pooled.formatted(hashed));
        assertThat(errors).containsExactly("listeners[0].auth.usersFile (line 9): line 1: a hashed password (md5 or "
                + "SCRAM secret); connguard needs the plaintext password to log in to the database with it");
        assertThat(String.join("\n", errors)).doesNotContain("aabbcc");
    }

    @Test
    void maxClientConnectionsInDefaultsAndRules() throws Exception {
        ProxyConfig config = loader.parse(LISTENER.formatted("postgres") + """
                clients:
                  defaults:
                    maxClientConnections: 50
                  rules:
                    - match: { user: batch }
                      maxClientConnections: 2
                    - match: { user: web }
                      maxConnections: 3
                """);
        assertThat(config.clients().defaults().maxClientConnections()).isEqualTo(50);
        Limits defaults = config.clients().defaults();
        assertThat(config.clients().rules().get(0).applyTo(defaults).maxClientConnections()).isEqualTo(2);
        assertThat(config.clients().rules().get(1).applyTo(defaults).maxClientConnections())
                .as("a rule that does not set it keeps the default").isEqualTo(50);
        assertThat(errors(LISTENER.formatted("postgres") + """
                clients:
                  defaults:
                    maxClientConnections: many
                """)).containsExactly("clients.defaults.maxClientConnections (line 8): expected a whole number, got 'many'");
    }
}
