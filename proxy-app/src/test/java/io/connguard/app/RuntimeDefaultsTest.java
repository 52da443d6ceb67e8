package io.connguard.app;

import org.junit.jupiter.api.Test;

import java.util.Properties;

import static org.assertj.core.api.Assertions.assertThat;

/** Netty's defaults that connguard sets before Netty loads; the packaged jar's effect is MemoryBudgetIT's. */
class RuntimeDefaultsTest {

    @Test
    void setsSmallChunksNoJfrOwnDirectMemoryAndNoLeakDetectionWhenNothingIsSet() {
        Properties properties = new Properties();
        RuntimeDefaults.apply(properties);
        assertThat(properties).containsEntry("io.netty.allocator.maxOrder", "7")
                .containsEntry("io.netty.jfr.enabled", "false")
                .containsEntry("io.netty.tryReflectionSetAccessible", "true")
                .containsEntry("io.netty.leakDetection.level", "disabled");
    }

    @Test
    void aValueGivenOnTheCommandLineWins() {
        Properties properties = new Properties();
        properties.setProperty("io.netty.allocator.maxOrder", "9");
        properties.setProperty("io.netty.leakDetection.level", "simple");
        RuntimeDefaults.apply(properties);
        assertThat(properties).containsEntry("io.netty.allocator.maxOrder", "9")
                .containsEntry("io.netty.leakDetection.level", "simple")
                .containsEntry("io.netty.jfr.enabled", "false");
    }
}
