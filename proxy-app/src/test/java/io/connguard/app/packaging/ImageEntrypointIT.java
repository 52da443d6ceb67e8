package io.connguard.app.packaging;

import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The image's ENTRYPOINT, taken from the Dockerfile, started with the packaged jar and {@code --version}
 * on the build's JVM and on every JDK 17+ installed under /usr/lib/jvm (the Dockerfile admits any Java
 * 17+ runtime; its default base is a Java 25 runtime): the JVM flags are accepted, nothing is printed but
 * the version; and in a 256 MiB container the flags size every part of the JVM that can grow so that their
 * sum fits. Building and running the image itself is .ci/image-smoke.sh (it needs root and podman).
 */
class ImageEntrypointIT {

    /** What the JVM needs besides heap, direct memory, metaspace and code cache (bench/README.md, "Footprint"). */
    static final long JVM_OWN_MIB = 44;

    @Test
    void entrypointPrintsTheVersion() throws Exception {
        Path jar = DockerfileLintTest.repository().resolve("proxy-app/target/connguard.jar");
        assertThat(jar).as("run after `package`").exists();
        for (Path java : javas()) {
            List<String> command = new ArrayList<>();
            for (String arg : DockerfileLintTest.entrypoint()) {
                command.add(switch (arg) {
                    case "java" -> java.toString();
                    case "/opt/connguard/connguard.jar" -> jar.toString();
                    default -> arg;
                });
            }
            command.add("--version");
            Process process = new ProcessBuilder(command).redirectErrorStream(true).start();
            String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            assertThat(process.waitFor(60, TimeUnit.SECONDS)).isTrue();
            assertThat(process.exitValue()).as("%s: %s", java, output).isZero();
            assertThat(output).as("%s", java).matches("connguard \\S+\\R");
        }
    }

    /**
     * Heap + direct memory + metaspace + code cache + the JVM's own share, as the JVM sizes them from the
     * entrypoint's flags in a 256 MiB container (emulated with -XX:MaxRAM, which is what the JVM reads from
     * the container's cgroup), stays below the limit on every JDK: with the flags before this test existed
     * (MaxRAMPercentage=50, nothing else capped) heap and direct memory alone were 256 MiB. At 224 MiB, the
     * smallest limit docs/memory.md recommends, it fits as well.
     */
    @Test
    void everyGrowingPartIsCappedInsideTheContainerLimit() throws Exception {
        for (Path java : javas()) {
            for (long limitMib : new long[] {224, 256, 512}) {
                Map<String, Long> flags = finalFlags(java, limitMib);
                long heap = flags.get("MaxHeapSize");
                long direct = flags.get("MaxDirectMemorySize") == 0 ? heap : flags.get("MaxDirectMemorySize");
                long metaspace = flags.get("MaxMetaspaceSize");
                long codeCache = flags.get("ReservedCodeCacheSize");
                long sum = heap + direct + metaspace + codeCache + (JVM_OWN_MIB << 20);
                assertThat(sum).as("%s in %d MiB: heap %d + direct %d + metaspace %d + code cache %d + %d MiB (bytes)",
                        java, limitMib, heap, direct, metaspace, codeCache, JVM_OWN_MIB).isLessThanOrEqualTo(limitMib << 20);
                assertThat(heap).as("%s in %d MiB: the heap scales with the limit", java, limitMib)
                        .isGreaterThanOrEqualTo((limitMib << 20) / 5);
                assertThat(flags.get("ExitOnOutOfMemoryError")).as("%s: a full heap exits", java).isEqualTo(1L);
            }
        }
    }

