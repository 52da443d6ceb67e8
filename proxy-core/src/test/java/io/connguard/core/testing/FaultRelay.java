package io.connguard.core.testing;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A TCP relay for fault-injection tests: it listens on 127.0.0.1 and forwards every accepted connection to
 * one target, and on request misbehaves the way networks and peers do. Put it between a client and the
 * proxy to play a hostile or vanishing client, or between the proxy and its database to play a failing
 * database host. Plain blocking sockets, two threads per connection: simple enough to trust in a test.
 *
 * <p>Faults on the bytes apply to both directions, to bytes forwarded from the moment they are set:
 * {@link #latency} (each chunk waits), {@link #byteAtATime} (each byte is its own write, optionally
 * spaced), {@link #stall} (nothing is read or forwarded until {@link #resume}, so the sender's socket
 * buffers fill up and it feels backpressure). Faults on the connections: {@link #reset} (an abortive
 * close with {@code SO_LINGER 0}, so both peers get an RST), {@link #halfClose} (FIN towards the target,
 * the way back stays open). Faults on connecting: {@link #refuseConnects} (the port is closed: RST) and
 * {@link #blackholeConnects} (the port listens but never completes a handshake: connects hang until
 * their own timeout, as for a host that drops packets).
 */
public final class FaultRelay implements AutoCloseable {

    /** What a connect to the relay's port meets. */
    private enum ConnectMode { ACCEPT, REFUSE, BLACKHOLE }

    private static final int BUFFER = 64 * 1024;

    private final InetSocketAddress target;
    private final int port;
    private final List<Link> links = new CopyOnWriteArrayList<>();
    private final AtomicInteger accepted = new AtomicInteger();
    private final Object stallLock = new Object();
    private volatile long latencyNanos;
    private volatile boolean byteAtATime;
    private volatile long betweenBytesNanos;
    private volatile boolean stalled;
    private volatile boolean closed;
    private ConnectMode mode;
    private ServerSocket server;
    private Thread acceptor;
    /** In BLACKHOLE mode: the connections that fill the listen backlog, so later SYNs are dropped. */
    private final List<Socket> backlogFillers = new ArrayList<>();

    private FaultRelay(InetSocketAddress target) {
        this.target = target;
        try {
            this.server = listen(0, 128);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        this.port = server.getLocalPort();
        this.mode = ConnectMode.ACCEPT;
        startAccepting(server);
    }

    /** A relay on an ephemeral port of 127.0.0.1 to {@code target}, forwarding faithfully until told otherwise. */
    public static FaultRelay to(InetSocketAddress target) {
        return new FaultRelay(target);
    }

    /** A relay to {@code host:port}. */
    public static FaultRelay to(String host, int port) {
        return to(new InetSocketAddress(host, port));
    }

    /** A relay to {@code hostPort} ({@code host:port}, as {@code Database.hostPort()} gives it). */
    public static FaultRelay to(String hostPort) {
        int colon = hostPort.lastIndexOf(':');
        return to(hostPort.substring(0, colon), Integer.parseInt(hostPort.substring(colon + 1)));
    }

    public int port() {
        return port;
    }

    /** {@code 127.0.0.1:port}, e.g. as a listener's {@code upstream}. */
    public String hostPort() {
        return "127.0.0.1:" + port;
    }

    /** Connections accepted so far (each is one connection opened to the target). */
    public int accepted() {
        return accepted.get();
    }

    /** Relayed connections with at least one direction still open. */
    public int open() {
        return (int) links.stream().filter(l -> !l.finished()).count();
    }

    // ------------------------------------------------------------------ faults on the bytes

    /** Every chunk read from either side waits this long before it is forwarded. */
    public FaultRelay latency(Duration delay) {
        latencyNanos = delay.toNanos();
        return this;
    }

    /** Every byte is forwarded as its own write, {@code between} apart (zero: as fast as the socket takes them). */
    public FaultRelay byteAtATime(Duration between) {
        betweenBytesNanos = between.toNanos();
        byteAtATime = true;
        return this;
    }

    /** Stops reading and forwarding in both directions until {@link #resume}. */
    public FaultRelay stall() {
        stalled = true;
        return this;
    }

    /** Ends a stall; clears latency and byte-at-a-time delivery too. */
    public FaultRelay resume() {
        latencyNanos = 0;
        byteAtATime = false;
        betweenBytesNanos = 0;
        synchronized (stallLock) {
            stalled = false;
            stallLock.notifyAll();
        }
        return this;
    }

    // ------------------------------------------------------------------ faults on the connections

    /** Abortively closes every relayed connection on both sides ({@code SO_LINGER 0}: both peers get an RST). */
    public void reset() {
        for (Link link : links) {
            link.reset();
        }
    }

    /** Half-closes every relayed connection towards the target (it reads end-of-stream); the way back stays open. */
    public void halfClose() {
        for (Link link : links) {
            link.halfCloseToTarget();
        }
    }

    // ------------------------------------------------------------------ faults on connecting

    /** Closes the listening port: new connects are refused (RST) until {@link #acceptConnects}. */
    public synchronized void refuseConnects() {
        closeListener();
        mode = ConnectMode.REFUSE;
    }

    /**
     * Keeps the port listening but never completes another TCP handshake: the relay fills the listen
     * backlog with connections of its own until one of them hangs, so the kernel drops further SYNs and a
     * connect waits until the connecting side gives up, as it would for a host that drops packets.
     */
    public synchronized void blackholeConnects() {
        closeListener();
        try {
            server = listen(port, 1);
            for (int i = 0; i < 10; i++) {
                Socket filler = new Socket();
                backlogFillers.add(filler);
                try {
                    filler.connect(new InetSocketAddress(InetAddress.getLoopbackAddress(), port), 200);
                } catch (SocketTimeoutException full) {
                    mode = ConnectMode.BLACKHOLE;
                    return;
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot blackhole port " + port, e);
        }
        throw new IllegalStateException("the listen backlog of port " + port + " did not fill up");
    }

    /** Accepts and relays connections again, on the same port. */
    public synchronized void acceptConnects() {
        if (mode == ConnectMode.ACCEPT) {
            return;
        }
        closeListener();
        try {
            server = listen(port, 128);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot listen on port " + port + " again", e);
        }
        mode = ConnectMode.ACCEPT;
        startAccepting(server);
    }

    @Override
    public void close() {
        closed = true;
        synchronized (this) {
            closeListener();
        }
        resume();
        for (Link link : links) {
            link.close();
        }
    }

    // ------------------------------------------------------------------ plumbing

    private static ServerSocket listen(int port, int backlog) throws IOException {
        ServerSocket socket = new ServerSocket();
        socket.setReuseAddress(true);
        socket.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), port), backlog);
        return socket;
    }

    private void closeListener() {
        backlogFillers.forEach(FaultRelay::quietly);
        backlogFillers.clear();
        quietly(server);
        server = null;
        // The kernel keeps a listening socket alive while a thread is still inside accept() on it, so
        // connects would still succeed for a moment: wait until the acceptor has left.
        if (acceptor != null) {
            try {
                acceptor.join(5000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            acceptor = null;
        }
    }

    private void startAccepting(ServerSocket listening) {
        acceptor = new Thread(() -> {
            while (!listening.isClosed()) {
                try {
                    Socket client = listening.accept();
                    accepted.incrementAndGet();
                    // Listed before it connects onwards: a fault applied once the target has accepted
                    // the connection (as tests do) must find the link.
                    Link link = new Link(client);
                    links.add(link);
                    link.start();
                } catch (IOException e) {
                    return; // the listener was closed
                }
            }
        }, "fault-relay-accept-" + port);
        acceptor.setDaemon(true);
        acceptor.start();
    }

    private void awaitUnstalled() throws InterruptedException {
        synchronized (stallLock) {
            while (stalled && !closed) {
                stallLock.wait(100);
            }
        }
    }

    private static void sleepNanos(long nanos) throws InterruptedException {
        if (nanos > 0) {
            Thread.sleep(nanos / 1_000_000, (int) (nanos % 1_000_000));
        }
    }

    private static void quietly(AutoCloseable closeable) {
        if (closeable != null) {
            try {
                closeable.close();
            } catch (Exception ignored) {
                // already closed or reset: nothing left to release
            }
        }
    }

    /** One relayed connection: the accepted client socket, the socket to the target, and a pump each way. */
    private final class Link {
        private final Socket client;
        private final Socket upstream = new Socket();
        private final AtomicInteger pumping = new AtomicInteger(2);
        /** Counted down once the connection to the target is open (or failed): faults wait for it. */
        private final CountDownLatch opened = new CountDownLatch(1);

        Link(Socket client) {
            this.client = client;
        }

        /** Connects to the target and starts pumping, on threads of its own. */
        void start() {
            Thread opener = new Thread(this::open, "fault-relay-link-" + port);
            opener.setDaemon(true);
            opener.start();
        }

        private void open() {
            InputStream fromClient;
            OutputStream toClient;
            InputStream fromUpstream;
            OutputStream toUpstream;
            try {
                client.setTcpNoDelay(true);
                upstream.setTcpNoDelay(true);
                upstream.connect(target, 5000);
                fromClient = client.getInputStream();
                toClient = client.getOutputStream();
                fromUpstream = upstream.getInputStream();
                toUpstream = upstream.getOutputStream();
            } catch (IOException e) {
                close();
                pumping.set(0);
                return;
            } finally {
                opened.countDown();
            }
            Thread back = new Thread(() -> pump(fromUpstream, toClient, client), "fault-relay-down-" + port);
            back.setDaemon(true);
            back.start();
            pump(fromClient, toUpstream, upstream);
        }

        private void pump(InputStream in, OutputStream out, Socket to) {
            byte[] buffer = new byte[BUFFER];
            try {
                while (true) {
                    awaitUnstalled();
                    int n = in.read(buffer);
                    if (n < 0) {
                        to.shutdownOutput(); // pass the half-close on
                        return;
                    }
                    sleepNanos(latencyNanos);
                    awaitUnstalled();
                    if (byteAtATime) {
                        for (int i = 0; i < n; i++) {
                            out.write(buffer[i]);
                            out.flush();
                            sleepNanos(betweenBytesNanos);
                        }
                    } else {
                        out.write(buffer, 0, n);
                        out.flush();
                    }
                }
            } catch (IOException e) {
                close(); // one side reset or closed under us: the other side goes too
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                close();
            } finally {
                pumping.decrementAndGet();
            }
        }

        boolean finished() {
            return pumping.get() == 0;
        }

        /** Waits until the link is open, so a fault is never lost to (or breaks) the connect in progress. */
        private void awaitOpened() {
            try {
                opened.await(5, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }

        void reset() {
            awaitOpened();
            // Both lingers first: a pump that notices the first close closes the other socket itself.
            for (Socket socket : new Socket[] {client, upstream}) {
                try {
                    socket.setSoLinger(true, 0);
                } catch (IOException ignored) {
                    // not connected (any more): closing is all there is to do
                }
            }
            close();
        }

        void halfCloseToTarget() {
            awaitOpened();
            try {
                upstream.shutdownOutput();
            } catch (IOException ignored) {
                // already closed
            }
        }

        void close() {
            quietly(client);
            quietly(upstream);
        }
    }

    @Override
    public String toString() {
        List<String> faults = new ArrayList<>();
        if (latencyNanos > 0) {
            faults.add("latency " + Duration.ofNanos(latencyNanos));
        }
        if (byteAtATime) {
            faults.add("byte at a time");
        }
        if (stalled) {
            faults.add("stalled");
        }
        return "FaultRelay 127.0.0.1:" + port + " -> " + target + " " + mode + " " + faults;
    }
}
