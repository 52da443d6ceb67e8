package io.connguard.app.packaging;

import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The image's ENTRYPOINT, taken from the Dockerfile, started with the packaged jar and {@code --version}
 * on the build's JVM and on every JDK 17+ installed under /usr/lib/jvm (the Dockerfile admits any Java
 * 17+ runtime; its default base is a Java 25 runtime): the JVM flags are accepted, nothing is printed but the version. Building and running the
 * image itself is .ci/image-smoke.sh (it needs root and podman).
 */
class ImageEntrypointIT {

    @Test
    void entrypointPrintsTheVersion() throws Exception {
        Path jar = DockerfileLintTest.repository().resolve("proxy-app/target/connguard.jar");
        assertThat(jar).as("run after `package`").exists();
        List<Path> javas = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java")));
        javas.addAll(newerJdks());
        for (Path java : javas) {
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