    /**
     * The chart's {@code sidecar.jvmOptions} change a flag the image sets: the chart's command puts them after
     * the image's flags, and the JVM takes a flag's last value. Through JDK_JAVA_OPTIONS (what the chart did
     * before) the same flags came first and changed nothing, which is why the chart no longer uses it.
     */
    @Test
    void theChartsJvmOptionsOverrideTheImagesFlags() throws Exception {
        String options = "-XX:MinRAMPercentage=40 -XX:MaxRAMPercentage=40";
        List<String> command = HelmChart.render("sidecar: { jvmOptions: \"" + options + "\" }").sidecar().getCommand();
        Path java = Path.of(System.getProperty("java.home"), "bin", "java");
        long heap = finalFlags(java, 256, command.subList(1, command.indexOf("-jar")), Map.of()).get("MaxHeapSize");
        assertThat(heap).as("40%% of 256 MiB").isBetween(100L << 20, 104L << 20);

        List<String> entrypoint = DockerfileLintTest.entrypoint();
        long before = finalFlags(java, 256, entrypoint.subList(1, entrypoint.indexOf("-jar")),
                Map.of("JDK_JAVA_OPTIONS", options)).get("MaxHeapSize");
        assertThat(before).as("JDK_JAVA_OPTIONS come before the image's 25%%").isEqualTo(64L << 20);
    }

    /** The entrypoint's JVM flags, with -XX:MaxRAM for the container limit, as -XX:+PrintFlagsFinal prints them. */
    private static Map<String, Long> finalFlags(Path java, long limitMib) throws Exception {
        List<String> entrypoint = DockerfileLintTest.entrypoint();
        return finalFlags(java, limitMib, entrypoint.subList(1, entrypoint.indexOf("-jar")), Map.of());
    }

    /** {@code jvmFlags} with -XX:MaxRAM for the container limit, as -XX:+PrintFlagsFinal prints them. */
    private static Map<String, Long> finalFlags(Path java, long limitMib, List<String> jvmFlags,
                                                Map<String, String> environment) throws Exception {
        List<String> command = new ArrayList<>(List.of(java.toString(), "-XX:MaxRAM=" + limitMib + "m"));
        command.addAll(jvmFlags);
        command.addAll(List.of("-XX:+PrintFlagsFinal", "-version"));
        ProcessBuilder builder = new ProcessBuilder(command).redirectErrorStream(true);
        builder.environment().remove("JDK_JAVA_OPTIONS");
        builder.environment().putAll(environment);
        Process process = builder.start();
        String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(process.waitFor(60, TimeUnit.SECONDS)).isTrue();
        assertThat(process.exitValue()).as("%s: %s", command, output).isZero();
        Map<String, Long> flags = new HashMap<>();
        Matcher m = Pattern.compile("^\\s*\\S+\\s+(\\w+)\\s+:?=\\s+(\\S+)", Pattern.MULTILINE).matcher(output);
        while (m.find()) {
            String value = m.group(2);
            if (value.matches("\\d+")) {
                flags.put(m.group(1), new BigInteger(value).min(BigInteger.valueOf(Long.MAX_VALUE)).longValue());
            } else if (value.equals("true") || value.equals("false")) {
                flags.put(m.group(1), value.equals("true") ? 1L : 0L);
            }
        }
        return flags;
    }

    private static List<Path> javas() throws IOException {
        List<Path> javas = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java")));
        javas.addAll(newerJdks());
        return javas;
    }

    private static List<Path> newerJdks() throws IOException {
        Path jvms = Path.of("/usr/lib/jvm");
        if (!Files.isDirectory(jvms)) {
            return List.of();
        }
        try (Stream<Path> dirs = Files.list(jvms)) {
            return dirs.filter(d -> !Files.isSymbolicLink(d))
                    .filter(d -> feature(d) >= DockerfileLintTest.OLDEST_JAVA)
                    .map(d -> d.resolve("bin/java"))
                    .filter(Files::isExecutable)
                    .toList();
        }
    }

    /** The JDK's feature version from its release file, 0 when unknown. */
    private static int feature(Path jdk) {
        try {
            for (String line : Files.readAllLines(jdk.resolve("release"))) {
                if (line.startsWith("JAVA_VERSION=")) {
                    return Integer.parseInt(line.replaceAll("JAVA_VERSION=\"?(\\d+).*", "$1"));
                }
            }
        } catch (IOException | NumberFormatException e) {
            return 0;
        }
        return 0;
    }
}
