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
 * The repository stands alone: no tracked file (source, comment, Javadoc, README, chart, script) refers
 * to a design or style document outside it, or to a directory next to the checkout. What contributors
 * need is in README.md and docs/.
 */
class RepositoryStandsAloneTest {

    // Spelled in pieces so that this file does not name them itself.
    private static final List<String> OUTSIDE = List.of(
            "DESI" + "GN.md", "STY" + "LE.md", "../" + "shared", "/work" + "/shared");

    @Test
    void noTrackedFileMentionsDocumentsOutsideTheRepository() throws Exception {
        Path repository = DockerfileLintTest.repository();
        List<Path> files = trackedFiles(repository);
        assertThat(files).as("tracked files under %s", repository).hasSizeGreaterThan(100)
                .contains(repository.resolve("README.md"), repository.resolve("docs/architecture.md"));
        List<String> mentions = new ArrayList<>();
        for (Path file : files) {
            if (!Files.isRegularFile(file)) {
                continue; // deleted in the work tree but not yet in the index
            }
            byte[] bytes = Files.readAllBytes(file);
            if (binary(bytes)) {
                continue;
            }
            String[] lines = new String(bytes, StandardCharsets.UTF_8).split("\n", -1);
            for (int i = 0; i < lines.length; i++) {
                for (String outside : OUTSIDE) {
                    if (lines[i].contains(outside)) {
                        mentions.add(repository.relativize(file) + ":" + (i + 1) + ": " + lines[i].strip());
                    }
                }
            }
        }
        assertThat(mentions).as("lines that refer to documents outside the repository").isEmpty();
    }

    @Test
    void contributorsFindTheContractAndTheRulesInTheRepository() throws Exception {
        Path repository = DockerfileLintTest.repository();
        assertThat(Files.readString(repository.resolve("README.md"))).contains("(docs/architecture.md)");
        assertThat(Files.readString(repository.resolve("docs/architecture.md")))
                .contains("## The contract", "## Architecture", "## Code rules", "## Test rules");
    }

    /** {@code git ls-files}, or every file outside build output when the tree is not a git checkout. */
    private static List<Path> trackedFiles(Path repository) throws IOException, InterruptedException {
        if (Files.exists(repository.resolve(".git"))) {
            Process git = new ProcessBuilder("git", "ls-files", "-z").directory(repository.toFile())
                    .redirectError(ProcessBuilder.Redirect.DISCARD).start();
            String out = new String(git.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            assertThat(git.waitFor(60, TimeUnit.SECONDS)).isTrue();
            assertThat(git.exitValue()).as("git ls-files in %s", repository).isZero();
            List<Path> files = new ArrayList<>();
            for (String name : out.split("\0")) {
                if (!name.isEmpty()) {
                    files.add(repository.resolve(name));
                }
            }
            return files;
        }
        try (Stream<Path> walk = Files.walk(repository)) {
            return walk.filter(Files::isRegularFile)
                    .filter(f -> !repository.relativize(f).toString().matches("(.*/)?(target|\\.git)/.*"))
                    .toList();
        }
    }

    private static boolean binary(byte[] bytes) {
        for (int i = 0; i < Math.min(bytes.length, 8192); i++) {
            if (bytes[i] == 0) {
                return true;
            }
        }
        return false;
    }
}
