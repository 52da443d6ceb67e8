package io.connguard.app.fleet;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * A {@code redis-server} of the test's own, on a free port and without persistence, so that a test can stop
 * it and start it again (empty, as a Redis restart without persistence comes back) without touching the
 * shared server on 6379.
 */
final class RedisProcess implements AutoCloseable {

    private final int port;
    private final Path dir;
    private Process process;

    private RedisProcess(int port, Path dir) {
        this.port = port;
        this.dir = dir;
    }

    static RedisProcess start(Path dir) throws IOException, InterruptedException {
        int port;
        try (ServerSocket socket = new ServerSocket(0)) {
            port = socket.getLocalPort();
        }
        RedisProcess redis = new RedisProcess(port, dir);
        redis.start();
        return redis;
    }

    int port() {
        return port;
    }

    /** Starts the server (again, with no data) and waits until it answers PING. */
    void start() throws IOException, InterruptedException {
        process = new ProcessBuilder(List.of("redis-server", "--port", Integer.toString(port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", dir.toString()))
                .redirectErrorStream(true).redirectOutput(dir.resolve("redis-" + port + ".log").toFile()).start();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (System.nanoTime() < deadline) {
            if (!process.isAlive()) {
                throw new AssertionError("redis-server exited with " + process.exitValue()
                        + "; is redis-server installed (apt-get install redis-server)?");
            }
            if (answers()) {
                return;
            }
            Thread.sleep(50);
        }
        throw new AssertionError("redis-server on port " + port + " did not answer within 20 s");
    }

    /** Stops the server; what it held is gone. */
    void stop() throws InterruptedException {
        process.destroyForcibly();
        process.waitFor(10, TimeUnit.SECONDS);
    }

    /** One command in RESP, the reply's first line (enough for PING, ZCARD, DBSIZE). */
    String command(String... args) throws IOException {
        return command(port, args);
    }

    /** One command to the Redis on {@code port} of this machine; the reply's first line. */
    static String command(int port, String... args) throws IOException {
        try (Socket socket = new Socket()) {
            socket.connect(new InetSocketAddress("127.0.0.1", port), 2000);
            socket.setSoTimeout(2000);
            StringBuilder out = new StringBuilder("*" + args.length + "\r\n");
            for (String arg : args) {
                out.append('$').append(arg.getBytes(StandardCharsets.UTF_8).length).append("\r\n").append(arg).append("\r\n");
            }
            OutputStream os = socket.getOutputStream();
            os.write(out.toString().getBytes(StandardCharsets.UTF_8));
            os.flush();
            InputStream in = socket.getInputStream();
            StringBuilder line = new StringBuilder();
            for (int b; (b = in.read()) != -1 && b != '\r'; ) {
                line.append((char) b);
            }
            return line.toString();
        }
    }

    private boolean answers() {
        try {
            return command("PING").equals("+PONG");
        } catch (IOException e) {
            return false;
        }
    }

    @Override
    public void close() throws InterruptedException {
        if (process != null && process.isAlive()) {
            stop();
        }
    }
}
