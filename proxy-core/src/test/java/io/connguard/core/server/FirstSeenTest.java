package io.connguard.core.server;

import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;

/** The once-per-client memory of log lines: once per key, and bounded. */
class FirstSeenTest {

    @Test
    void aKeyIsFirstOnlyOnce() {
        FirstSeen seen = new FirstSeen();
        assertThat(seen.first("tls at 10.0.0.1")).isTrue();
        assertThat(seen.first("tls at 10.0.0.1")).isFalse();
        assertThat(seen.first("tls at 10.0.0.2")).isTrue();
    }

    @Test
    void whenFullItForgetsEverythingRatherThanGrow() {
        FirstSeen seen = new FirstSeen();
        for (int i = 0; i < FirstSeen.MAX_KEYS; i++) {
            assertThat(seen.first("client " + i)).isTrue();
        }
        assertThat(seen.first("client 0")).as("still remembered while not over the bound").isFalse();
        assertThat(seen.first("one more")).isTrue();
        assertThat(seen.first("client 0")).as("forgotten: logged once more").isTrue();
    }
}
