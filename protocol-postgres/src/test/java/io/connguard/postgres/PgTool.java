package io.connguard.postgres;

import io.connguard.core.testing.TestProxy;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.fail;

/** Runs the PostgreSQL client programs (psql, pgbench) against a proxy listener, as a user would. */
final class PgTool {

    /** What a finished program left behind. */
    record Result(int exitCode, String out, String err) {
        @Override
        public String toString() {
            return "exit " + exitCode + "\n--- stdout\n" + out + "\n--- stderr\n" + err;
        }
    }

    private PgTool() {
    }

    /** The environment libpq reads: the proxy's port, the test user and database, plaintext, an app name. */
    static Map<String, String> env(TestProxy proxy, String application) {
        return Map.of("PGHOST", "127.0.0.1", "PGPORT", String.valueOf(proxy.port("pg")),
                "PGUSER", PgIt.db().user(), "PGPASSWORD", PgIt.db().password(), "PGDATABASE", PgIt.db().database(),
                "PGAPPNAME", application, "PGCONNECT_TIMEOUT", "10");
    }

    /**
     * What psql needs in its environment to use a libpq of version {@code major} or newer (17:
     * {@code sslnegotiation=direct}; 18: {@code max_protocol_version=3.2}): nothing when the machine's psql is
     * that new, else a newer libpq first on LD_LIBRARY_PATH ({@code .ci/setup-libpq.sh} puts one in
     * /opt/connguard-it/libpq; {@code CONNGUARD_IT_LIBPQ} names another directory). Fails, naming the fix,
     * when there is none.
     */
    static Map<String, String> libpq(int major) throws IOException, InterruptedException {
        Result version = run(Map.of(), 30, "psql", "--version");
        java.util.regex.Matcher found = java.util.regex.Pattern.compile(" (\\d+)").matcher(version.out());
        if (found.find() && Integer.parseInt(found.group(1)) >= major) {
            return Map.of();
        }
        Path dir = Path.of(System.getenv().getOrDefault("CONNGUARD_IT_LIBPQ", "/opt/connguard-it/libpq"));
        if (!Files.exists(dir.resolve("libpq.so.5"))) {
            fail("this test needs a libpq " + major + " or newer, this machine has " + version.out().strip()
                    + " and " + dir + " holds no libpq.so.5: run .ci/setup-libpq.sh as root (or set CONNGUARD_IT_LIBPQ)");
        }
        return Map.of("LD_LIBRARY_PATH", dir.toString());
    }

    static Process start(Map<String, String> env, String program, String... args) throws IOException {
        List<String> command = new ArrayList<>();
        command.add(PgIt.program(program));
        command.addAll(List.of(args));
        ProcessBuilder builder = new ProcessBuilder(command);
        builder.environment().keySet().removeIf(key -> key.startsWith("PG"));
        builder.environment().putAll(env);
        Path out = Files.createTempFile("cg-pg-" + program, ".out");
        Path err = Files.createTempFile("cg-pg-" + program, ".err");
        builder.redirectOutput(out.toFile()).redirectError(err.toFile()).redirectInput(ProcessBuilder.Redirect.PIPE);
        Process process = builder.start();
        process.getOutputStream().close();
        OUTPUTS.put(process, new Path[] {out, err});
        return process;
    }

    private static final Map<Process, Path[]> OUTPUTS = new java.util.concurrent.ConcurrentHashMap<>();

    static Result finish(Process process, long timeoutSeconds) throws IOException, InterruptedException {
        if (!process.waitFor(timeoutSeconds, TimeUnit.SECONDS)) {
            process.destroyForcibly();
            Path[] files = OUTPUTS.remove(process);
            fail("still running after " + timeoutSeconds + " s; stdout: " + Files.readString(files[0])
                    + " stderr: " + Files.readString(files[1]));
        }
        Path[] files = OUTPUTS.remove(process);
        Result result = new Result(process.exitValue(), Files.readString(files[0], StandardCharsets.UTF_8),
                Files.readString(files[1], StandardCharsets.UTF_8));
        Files.deleteIfExists(files[0]);
        Files.deleteIfExists(files[1]);
        return result;
    }

    static Result run(Map<String, String> env, long timeoutSeconds, String program, String... args)
            throws IOException, InterruptedException {
        return finish(start(env, program, args), timeoutSeconds);
    }

    /** Sends a signal (INT for Ctrl-C) to a running program. */
    static void signal(Process process, String signal) throws IOException, InterruptedException {
        Process kill = new ProcessBuilder("kill", "-" + signal, String.valueOf(process.pid())).inheritIO().start();
        if (kill.waitFor() != 0) {
            fail("kill -" + signal + " " + process.pid() + " failed");
        }
    }
}
