package io.connguard.app.faults;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * Polls {@code GET /healthz} on one kept-alive connection from a thread of its own at the highest priority,
 * every few milliseconds, and keeps every answer's latency (request written to response read) and status.
 * Plain blocking socket I/O: the probe itself adds no client-side machinery to what it measures. The
 * first {@link #WARM_UP} answers are not kept: they measure class loading and the interpreter on both
 * sides (a cold first request takes hundreds of milliseconds on a busy machine), not the proxy's health.
 */
final class HealthProbe implements AutoCloseable {

    private static final byte[] REQUEST = "GET /healthz HTTP/1.1\r\nHost: connguard\r\n\r\n".getBytes(StandardCharsets.US_ASCII);

    static final int WARM_UP = 50;

    private final int port;
    private final CountDownLatch warm = new CountDownLatch(WARM_UP);
    private final AtomicBoolean running = new AtomicBoolean(true);
    private final List<Long> latencies = new ArrayList<>();
    private final List<String> failures = new ArrayList<>();
    private final Thread thread;

    HealthProbe(int port) {
        this.port = port;
        this.thread = new Thread(this::poll, "healthz-probe");
        thread.setPriority(Thread.MAX_PRIORITY);
        thread.setDaemon(true);
        thread.start();
    }

    private void poll() {
        Socket socket = null;
        while (running.get()) {
            try {
                if (socket == null) {
                    socket = new Socket();
                    socket.connect(new InetSocketAddress(InetAddress.getLoopbackAddress(), port), 5000);
                    socket.setTcpNoDelay(true);
                    socket.setSoTimeout(5000);
                }
                long start = System.nanoTime();
                OutputStream out = socket.getOutputStream();
                out.write(REQUEST);
                out.flush();
                String status = readResponse(socket.getInputStream());
                long took = System.nanoTime() - start;
                if (warm.getCount() > 0) {
                    warm.countDown();
                } else {
                    synchronized (this) {
                        latencies.add(took);
                        if (!status.contains(" 200 ")) {
                            failures.add(status);
                        }
                    }
                }
                Thread.sleep(5);
            } catch (IOException e) {
                synchronized (this) {
                    failures.add(e.toString());
                }
                try {
                    socket.close();
                } catch (IOException | NullPointerException ignored) {
                    // reconnect below
                }
                socket = null;
            } catch (InterruptedException e) {
                return;
            }
        }
        try {
            if (socket != null) {
                socket.close();
            }
        } catch (IOException ignored) {
            // done
        }
    }

    /** Reads one response (headers, then Content-Length bytes of body); returns its status line. */
    private static String readResponse(InputStream in) throws IOException {
        StringBuilder head = new StringBuilder();
        while (!head.toString().endsWith("\r\n\r\n")) {
            int c = in.read();
            if (c < 0) {
                throw new IOException("connection closed after " + head);
            }
            head.append((char) c);
        }
        int length = 0;
        for (String line : head.toString().split("\r\n")) {
            if (line.toLowerCase().startsWith("content-length:")) {
                length = Integer.parseInt(line.substring(15).trim());
            }
        }
        in.readNBytes(length);
        return head.substring(0, head.indexOf("\r\n"));
    }

    /** Waits until the warm-up answers are in; measuring starts then. */
    void awaitWarm() throws InterruptedException {
        if (!warm.await(30, TimeUnit.SECONDS)) {
            throw new AssertionError("/healthz did not answer " + WARM_UP + " warm-up requests: " + failures());
        }
    }

    synchronized int answers() {
        return latencies.size();
    }

    synchronized long worstMillis() {
        return latencies.stream().mapToLong(Long::longValue).max().orElse(0) / 1_000_000;
    }

    synchronized long slowerThan(long millis) {
        return latencies.stream().filter(l -> l > millis * 1_000_000).count();
    }

    synchronized List<String> failures() {
        return List.copyOf(failures);
    }

    @Override
    public void close() throws InterruptedException {
        running.set(false);
        thread.join(10_000);
    }
}
