package io.connguard.core.config;

import com.code_intelligence.jazzer.junit.FuzzTest;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Fuzzes {@link ConfigLoader#parse}: whatever text an operator (or a broken ConfigMap) hands it, the loader
 * answers with a configuration or a {@link ConfigException} listing errors; any other exception would
 * take the process down at start-up or on a reload instead of being reported. What it accepts must also be
 * usable: every duration fits the nanosecond arithmetic of the timers and the drain.
 *
 * <p>Regression mode (every test run) replays {@code ConfigFuzzTestInputs/parse/}, seeded from the
 * example files and edge cases; {@code fuzz/run.sh} fuzzes for real.
 */
class ConfigFuzzTest {

    private final ConfigLoader loader = new ConfigLoader(
            Map.of("TOKEN", "s3cret", "PORT", "7000", "EMPTY", "")::get, Set.of("postgres", "mysql"));

    @FuzzTest(maxDuration = "10m")
    void parse(byte[] input) {
        String text = new String(input, StandardCharsets.UTF_8);
        ProxyConfig config;
        try {
            config = loader.parse(text);
        } catch (ConfigException e) {
            assertThat(e.errors()).as("a ConfigException names at least one error").isNotEmpty();
            for (ConfigError error : e.errors()) {
                assertThat(error.path()).isNotNull();
                assertThat(error.line()).isNotNegative();
                assertThat(error.message()).isNotBlank();
            }
            return;
        }
        assertUsable(config);
    }

    /** What the rest of the proxy assumes of a configuration the loader accepted. */
    private static void assertUsable(ProxyConfig config) {
        assertThat(config.listeners()).isNotEmpty();
        assertThat(config.listeners().stream().map(ListenerConfig::name).distinct().count())
                .as("listener names are unique").isEqualTo(config.listeners().size());
        List<Duration> durations = new ArrayList<>();
        for (ListenerConfig listener : config.listeners()) {
            assertThat(listener.upstream().port()).isBetween(1, 65535);
            assertThat(listener.maxUpstreamConnections()).isNotNegative();
            durations.add(listener.connectTimeout());
            durations.add(listener.handshakeTimeout());
        }
        List<Limits> limits = new ArrayList<>();
        limits.add(config.clients().defaults());
        for (Rule rule : config.clients().rules()) {
            durations.add(rule.queueTimeout());
            durations.add(rule.idleInTransactionTimeout());
            durations.add(rule.idleTimeout());
            durations.add(rule.leakDetectionThreshold());
            durations.add(rule.maxSessionLifetime());
        }
        for (Limits limit : limits) {
            durations.add(limit.queueTimeout());
            durations.add(limit.idleInTransactionTimeout());
            durations.add(limit.idleTimeout());
            durations.add(limit.leakDetectionThreshold());
            durations.add(limit.maxSessionLifetime());
        }
        durations.add(config.shutdown().minDrainDelay());
        durations.add(config.shutdown().drainTimeout());
        for (Duration duration : durations) {
            if (duration != null) {
                assertThat(duration.isNegative()).as("%s is negative", duration).isFalse();
                assertThat(duration).as("a duration the timers can schedule").isLessThanOrEqualTo(YamlFields.MAX_DURATION);
            }
        }
    }
}
