package io.connguard.core.session;

import io.connguard.core.server.Listener;
import io.connguard.core.server.UpstreamTlsContext;
import io.netty.bootstrap.Bootstrap;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFuture;
import io.netty.channel.ChannelHandler;
import io.netty.channel.ChannelOption;
import io.netty.channel.ConnectTimeoutException;
import io.netty.channel.EventLoop;
import io.netty.channel.RecvByteBufAllocator;
import io.netty.channel.WriteBufferWaterMark;
import io.netty.handler.ssl.SslHandler;
import io.netty.util.concurrent.Future;
import io.netty.util.concurrent.Promise;

import javax.net.ssl.SSLHandshakeException;
import java.net.ConnectException;
import java.net.InetSocketAddress;
import java.net.UnknownHostException;
import java.security.cert.CertificateException;

/**
 * Opens upstream connections on a session's own event loop: the session's relayed connection, uncounted
 * side connections (cancel requests, greeting probes), and TLS on an open upstream.
 */
public final class UpstreamConnector {

    /** Per-channel outbound buffering before the other side stops being read (backpressure). */
    static final WriteBufferWaterMark WATER_MARK = new WriteBufferWaterMark(32 * 1024, 64 * 1024);
    /**
     * The read-size policy of every client and upstream channel: Netty's adaptive guess, one instance shared
     * and 48 bytes of state per channel (see {@link ReadSizes}); 16 messages per read as Netty gives a socket
     * channel by default (it only matters with auto-read on).
     */
    public static final RecvByteBufAllocator READ_SIZES = new ReadSizes(16);

    private UpstreamConnector() {
    }

    static Future<Channel> connect(Session session, Listener listener, ProxyServices services) {
        return open(session.eventLoop(), listener.info().upstream(), session.upstreamHandler(), false, listener,
                services);
    }

    /**
     * Opens a pooled server connection on {@code loop} with {@code handler}, auto-read off (its reader
     * asks for each read, as a session does for its upstream).
     */
    public static Future<Channel> connectPooled(EventLoop loop, ChannelHandler handler, Listener listener,
                                                ProxyServices services) {
        return open(loop, listener.info().upstream(), handler, false, listener, services);
    }

    /** Why a connect failed, in a user's words. */
    public static String describe(Throwable cause) {
        return describeConnectFailure(cause);
    }

    static Future<Channel> connectAside(EventLoop loop, InetSocketAddress target, ChannelHandler handler,
                                        Listener listener, ProxyServices services) {
        return open(loop, target, handler, true, listener, services);
    }

    private static Future<Channel> open(EventLoop loop, InetSocketAddress target, ChannelHandler handler,
                                        boolean autoRead, Listener listener, ProxyServices services) {
        Promise<Channel> promise = loop.newPromise();
        services.resolver().resolve(target, loop).addListener(resolved -> {
            if (!resolved.isSuccess()) {
                promise.tryFailure(resolved.cause());
                return;
            }
            Bootstrap bootstrap = new Bootstrap()
                    .group(loop)
                    .channel(services.transport().socketChannel())
                    .option(ChannelOption.CONNECT_TIMEOUT_MILLIS,
                            (int) Math.min(Integer.MAX_VALUE, listener.config().connectTimeout().toMillis()))
                    .option(ChannelOption.AUTO_READ, autoRead)
                    .option(ChannelOption.SO_KEEPALIVE, true)
                    .option(ChannelOption.WRITE_BUFFER_WATER_MARK, WATER_MARK)
                    .option(ChannelOption.ALLOCATOR, PooledByteBufAllocator.DEFAULT)
                    .option(ChannelOption.RCVBUF_ALLOCATOR, READ_SIZES)
                    .handler(handler);
            ChannelFuture connected = bootstrap.connect((InetSocketAddress) resolved.getNow());
            services.channels().add(connected.channel());
            connected.addListener(done -> {
                if (done.isSuccess()) {
                    promise.trySuccess(connected.channel());
                } else {
                    promise.tryFailure(done.cause());
                }
            });
        });
        return promise;
    }

    static Future<Channel> startTls(Channel upstream, Listener listener) {
        UpstreamTlsContext tls = listener.tls();
        if (tls == null) {
            return upstream.eventLoop().newFailedFuture(
                    new IllegalStateException("upstreamTls.mode is disable for listener " + listener.name()));
        }
        InetSocketAddress target = listener.info().upstream();
        SslHandler handler = tls.newHandler(upstream.alloc(), target.getHostString(), target.getPort());
        upstream.pipeline().addFirst("tls", handler);
        return handler.handshakeFuture();
    }

    static String describeConnectFailure(Throwable cause) {
        if (cause instanceof ConnectTimeoutException) {
            return "connect timed out (connectTimeout)";
        }
        if (cause instanceof UnknownHostException) {
            return cause.getMessage();
        }
        if (cause instanceof ConnectException) {
            return "connection refused";
        }
        return cause.getClass().getSimpleName() + ": " + cause.getMessage();
    }

    static String describeTlsFailure(Throwable cause, Listener listener) {
        UpstreamTlsContext tls = listener.tls();
        String config = tls == null ? "" : " (" + tls.describe() + ")";
        Throwable root = cause;
        while (root.getCause() != null && root.getCause() != root) {
            if (root instanceof CertificateException) {
                break;
            }
            root = root.getCause();
        }
        if (cause instanceof SSLHandshakeException || root instanceof CertificateException) {
            return "TLS handshake with the database failed" + config + ": " + root.getMessage();
        }
        return "TLS with the database failed" + config + ": " + cause;
    }
}
