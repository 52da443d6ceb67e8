package io.connguard.app.faults;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketException;
import java.net.SocketTimeoutException;
import java.time.Duration;

/**
 * A client that speaks raw bytes to the proxy, for the scenarios about bytes a driver would never send:
 * it writes what it is given and reads everything until the proxy closes (or resets) the connection.
 */
final class RawClient implements AutoCloseable {

    /** How the conversation ended: what the proxy sent, when the connection ended after the start, and how. */
    record Ending(byte[] received, Duration after, How how) {
    }

    enum How { CLOSED, RESET, STILL_OPEN }

    private final Socket socket;
    private final long startNanos;
    private final InputStream in;

    private RawClient(Socket socket) throws IOException {
        this.socket = socket;
        this.startNanos = System.nanoTime();
        this.in = socket.getInputStream();
    }

    /** Connects to the proxy's listener on 127.0.0.1; the clock of {@link Ending#after} starts now. */
    static RawClient connect(int port) throws IOException {
        Socket socket = new Socket();
        socket.connect(new InetSocketAddress(InetAddress.getLoopbackAddress(), port), 5000);
        socket.setTcpNoDelay(true);
        return new RawClient(socket);
    }

    InputStream in() {
        return in;
    }

    void write(byte[] bytes) throws IOException {
        socket.getOutputStream().write(bytes);
        socket.getOutputStream().flush();
    }

    /**
     * Writes {@code bytes} one at a time, {@code between} apart, from a background thread, until all are
     * written or the proxy ends the connection.
     */
    Thread trickle(byte[] bytes, Duration between) {
        Thread writer = new Thread(() -> {
            try {
                for (byte b : bytes) {
                    socket.getOutputStream().write(b);
                    Thread.sleep(between.toMillis());
                }
            } catch (IOException | InterruptedException e) {
                // the proxy closed the connection: that is what the scenario waits for
            }
        }, "raw-client-trickle");
        writer.setDaemon(true);
        writer.start();
        return writer;
    }

    /** Writes {@code bytes} from a background thread (a large write blocks until the proxy reads or closes). */
    Thread writeInBackground(byte[] bytes) {
        Thread writer = new Thread(() -> {
            try {
                write(bytes);
            } catch (IOException e) {
                // the proxy closed the connection before taking everything: expected for oversized input
            }
        }, "raw-client-writer");
        writer.setDaemon(true);
        writer.start();
        return writer;
    }

    /** Reads until end of stream or reset, for at most {@code max}. */
    Ending readToEnd(Duration max) throws IOException {
        ByteArrayOutputStream received = new ByteArrayOutputStream();
        byte[] buffer = new byte[8192];
        long deadline = startNanos + max.toNanos();
        while (true) {
            long left = deadline - System.nanoTime();
            if (left <= 0) {
                return new Ending(received.toByteArray(), elapsed(), How.STILL_OPEN);
            }
            socket.setSoTimeout((int) Math.max(1, left / 1_000_000));
            try {
                int n = in.read(buffer);
                if (n < 0) {
                    return new Ending(received.toByteArray(), elapsed(), How.CLOSED);
                }
                received.write(buffer, 0, n);
            } catch (SocketTimeoutException e) {
                return new Ending(received.toByteArray(), elapsed(), How.STILL_OPEN);
            } catch (SocketException e) {
                return new Ending(received.toByteArray(), elapsed(), How.RESET);
            }
        }
    }

    private Duration elapsed() {
        return Duration.ofNanos(System.nanoTime() - startNanos);
    }

    @Override
    public void close() throws IOException {
        socket.close();
    }
}
