package io.connguard.core.admin;

import io.connguard.core.config.HostPort;
import io.connguard.core.server.ProxyServer;
import io.connguard.core.server.Transport;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.channel.Channel;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoopGroup;
import io.netty.handler.codec.http.HttpObjectAggregator;
import io.netty.handler.codec.http.HttpServerCodec;
import io.netty.handler.timeout.IdleStateHandler;

import java.net.InetSocketAddress;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;

/**
 * The admin HTTP endpoint on its own event loop, so that health checks answer even when the session
 * loops are saturated. Requests are small and bounded: 4 KiB request line (414 beyond), 8 KiB of headers
 * (431), 16 KiB body (413); a request must arrive whole within 10 s of its first byte, and an idle
 * connection is closed after 30 s.
 */
public final class AdminServer implements AutoCloseable {

    static final int MAX_INITIAL_LINE = 4096;
    static final int MAX_HEADERS = 8192;
    static final int MAX_BODY = 16 * 1024;
    static final int IDLE_SECONDS = 30;
    static final int REQUEST_SECONDS = 10;

    private final ProxyServer server;
    private final Transport transport;
    private final EventLoopGroup group;
    /** Runs what must not block an event loop: reloads read the configuration file. */
    private final ExecutorService worker = Executors.newSingleThreadExecutor(r -> {
        Thread thread = new Thread(r, "connguard-admin-worker");
        thread.setDaemon(true);
        return thread;
    });
    private volatile Channel channel;
    private volatile LoopHeartbeats heartbeats;

    public AdminServer(ProxyServer server, Transport transport) {
        this.server = server;
        this.transport = transport;
        this.group = transport.newGroup(1, "connguard-admin");
    }

    /** Binds the endpoint; throws with a message naming the address when it cannot. */
    public void start(HostPort listen) throws java.net.BindException {
        LoopHeartbeats beats = new LoopHeartbeats(server.loops());
        heartbeats = beats;
        boolean offLoopback = !listen.isLoopback();
        ServerBootstrap bootstrap = new ServerBootstrap()
                .group(group)
                .channel(transport.serverChannel())
                .option(ChannelOption.SO_REUSEADDR, true)
                .childHandler(new ChannelInitializer<>() {
                    @Override
                    protected void initChannel(Channel ch) {
                        ch.pipeline()
                                .addLast(new IdleStateHandler(0, 0, IDLE_SECONDS))
                                .addLast(new RequestDeadline(REQUEST_SECONDS))
                                .addLast(new HttpServerCodec(MAX_INITIAL_LINE, MAX_HEADERS, 8192))
                                .addLast(new HttpObjectAggregator(MAX_BODY))
                                .addLast(new AdminHandler(server, worker, beats, offLoopback));
                    }
                });
        try {
            channel = bootstrap.bind(listen.resolved()).syncUninterruptibly().channel();
        } catch (Exception e) {
            java.net.BindException failure = new java.net.BindException("cannot listen on " + listen
                    + " for the admin endpoint: " + (e.getMessage() == null ? e.getClass().getSimpleName() : e.getMessage()));
            failure.initCause(e);
            throw failure;
        }
    }

    public InetSocketAddress address() {
        Channel bound = channel;
        return bound == null ? null : (InetSocketAddress) bound.localAddress();
    }

    @Override
    public void close() {
        Channel bound = channel;
        if (bound != null) {
            bound.close().syncUninterruptibly();
        }
        LoopHeartbeats beats = heartbeats;
        if (beats != null) {
            beats.close();
        }
        group.shutdownGracefully(0, 1, TimeUnit.SECONDS).awaitUninterruptibly(3, TimeUnit.SECONDS);
        worker.shutdownNow();
    }
}
