package io.connguard.core.testing;

import javax.net.SocketFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManagerFactory;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.security.cert.CertificateFactory;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * A {@code redis-server} of the test's own, on a free port and without persistence, so that a test can stop
 * it and start it again (empty, as a Redis restart without persistence comes back) without touching the
 * shared server on 6379; optionally with a password ({@code --requirepass}) or TLS only (a certificate from
 * {@link TestCertificates}, plain port off).
 */
public final class RedisProcess implements AutoCloseable {

    private final int port;
    private final Path dir;
    private final List<String> options;
    private final String password;
    private final SocketFactory sockets;
    private Process process;

    private RedisProcess(int port, Path dir, List<String> options, String password, SocketFactory sockets) {
        this.port = port;
        this.dir = dir;
        this.options = options;
        this.password = password;
        this.sockets = sockets;
    }

    /** A plain server, no password. */
    public static RedisProcess start(Path dir) throws IOException, InterruptedException {
        int port = freePort();
        return start(new RedisProcess(port, dir, List.of("--port", Integer.toString(port)), null,
                SocketFactory.getDefault()));
    }

    /** A plain server that refuses every command until {@code AUTH password}. */
    public static RedisProcess withPassword(Path dir, String password) throws IOException, InterruptedException {
        int port = freePort();
        return start(new RedisProcess(port, dir, List.of("--port", Integer.toString(port), "--requirepass", password),
                password, SocketFactory.getDefault()));
    }

    /**
     * A server on TLS only, with {@code cert}/{@code key} (issued by the CA in {@code caFile}) and no client
     * certificates asked for; this class's own commands trust {@code caFile}.
     */
    public static RedisProcess withTls(Path dir, Path cert, Path key, Path caFile) throws IOException, InterruptedException {
        int port = freePort();
        return start(new RedisProcess(port, dir, List.of("--port", "0", "--tls-port", Integer.toString(port),
                "--tls-cert-file", cert.toString(), "--tls-key-file", key.toString(),
                "--tls-ca-cert-file", caFile.toString(), "--tls-auth-clients", "no"), null, trusting(caFile)));
    }

    private static RedisProcess start(RedisProcess redis) throws IOException, InterruptedException {
        redis.start();
        return redis;
    }

    private static int freePort() throws IOException {
        try (ServerSocket socket = new ServerSocket(0)) {
            return socket.getLocalPort();
        }
    }

    private static SocketFactory trusting(Path caFile) throws IOException {
        try (InputStream in = Files.newInputStream(caFile)) {
            KeyStore store = KeyStore.getInstance(KeyStore.getDefaultType());
            store.load(null, null);
            int i = 0;
            for (var certificate : CertificateFactory.getInstance("X.509").generateCertificates(in)) {
                store.setCertificateEntry("ca" + i++, certificate);
            }
            TrustManagerFactory trust = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
            trust.init(store);
            SSLContext context = SSLContext.getInstance("TLS");
            context.init(null, trust.getTrustManagers(), null);
            return context.getSocketFactory();
        } catch (java.security.GeneralSecurityException e) {
            throw new IOException("cannot trust " + caFile, e);
        }
    }

    public int port() {
        return port;
    }

    /** Starts the server (again, with no data) and waits until it answers PING. */
    public void start() throws IOException, InterruptedException {
        List<String> command = new ArrayList<>(List.of("redis-server", "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", dir.toString()));
        command.addAll(options);
        process = new ProcessBuilder(command)
                .redirectErrorStream(true).redirectOutput(dir.resolve("redis-" + port + ".log").toFile()).start();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (System.nanoTime() < deadline) {
            if (!process.isAlive()) {
                throw new AssertionError("redis-server exited with " + process.exitValue()
                        + "; is redis-server installed (apt-get install redis-server)? See "
                        + dir.resolve("redis-" + port + ".log"));
            }
            if (answers()) {
                return;
            }
            Thread.sleep(50);
        }
        throw new AssertionError("redis-server on port " + port + " did not answer within 20 s");
    }

    /** Stops the server; what it held is gone. */
    public void stop() throws InterruptedException {
        process.destroyForcibly();
        process.waitFor(10, TimeUnit.SECONDS);
    }

    /**
     * One command in RESP (after AUTH when the server has a password, over TLS when it has TLS), the reply's
     * first line (enough for PING, ZCARD, DBSIZE).
     */
    public String command(String... args) throws IOException {
        try (Socket socket = sockets.createSocket()) {
            socket.connect(new InetSocketAddress("127.0.0.1", port), 2000);
            socket.setSoTimeout(2000);
            if (socket instanceof SSLSocket tls) {
                tls.startHandshake();
            }
            OutputStream os = socket.getOutputStream();
            InputStream in = socket.getInputStream();
            if (password != null) {
                send(os, "AUTH", password);
                String ok = line(in);
                if (!ok.equals("+OK")) {
                    throw new IOException("AUTH refused: " + ok);
                }
            }
            send(os, args);
            return line(in);
        }
    }

    /** One command to the plain, password-less Redis on {@code port} of this machine; the reply's first line. */
    public static String command(int port, String... args) throws IOException {
        try (Socket socket = new Socket()) {
            socket.connect(new InetSocketAddress("127.0.0.1", port), 2000);
            socket.setSoTimeout(2000);
            send(socket.getOutputStream(), args);
            return line(socket.getInputStream());
        }
    }

    private static void send(OutputStream os, String... args) throws IOException {
        StringBuilder out = new StringBuilder("*" + args.length + "\r\n");
        for (String arg : args) {
            out.append('$').append(arg.getBytes(StandardCharsets.UTF_8).length).append("\r\n").append(arg).append("\r\n");
        }
        os.write(out.toString().getBytes(StandardCharsets.UTF_8));
        os.flush();
    }

    private static String line(InputStream in) throws IOException {
        StringBuilder line = new StringBuilder();
        int b;
        while ((b = in.read()) != -1 && b != '\r') {
            line.append((char) b);
        }
        if (b == '\r') {
            in.read(); // the '\n'
        }
        return line.toString();
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
