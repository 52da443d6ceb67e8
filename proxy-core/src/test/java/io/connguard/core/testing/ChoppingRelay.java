package io.connguard.core.testing;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.locks.LockSupport;

/**
 * A TCP relay for tests that hands the server's bytes on one at a time, each in its own segment with a
 * pause after it, so that whoever reads them (connguard's server connections) sees its input cut at every
 * offset (a message header, a statement id connguard rewrites, a status block split across reads). The
 * other direction is relayed as it comes, or, with {@link #both}, cut up the same way (in front of
 * connguard: what its client connections read).
 */
public final class ChoppingRelay implements AutoCloseable {

    private static final long PAUSE_NANOS = 100_000;

    private final ServerSocket listener;
    private final InetSocketAddress upstream;
    private final List<Socket> sockets = new CopyOnWriteArrayList<>();
    private final Thread acceptor;
    private final boolean both;

    public ChoppingRelay(String upstreamHost, int upstreamPort) throws IOException {
        this(upstreamHost, upstreamPort, false);
    }

    private ChoppingRelay(String upstreamHost, int upstreamPort, boolean both) throws IOException {
        this.both = both;
        this.upstream = new InetSocketAddress(upstreamHost, upstreamPort);
        this.listener = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
        this.acceptor = new Thread(this::accept, "chopping-relay");
        acceptor.setDaemon(true);
        acceptor.start();
    }

    /** A relay in front of {@code hostPort} (host:port). */
    public static ChoppingRelay before(String hostPort) throws IOException {
        int colon = hostPort.lastIndexOf(':');
        return new ChoppingRelay(hostPort.substring(0, colon), Integer.parseInt(hostPort.substring(colon + 1)));
    }

    /** A relay in front of {@code hostPort} that cuts up the bytes of both directions. */
    public static ChoppingRelay both(String hostPort) throws IOException {
        int colon = hostPort.lastIndexOf(':');
        return new ChoppingRelay(hostPort.substring(0, colon), Integer.parseInt(hostPort.substring(colon + 1)), true);
    }

    public int port() {
        return listener.getLocalPort();
    }

    public String hostPort() {
        return "127.0.0.1:" + listener.getLocalPort();
    }

    private void accept() {
        while (!listener.isClosed()) {
            try {
                Socket client = listener.accept();
                Socket server = new Socket();
                server.connect(upstream, 5000);
                client.setTcpNoDelay(true);
                server.setTcpNoDelay(true);
                sockets.add(client);
                sockets.add(server);
                pump(client, server, both);
                pump(server, client, true);
            } catch (IOException e) {
                return; // closed
            }
        }
    }

    private void pump(Socket from, Socket to, boolean chop) throws IOException {
        InputStream in = from.getInputStream();
        OutputStream out = to.getOutputStream();
        Thread t = new Thread(() -> {
            byte[] buffer = new byte[8192];
            try {
                int n;
                while ((n = in.read(buffer)) >= 0) {
                    if (!chop) {
                        out.write(buffer, 0, n);
                        continue;
                    }
                    for (int i = 0; i < n; i++) {
                        out.write(buffer[i]);
                        out.flush();
                        LockSupport.parkNanos(PAUSE_NANOS);
                    }
                }
            } catch (IOException e) {
                // one side closed: close both below
            } finally {
                close(from);
                close(to);
            }
        }, "chopping-relay-pump");
        t.setDaemon(true);
        t.start();
    }

    private static void close(Socket s) {
        try {
            s.close();
        } catch (IOException e) {
            // closing anyway
        }
    }

    @Override
    public void close() throws IOException {
        listener.close();
        for (Socket s : sockets) {
            close(s);
        }
    }
}
