package io.connguard.app.packaging;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The Dockerfile passes a real linter (npm's dockerfile-utils, installed by .ci/setup-packaging.sh;
 * missing, the test fails and says how to install it) and keeps the promises of the image: a Maven
 * wrapper build, a replaceable JRE base, a numeric non-root user, an exec-form entrypoint (no shell).
 */
class DockerfileLintTest {

    /** The oldest Java that builds connguard and runs its image: the bytecode level of the build. */
    static final int OLDEST_JAVA = 17;

    static final Path LINTER = Path.of(System.getProperty("connguard.dockerfileLinter",
            "/opt/connguard-ci/node_modules/.bin/dockerfile-utils"));

    @Test
    void dockerfileUtilsReportsNothing() throws Exception {
        JsonNode problems = lint(repository().resolve("Dockerfile"));
        assertThat(problems).as("dockerfile-utils lint: %s", problems).isEmpty();
    }

    @Test
    void theLinterReallyLints(@TempDir Path dir) throws Exception {
        Path broken = Files.writeString(dir.resolve("Dockerfile"), "FROM scratch\nCOPY\nMAINTAINER someone\n");
        assertThat(lint(broken)).extracting(p -> p.get("message").asText())
                .contains("COPY requires at least two arguments", "MAINTAINER has been deprecated");
    }

    @Test
    void buildStageRunsTheMavenWrapper() throws IOException {
        List<String> build = stages().get(0);
        assertThat(build.get(0)).isEqualTo("FROM ${BUILD_IMAGE} AS build");
        assertThat(build).anyMatch(i -> i.startsWith("RUN ") && i.contains("./mvnw -q -B package -DskipTests"));
        assertThat(instructions()).contains("ARG BUILD_IMAGE=eclipse-temurin:21-jdk");
    }

    @Test
    void runStageIsAJreBaseWithOnlyTheJar() throws IOException {
        List<String> run = stages().get(1);
        assertThat(run.get(0)).isEqualTo("FROM ${BASE_IMAGE}");
        assertThat(instructions()).anyMatch(i -> i.matches("ARG BASE_IMAGE=eclipse-temurin:(2[1-9]|[3-9][0-9])-jre"));
        assertThat(run).contains("COPY --from=build /src/proxy-app/target/connguard.jar /opt/connguard/connguard.jar");
        assertThat(run).as("nothing runs in the run stage, so it needs no shell").noneMatch(i -> i.startsWith("RUN "));
        assertThat(run).noneMatch(i -> i.startsWith("VOLUME "));
    }

    /**
     * The Java versions the Dockerfile's comment and the READMEs state are what the build really needs:
     * the lowest is the bytecode level of the build (maven.compiler.release), which the build and the
     * entrypoint flags accept (ImageEntrypointIT runs them on every installed JDK from that version on),
     * and the defaults it names are those of the ARG lines.
     */
    @Test
    void theJavaVersionsTheCommentsStateAreTheOnesTheBuildUses() throws IOException {
        String pom = Files.readString(repository().resolve("pom.xml"));
        java.util.regex.Matcher release = java.util.regex.Pattern
                .compile("<maven.compiler.release>(\\d+)</maven.compiler.release>").matcher(pom);
        assertThat(release.find()).isTrue();
        assertThat(Integer.parseInt(release.group(1))).isEqualTo(OLDEST_JAVA);

        String dockerfile = Files.readString(repository().resolve("Dockerfile"));
        assertThat(dockerfile).contains("any JDK " + OLDEST_JAVA + "+ image", "any JRE " + OLDEST_JAVA + "+ image")
                .doesNotContainPattern("any (JDK|JRE) (?!" + OLDEST_JAVA + "\\+)\\d+\\+");
        int buildDefault = defaultVersion("BUILD_IMAGE", "jdk");
        int runDefault = defaultVersion("BASE_IMAGE", "jre");
        assertThat(buildDefault).isGreaterThanOrEqualTo(OLDEST_JAVA);
        assertThat(runDefault).isGreaterThanOrEqualTo(OLDEST_JAVA);
        assertThat(dockerfile).contains("the default is a JDK " + buildDefault, "the default is a Java " + runDefault + " runtime");
        for (Path readme : List.of(repository().resolve("README.md"), HelmChart.dir().resolve("README.md"))) {
            assertThat(Files.readString(readme)).as("%s", readme)
                    .contains("default `eclipse-temurin:" + runDefault + "-jre`; any JRE " + OLDEST_JAVA + "+")
                    .doesNotContainPattern("any JRE (?!" + OLDEST_JAVA + "\\+)\\d+\\+");
        }
    }

    /** The Java feature version of an ARG's default eclipse-temurin image. */
    private static int defaultVersion(String arg, String kind) throws IOException {
        String prefix = "ARG " + arg + "=eclipse-temurin:";
        String instruction = instructions().stream().filter(i -> i.startsWith(prefix)).findFirst().orElseThrow();
        return Integer.parseInt(instruction.substring(prefix.length()).replaceFirst("-" + kind + "$", ""));
    }

