package io.connguard.app;

import java.util.Map;
import java.util.Properties;

/**
 * System properties that connguard sets for Netty before any Netty class loads, each only when it is not
 * set already (on the command line or in {@code JDK_JAVA_OPTIONS}), so that every one can be overridden.
 * They keep a sidecar small without costing the relay path anything (bench/README.md, "Footprint").
 */
final class RuntimeDefaults {

    /** Property, value, and why. */
    static final Map<String, String> DEFAULTS = Map.of(
            // Netty's leak detector samples one buffer allocation in 128 and records a stack trace for it:
            // a cost on the relay path that a released build does not need (the tests run it at paranoid).
            // -Dio.netty.leakDetection.level=simple turns it back on for diagnosis.
            "io.netty.leakDetection.level", "disabled",
            // Chunks of 1 MiB instead of 4 MiB in the pooled allocator: each event loop's arena holds at
            // least one chunk, so an idle proxy keeps 3 MiB of direct memory instead of 12, and direct
            // memory grows in smaller steps. Relay reads are at most 64 KiB, far below a chunk.
            "io.netty.allocator.maxOrder", "7",
            // Netty's JFR events (buffer allocations) load the JDK's flight recorder and class-file API,
            // ~170 classes and their metadata, for events nobody records in a sidecar.
            "io.netty.jfr.enabled", "false",
            // With java.nio opened to it (the jar's manifest does), Netty allocates direct memory through
            // Unsafe and counts it against its own cap (MaxDirectMemorySize, i.e. the heap's size): an
            // allocation beyond the cap fails at once. Through ByteBuffer.allocateDirect, the JDK would first
            // run a full GC and retry for half a second, on the event loop, for every failing allocation.
            "io.netty.tryReflectionSetAccessible", "true");

    private RuntimeDefaults() {
    }

    /** Sets each default that {@code properties} does not have yet. */
    static void apply(Properties properties) {
        DEFAULTS.forEach(properties::putIfAbsent);
    }
}
