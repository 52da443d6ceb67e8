package io.connguard.core.config;

import io.connguard.core.api.ListenerInfo;
import io.connguard.core.api.ListenerInfo.UpstreamTlsMode;
import io.connguard.core.config.ClientsConfig.IdentityField;
import io.connguard.core.testing.TestCertificates;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class ConfigLoaderTest {

    private static final String MINIMAL = """
            listeners:
              - name: pg
                protocol: postgres
                listen: 127.0.0.1:6432
                upstream: db.internal:5432
            """;

    private final ConfigLoader loader = new ConfigLoader(Map.of("TOKEN", "s3cret", "PORT", "7000")::get,
            Set.of("postgres", "mysql"));

    private List<String> errors(String yaml) {
        try {
            loader.parse(yaml);
        } catch (ConfigException e) {
            return e.errors().stream().map(ConfigError::toString).toList();
        }
        throw new AssertionError("expected configuration errors for:\n" + yaml);
    }

    @Test
    void minimalFileGetsEveryDefault() throws Exception {
        ProxyConfig config = loader.parse(MINIMAL);
        assertThat(config.admin().listen()).isEqualTo(new HostPort("127.0.0.1", 9633));
        assertThat(config.admin().hasToken()).isFalse();
        ListenerConfig pg = config.listeners().get(0);
        assertThat(pg.maxUpstreamConnections()).isZero();
        assertThat(pg.connectTimeout()).isEqualTo(Duration.ofSeconds(5));
        assertThat(pg.handshakeTimeout()).isEqualTo(Duration.ofSeconds(10));
        assertThat(pg.upstreamTls().mode()).isEqualTo(UpstreamTlsMode.DISABLE);
        assertThat(pg.clientTls().mode()).isEqualTo(ListenerInfo.ClientTlsMode.DISABLE);
        assertThat(config.clients().identity())
                .containsExactly(IdentityField.USER, IdentityField.DATABASE, IdentityField.APPLICATION);
        assertThat(config.clients().maxTrackedClients()).isEqualTo(500);
        assertThat(config.clients().defaults()).isEqualTo(new Limits(20, Duration.ofSeconds(5), 100,
                Duration.ofSeconds(60), Duration.ZERO, Duration.ofMinutes(10), Duration.ZERO));
        assertThat(config.clients().defaults().maxClientConnections()).as("no cap on client connections").isZero();
        assertThat(pg.pool()).isEqualTo(new PoolConfig(PoolConfig.Mode.RELAY, 20, 0, Duration.ofMinutes(5),
                Duration.ofHours(1), PoolConfig.Reset.AUTO));
        assertThat(pg.auth()).isEqualTo(new AuthConfig(AuthConfig.Mode.PASSTHROUGH, null));
        assertThat(config.clients().rules()).isEmpty();
        assertThat(config.shutdown()).isEqualTo(new ShutdownConfig(Duration.ZERO, Duration.ofSeconds(25)));
        assertThat(config.logging()).isEqualTo(new LoggingConfig(LoggingConfig.Format.TEXT, LoggingConfig.Level.INFO));
        assertThat(config.ioThreads()).as("one event loop per processor").isZero();
    }

    @Test
    void ioThreadsIsACountOfEventLoops() throws Exception {
        assertThat(loader.parse("ioThreads: 3\n" + MINIMAL).ioThreads()).isEqualTo(3);
        assertThat(errors("ioThreads: -1\n" + MINIMAL)).containsExactly(
                "ioThreads (line 1): must be between 0 and 1024, got -1");
        assertThat(errors("ioThreads: two\n" + MINIMAL)).containsExactly(
                "ioThreads (line 1): expected a whole number, got 'two'");
    }

    @Test
    void fullExampleFromDesignLoads(@TempDir Path dir) throws Exception {
        Path ca = Files.writeString(dir.resolve("ca.pem"), "-----BEGIN CERTIFICATE-----\n");
        ProxyConfig config = loader.parse("""
                admin:
                  listen: 127.0.0.1:9633
                  token: ${TOKEN}
                listeners:
                  - name: orders-pg
                    protocol: postgres
                    listen: 127.0.0.1:6432
                    upstream: orders-db.internal:5432
                    maxUpstreamConnections: 100
                    connectTimeout: 5s
                    handshakeTimeout: 10s
                    upstreamTls:
                      mode: verify-full
                      caFile: %s
                    clientTls:
                      mode: disable
                  - name: orders-my
                    protocol: mysql
                    listen: "[::1]:${PORT}"
                    upstream: orders-mysql.internal:3306
                clients:
                  identity: [user, database, application]
                  maxTrackedClients: 500
                  defaults:
                    maxConnections: 20
                    queueTimeout: 5s
                    maxQueued: 100
                    idleInTransactionTimeout: 60s
                    idleTimeout: 0
                    leakDetectionThreshold: 10m
                    maxSessionLifetime: 0
                  rules:
                    - match: { user: reporting }
                      maxConnections: 5
                    - match: { application: "batch-*" }
                      idleInTransactionTimeout: 10m
                shutdown:
                  minDrainDelay: 0s
                  drainTimeout: 25s
                logging:
                  format: json
                  level: info
                """.formatted(ca));
        assertThat(config.admin().token()).isEqualTo("s3cret");
        assertThat(config.listeners()).hasSize(2);
        ListenerConfig pg = config.listeners().get(0);
        assertThat(pg.maxUpstreamConnections()).isEqualTo(100);
        assertThat(pg.upstreamTls()).isEqualTo(new ListenerConfig.UpstreamTls(UpstreamTlsMode.VERIFY_FULL, ca));
        assertThat(config.listeners().get(1).listen()).isEqualTo(new HostPort("::1", 7000));
        assertThat(config.listeners().get(1).listen().toString()).isEqualTo("[::1]:7000");
        assertThat(config.clients().rules()).hasSize(2);
        Rule reporting = config.clients().rules().get(0);
        assertThat(reporting.match().matches("orders-pg", "reporting", "orders", "x", "10.0.0.1")).isTrue();
        assertThat(reporting.match().matches("orders-pg", "app", "orders", "x", "10.0.0.1")).isFalse();
        assertThat(reporting.applyTo(config.clients().defaults()).maxConnections()).isEqualTo(5);
        Rule batch = config.clients().rules().get(1);
        assertThat(batch.match().matches("orders-pg", "app", "orders", "batch-nightly", "")).isTrue();
        assertThat(batch.applyTo(config.clients().defaults()).idleInTransactionTimeout())
                .isEqualTo(Duration.ofMinutes(10));
        assertThat(config.logging().format()).isEqualTo(LoggingConfig.Format.JSON);
    }

    @Test
    void unknownKeysAreErrorsWithPathAndLine() {
        assertThat(errors("""
                listeners:
                  - name: pg
                    protocol: postgres
                    listen: 127.0.0.1:6432
                    upstream: db:5432
                    maxUpstreamConnection: 10
                clients:
                  defaults:
                    idleTimeOut: 5s
                bogus: 1
                """)).containsExactlyInAnyOrder(
                "listeners[0].maxUpstreamConnection (line 6): unknown key (expected one of name, protocol, listen, "
                        + "upstream, maxUpstreamConnections, connectTimeout, handshakeTimeout, upstreamTls, clientTls, "
                        + "pool, auth)",
                "clients.defaults.idleTimeOut (line 9): unknown key (expected one of maxConnections, queueTimeout, "
                        + "maxQueued, idleInTransactionTimeout, idleTimeout, leakDetectionThreshold, maxSessionLifetime, "
                        + "fleetMaxConnections, maxClientConnections)",
                "bogus (line 10): unknown key (expected one of admin, listeners, clients, shutdown, logging, ioThreads, fleet)");
    }

    @Test
    void badDurationsNameTheKey() {
        assertThat(errors(MINIMAL + """
                clients:
                  defaults:
                    queueTimeout: 5 seconds
                    idleInTransactionTimeout: -1s
                    leakDetectionThreshold: 10
                shutdown:
                  drainTimeout: 1.5s
                """)).containsExactlyInAnyOrder(
                "clients.defaults.queueTimeout (line 8): expected a duration such as 250ms, 5s, 10m, 1h or 0, got '5 seconds'",
                "clients.defaults.idleInTransactionTimeout (line 9): expected a duration such as 250ms, 5s, 10m, 1h or 0, got '-1s'",
                "clients.defaults.leakDetectionThreshold (line 10): expected a duration such as 250ms, 5s, 10m, 1h or 0, got '10'",
                "shutdown.drainTimeout (line 12): expected a duration such as 250ms, 5s, 10m, 1h or 0, got '1.5s'");
    }

    /** Found by ConfigFuzzTest: such values overflowed Duration, or the nanosecond timers at run time. */
    @Test
    void durationsTooLongForTheTimersAreErrors() {
        assertThat(errors(MINIMAL + """
                clients:
                  defaults:
                    queueTimeout: 999999999999999d
                    idleTimeout: 36501d
                    maxSessionLifetime: 36500d
                shutdown:
                  drainTimeout: 99999999999999999999s
                """)).containsExactlyInAnyOrder(
                "clients.defaults.queueTimeout (line 8): expected a duration such as 250ms, 5s, 10m, 1h or 0, got '999999999999999d'",
                "clients.defaults.idleTimeout (line 9): must be at most 36500d (100 years), got '36501d'",
                "shutdown.drainTimeout (line 12): expected a duration such as 250ms, 5s, 10m, 1h or 0, got '99999999999999999999s'");
    }

    @Test
    void durationsParseEveryUnit() {
        assertThat(YamlFields.parseDuration("250ms")).isEqualTo(Duration.ofMillis(250));
        assertThat(YamlFields.parseDuration("5s")).isEqualTo(Duration.ofSeconds(5));
        assertThat(YamlFields.parseDuration("10m")).isEqualTo(Duration.ofMinutes(10));
        assertThat(YamlFields.parseDuration("1h")).isEqualTo(Duration.ofHours(1));
        assertThat(YamlFields.parseDuration("2d")).isEqualTo(Duration.ofDays(2));
        assertThat(YamlFields.parseDuration("0")).isEqualTo(Duration.ZERO);
        assertThat(YamlFields.parseDuration("0s")).isEqualTo(Duration.ZERO);
        assertThat(YamlFields.parseDuration("5")).isNull();
        assertThat(YamlFields.parseDuration("1h30m")).isNull();
    }

    @Test
    void duplicateListenerNamesAndPortsAreErrors() {
        assertThat(errors("""
                listeners:
                  - name: pg
                    protocol: postgres
                    listen: 127.0.0.1:6432
                    upstream: db:5432
                  - name: pg
                    protocol: mysql
                    listen: 127.0.0.1:6432
                    upstream: db:3306
                """)).containsExactlyInAnyOrder(
                "listeners[1].name (line 6): duplicate listener name 'pg' (also listeners[0])",
                "listeners[1].listen (line 8): duplicate listen address 127.0.0.1:6432 (also listeners[0].listen "
                        + "127.0.0.1:6432)");
    }

    @Test
    void addressesThatBindTheSameSocketAreDuplicatesAsTheBindWouldSeeThem() throws ConfigException {
        assertThat(errors("""
                listeners:
                  - name: a
                    protocol: postgres
                    listen: 127.0.0.1:6432
                    upstream: db:5432
                  - name: b
                    protocol: postgres
                    listen: localhost:6432
                    upstream: db:5432
                """)).containsExactly("listeners[1].listen (line 8): duplicate listen address localhost:6432 "
                + "(also listeners[0].listen 127.0.0.1:6432: both resolve to 127.0.0.1)");
        assertThat(errors("""
                listeners:
                  - name: a
                    protocol: postgres
                    listen: 127.0.0.1:6432
                    upstream: db:5432
                  - name: b
                    protocol: postgres
                    listen: "[::]:6432"
                    upstream: db:5432
                """)).singleElement().asString().startsWith("listeners[1].listen (line 8): duplicate listen address")
                .contains("listeners[0].listen 127.0.0.1:6432: a wildcard address binds the port on every address");
        assertThat(errors("""
                admin:
                  listen: localhost:6432
                listeners:
                  - name: a
                    protocol: postgres
                    listen: 127.0.0.1:6432
                    upstream: db:5432
                """)).containsExactly("admin.listen (line 2): admin.listen localhost:6432 binds the same socket as "
                + "listener 'a' (listen 127.0.0.1:6432)");
        // Different ports, and port 0 (chosen by the system), are fine.
        loader.parse("""
                admin:
                  listen: 127.0.0.1:0
                listeners:
                  - name: a
                    protocol: postgres
                    listen: 127.0.0.1:0
                    upstream: db:5432
                  - name: b
                    protocol: postgres
                    listen: localhost:0
                    upstream: db:5432
                  - name: c
                    protocol: postgres
                    listen: localhost:6433
                    upstream: db:5432
                """);
    }

    @Test
    void zeroConnectAndHandshakeTimeoutsTurnThemOffAsForEveryTimer() throws ConfigException {
        ProxyConfig config = loader.parse(MINIMAL + "    connectTimeout: 0\n    handshakeTimeout: 0\n");
        assertThat(config.listeners().get(0).connectTimeout()).isZero();
        assertThat(config.listeners().get(0).handshakeTimeout()).isZero();
    }

    @Test
    void wildcardAndSpecificAddressOnOnePortConflict() {
        assertThat(errors("""
                listeners:
                  - name: a
                    protocol: postgres
                    listen: 0.0.0.0:6432
                    upstream: db:5432
                  - name: b
                    protocol: postgres
                    listen: 127.0.0.1:6432
                    upstream: db:5432
                """)).containsExactly("listeners[1].listen (line 8): duplicate listen address 127.0.0.1:6432 (also "
                + "listeners[0].listen 0.0.0.0:6432: a wildcard address binds the port on every address)");
    }

    @Test
    void missingUpstreamAndOtherRequiredKeys() {
        assertThat(errors("""
                listeners:
                  - name: pg
                    protocol: postgres
                    listen: 127.0.0.1:6432
                  - protocol: cobol
                    listen: nowhere
                    upstream: db:5432
                """)).containsExactlyInAnyOrder(
                "listeners[0].upstream (line 2): missing (required)",
                "listeners[1].name (line 5): missing (required)",
                "listeners[1].protocol (line 5): unknown protocol 'cobol' (installed: mysql, postgres)",
                "listeners[1].listen (line 6): expected host:port, got 'nowhere'");
    }

    @Test
    void noListenersIsAnError() {
        assertThat(errors("clients:\n  maxTrackedClients: 10\n"))
                .containsExactly("listeners (line 1): at least one listener is required");
        assertThat(errors("")).containsExactly("listeners: at least one listener is required");
    }

    @Test
    void unsetEnvironmentVariableIsAnError() {
        assertThat(errors(MINIMAL + "admin:\n  token: ${UNSET_TOKEN}\n"))
                .containsExactly("admin.token (line 7): environment variable UNSET_TOKEN is not set");
    }

    @Test
    void environmentDefaultsMakeAVariableOptional() throws Exception {
        ProxyConfig config = loader.parse(MINIMAL + "admin:\n  token: ${UNSET_TOKEN:-}\n");
        assertThat(config.admin().hasToken()).isFalse();
    }

    @Test
    void nonLoopbackAdminNeedsAToken() throws Exception {
        assertThat(errors(MINIMAL + "admin:\n  listen: 0.0.0.0:9633\n")).containsExactly(
                "admin.listen (line 7): admin.listen 0.0.0.0:9633 is not a loopback address, so admin.token is required");
        assertThat(loader.parse(MINIMAL + "admin:\n  listen: 0.0.0.0:9633\n  token: ${TOKEN}\n").admin().token())
                .isEqualTo("s3cret");
        assertThat(loader.parse(MINIMAL + "admin:\n  listen: localhost:9633\n").admin().hasToken()).isFalse();
    }

    @Test
    void wrongTypesAndRangesAreErrors() {
        assertThat(errors("""
                listeners:
                  - name: pg
                    protocol: postgres
                    listen: 127.0.0.1:99999
                    upstream: db:5432
                    maxUpstreamConnections: many
                    connectTimeout: 0
                    upstreamTls:
                      mode: sometimes
                clients:
                  identity: [user, hostname]
                  maxTrackedClients: 0
                  defaults: [1, 2]
                logging:
                  format: xml
                  level: loud
                """)).containsExactlyInAnyOrder(
                "listeners[0].listen (line 4): port must be a number from 0 to 65535, got 99999",
                "listeners[0].maxUpstreamConnections (line 6): expected a whole number, got 'many'",
                "listeners[0].upstreamTls.mode (line 9): expected one of disable, require, verify-ca, verify-full, got 'sometimes'",
                "clients.identity[1] (line 11): expected one of user, database, application, address",
                "clients.maxTrackedClients (line 12): must be between 1 and 1000000, got 0",
                "clients.defaults (line 13): expected a mapping of maxConnections, queueTimeout, maxQueued, "
                        + "idleInTransactionTimeout, idleTimeout, leakDetectionThreshold, maxSessionLifetime, "
                        + "fleetMaxConnections, maxClientConnections",
                "logging.format (line 15): expected one of text, json, got 'xml'",
                "logging.level (line 16): expected one of trace, debug, info, warn, error, got 'loud'");
    }

    @Test
    void verifyModesNeedAReadableCaFile() {
        assertThat(errors(MINIMAL + """
                    upstreamTls:
                      mode: verify-ca
                """)).containsExactly("listeners[0].upstreamTls.caFile (line 7): mode verify-ca needs a caFile");
        assertThat(errors(MINIMAL + """
                    upstreamTls:
                      mode: verify-full
                      caFile: /nonexistent/ca.pem
                """)).containsExactly("listeners[0].upstreamTls.caFile (line 8): cannot read CA file /nonexistent/ca.pem");
    }

    /** Found by ConfigFuzzTest: naming a key that contains itself overflowed the stack. */
    @Test
    void aKeyThatIsAMappingIsNamedByItsKindEvenWhenItContainsItself() {
        assertThat(errors("""
                listeners:
                  - &m { name: pg, *m }
                  - { [a, b]: c }
                """)).contains(
                "listeners[0].<mapping> (line 2): unknown key (expected one of name, protocol, listen, upstream, "
                        + "maxUpstreamConnections, connectTimeout, handshakeTimeout, upstreamTls, clientTls, pool, auth)",
                "listeners[1].<sequence> (line 3): unknown key (expected one of name, protocol, listen, upstream, "
                        + "maxUpstreamConnections, connectTimeout, handshakeTimeout, upstreamTls, clientTls, pool, auth)");
    }

    /** Found by ConfigFuzzTest: SnakeYAML threw NumberFormatException, not a YAMLException, for this. */
    @Test
    void anEscapeCutOffByTheEndOfTheFileIsInvalidYaml() {
        assertThat(errors(MINIMAL + "    name: \"\\u")).singleElement().asString()
                .startsWith("(file): not valid YAML (NumberFormatException: ");
    }

    /** Found by ConfigFuzzTest: Path.of threw InvalidPathException out of the loader. */
    @Test
    void aCaFileNoPathCanHoldIsAnError() {
        assertThat(errors(MINIMAL + """
                    upstreamTls:
                      mode: verify-ca
                      caFile: "/etc/\\0ca.pem"
                """)).containsExactly("listeners[0].upstreamTls.caFile (line 8): not a valid file path: Nul character not allowed");
    }

    @Test
    void rulesNeedAMatchAndValidPatterns() throws Exception {
        assertThat(errors(MINIMAL + """
                clients:
                  rules:
                    - maxConnections: 5
                    - match: { host: x }
                    - match: { address: 10.0.0.0/40 }
                """)).containsExactlyInAnyOrder(
                "clients.rules[0].match (line 8): missing (required)",
                "clients.rules[1].match.host (line 9): unknown key (expected one of "
                        + "user, database, application, address, listener)",
                "clients.rules[2].match.address (line 10): prefix length out of range in '10.0.0.0/40'");
        ProxyConfig config = loader.parse(MINIMAL + """
                clients:
                  rules:
                    - match: { address: 10.0.0.0/8, listener: "p?" }
                      maxConnections: 3
                """);
        Match match = config.clients().rules().get(0).match();
        assertThat(match.matches("pg", "u", "d", "a", "10.1.2.3")).isTrue();
        assertThat(match.matches("pg", "u", "d", "a", "11.1.2.3")).isFalse();
        assertThat(match.matches("pgx", "u", "d", "a", "10.1.2.3")).isFalse();
    }

    @Test
    void invalidYamlIsReportedWithLine() {
        assertThat(errors("listeners:\n  - name: [unclosed\n")).singleElement()
                .satisfies(e -> assertThat(e).startsWith("(file) (line ").contains("not valid YAML"));
    }

    @Test
    void loadedConfigurationIsImmutable() throws Exception {
        ProxyConfig config = loader.parse(MINIMAL);
        assertThatThrownBy(() -> config.listeners().add(config.listeners().get(0)))
                .isInstanceOf(UnsupportedOperationException.class);
        assertThatThrownBy(() -> config.clients().rules().clear()).isInstanceOf(UnsupportedOperationException.class);
    }

    @Test
    void unreadableFileIsAConfigurationError(@TempDir Path dir) {
        assertThatThrownBy(() -> loader.load(dir.resolve("missing.yaml")))
                .isInstanceOf(ConfigException.class).hasMessageContaining("cannot read");
    }

    @Test
    void fleetIsOffByDefaultAndReadsItsStoreNameAndLeaseTtl() throws Exception {
        ProxyConfig off = loader.parse(MINIMAL);
        assertThat(off.fleet().enabled()).isFalse();
        assertThat(off.clients().defaults().fleetMaxConnections()).isZero();
        ProxyConfig on = loader.parse(MINIMAL + """
                clients:
                  defaults:
                    fleetMaxConnections: 40
                  rules:
                    - match: { user: reporting }
                      fleetMaxConnections: 5
                fleet:
                  store: redis://app:${TOKEN}@redis.internal:6380/2
                  name: orders-db
                  leaseTtl: 9s
                """);
        assertThat(on.fleet().enabled()).isTrue();
        assertThat(on.fleet().store().getHost()).isEqualTo("redis.internal");
        assertThat(on.fleet().name()).isEqualTo("orders-db");
        assertThat(on.fleet().leaseTtl()).isEqualTo(Duration.ofSeconds(9));
        assertThat(on.fleet().toString()).as("the password never shows").doesNotContain("s3cret")
                .contains("redis://app:***@redis.internal:6380/2");
        assertThat(on.clients().defaults().fleetMaxConnections()).isEqualTo(40);
        assertThat(on.clients().rules().get(0).applyTo(on.clients().defaults()).fleetMaxConnections()).isEqualTo(5);
        assertThat(loader.parse(MINIMAL + "fleet:\n  store: rediss://r:6379\n").fleet().leaseTtl())
                .isEqualTo(Duration.ofSeconds(15));
    }

    @Test
    void aFleetCapWithoutAStoreIsAnErrorNamingBothKeys() throws Exception {
        assertThat(errors(MINIMAL + """
                clients:
                  defaults:
                    fleetMaxConnections: 10
                  rules:
                    - match: { user: reporting }
                      fleetMaxConnections: 5
                """)).containsExactly(
                "clients.defaults.fleetMaxConnections (line 8): a fleet cap needs fleet.store (the Redis that replicas "
                        + "share); set fleet.store or remove fleetMaxConnections",
                "clients.rules[0].fleetMaxConnections (line 11): a fleet cap needs fleet.store (the Redis that replicas "
                        + "share); set fleet.store or remove fleetMaxConnections");
        assertThat(loader.parse(MINIMAL + "clients:\n  defaults:\n    fleetMaxConnections: 0\nfleet:\n  store: \"\"\n")
                .clients().defaults().fleetMaxConnections()).as("0 is no fleet cap, and needs no store").isZero();
    }

    @Test
    void badFleetValuesAreReported() {
        assertThat(errors(MINIMAL + """
                fleet:
                  store: http://r:6379
                  name: "a b"
                  leaseTtl: 100ms
                """)).containsExactly(
                "fleet.store (line 7): expected redis://[user:password@]host:port/db or rediss://... for TLS, got 'http://r:6379'",
                "fleet.name (line 8): must be 1 to 100 letters, digits, '.', '_' or '-', got 'a b'",
                "fleet.leaseTtl (line 9): must be between 1s and 1h (leases are renewed every leaseTtl/3)");
        assertThat(errors(MINIMAL + "fleet:\n  store: redis://:pw@r:6379/x\n")).containsExactly(
                "fleet.store (line 7): the database must be a number (redis://host:6379/0), got '/x'");
    }

    @Test
    void aFleetCaFileIsReadForATlsStore(@TempDir Path dir) throws Exception {
        Path ca = TestCertificates.authority("fleet CA").writeCa(dir.resolve("ca.pem"));
        ProxyConfig config = loader.parse(MINIMAL + "fleet:\n  store: rediss://redis:6380/0\n  caFile: " + ca + "\n");
        assertThat(config.fleet().caFile()).isEqualTo(ca);
        assertThat(config.fleet().toString()).contains("caFile=" + ca);
        assertThat(loader.parse(MINIMAL + "fleet:\n  store: rediss://redis:6380/0\n").fleet().caFile())
                .as("without one, the JVM's trust store").isNull();
    }

    @Test
    void aBadFleetCaFileIsReportedNamingItsKey(@TempDir Path dir) throws Exception {
        Path ca = TestCertificates.authority("fleet CA").writeCa(dir.resolve("ca.pem"));
        assertThat(errors(MINIMAL + "fleet:\n  store: rediss://redis:6380/0\n  caFile: /nonexistent/ca.pem\n"))
                .containsExactly("fleet.caFile (line 8): cannot read CA file /nonexistent/ca.pem");
        assertThat(errors(MINIMAL + "fleet:\n  store: redis://redis:6379/0\n  caFile: " + ca + "\n")).containsExactly(
                "fleet.caFile (line 8): a CA file needs a TLS store (rediss://host:port/db), but fleet.store is redis://");
        Path notPem = Files.writeString(dir.resolve("notes.txt"), "not a certificate\n");
        assertThat(errors(MINIMAL + "fleet:\n  store: rediss://redis:6380/0\n  caFile: " + notPem + "\n"))
                .singleElement().asString().startsWith("fleet.caFile (line 8): not a PEM CA bundle: ");
    }
}