    @Test
    void runsAsANumericNonRootUser() throws IOException {
        String user = stages().get(1).stream().filter(i -> i.startsWith("USER ")).reduce((a, b) -> b).orElseThrow();
        assertThat(user).matches("USER [1-9][0-9]*:[1-9][0-9]*");
    }

    @Test
    void entrypointIsExecFormWithContainerFlags() throws Exception {
        List<String> entrypoint = entrypoint();
        assertThat(entrypoint.get(0)).isEqualTo("java");
        assertThat(entrypoint).contains("--enable-native-access=ALL-UNNAMED", "-XX:+ExitOnOutOfMemoryError")
                .anyMatch(flag -> flag.startsWith("-XX:MaxRAMPercentage="))
                .endsWith("-jar", "/opt/connguard/connguard.jar");
    }

    /**
     * Below 256 MiB the JVM sizes the heap by MinRAMPercentage (default 50) and ignores MaxRAMPercentage, so
     * both are set, to the same value; metaspace and code cache have caps. ImageEntrypointIT adds them up.
     */
    @Test
    void entrypointCapsEveryPartOfTheJvmThatGrows() throws Exception {
        List<String> entrypoint = entrypoint();
        String max = entrypoint.stream().filter(f -> f.startsWith("-XX:MaxRAMPercentage=")).findFirst().orElseThrow();
        assertThat(entrypoint).contains(max.replace("Max", "Min"))
                .anyMatch(flag -> flag.startsWith("-XX:MaxMetaspaceSize="))
                .anyMatch(flag -> flag.startsWith("-XX:ReservedCodeCacheSize="))
                .noneMatch(flag -> flag.startsWith("-XX:MaxDirectMemorySize="));
    }

    @Test
    void configAdminPortAndLabels() throws IOException {
        List<String> run = stages().get(1);
        assertThat(run).contains("ENV CONNGUARD_CONFIG=/etc/connguard/connguard.yaml", "EXPOSE 9633");
        String labels = String.join(" ", run.stream().filter(i -> i.startsWith("LABEL ")).toList());
        for (String key : List.of("title", "description", "source", "licenses", "version", "revision", "base.name")) {
            assertThat(labels).contains("org.opencontainers.image." + key + "=");
        }
    }

    @Test
    void buildContextLeavesOutTheBuildOutputs() throws IOException {
        assertThat(Files.readAllLines(repository().resolve(".dockerignore"))).contains("**/target/", ".git/");
    }

    /** The ENTRYPOINT's JSON array. */
    static List<String> entrypoint() throws IOException {
        String instruction = instructions().stream().filter(i -> i.startsWith("ENTRYPOINT ")).reduce((a, b) -> b).orElseThrow();
        JsonNode array = new ObjectMapper().readTree(instruction.substring("ENTRYPOINT ".length()));
        assertThat(array.isArray()).as("exec form: %s", instruction).isTrue();
        List<String> args = new ArrayList<>();
        array.forEach(a -> args.add(a.asText()));
        return args;
    }

    private static JsonNode lint(Path dockerfile) throws IOException, InterruptedException {
        assertThat(Files.isExecutable(LINTER))
                .as("the Dockerfile linter %s is missing: run `sudo bash .ci/setup-packaging.sh` "
                        + "(installs dockerfile-utils from npm), or point -Dconnguard.dockerfileLinter at one", LINTER)
                .isTrue();
        Process process = new ProcessBuilder(LINTER.toString(), "lint", "--json", dockerfile.toString())
                .redirectErrorStream(true).start();
        String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(process.waitFor(60, TimeUnit.SECONDS)).isTrue();
        return new ObjectMapper().readTree(output);
    }

    static Path repository() {
        return HelmChart.dir().getParent().getParent();
    }

    /** Instructions with continuation lines joined and comments dropped, e.g. "USER 65532:65532". */
    static List<String> instructions() throws IOException {
        List<String> instructions = new ArrayList<>();
        StringBuilder current = new StringBuilder();
        for (String line : Files.readAllLines(repository().resolve("Dockerfile"))) {
            String trimmed = line.strip();
            if (trimmed.startsWith("#") || trimmed.isEmpty() && current.isEmpty()) {
                continue;
            }
            boolean continued = trimmed.endsWith("\\");
            current.append(continued ? trimmed.substring(0, trimmed.length() - 1).strip() : trimmed)
                    .append(continued ? " " : "");
            if (!continued) {
                instructions.add(current.toString().replaceAll("\\s+", " ").strip());
                current.setLength(0);
            }
        }
        return instructions;
    }

    static List<List<String>> stages() throws IOException {
        List<List<String>> stages = new ArrayList<>();
        for (String instruction : instructions()) {
            if (instruction.startsWith("FROM ")) {
                stages.add(new ArrayList<>());
            }
            if (!stages.isEmpty()) {
                stages.get(stages.size() - 1).add(instruction);
            }
        }
        assertThat(stages).as("a build stage and a run stage").hasSize(2);
        return stages;
    }
}
