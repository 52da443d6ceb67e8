package io.connguard.core.testing;

import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.UnpooledByteBufAllocator;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.nio.NioIoHandler;
import io.netty.channel.socket.ChannelInputShutdownEvent;
import io.netty.channel.socket.nio.NioServerSocketChannel;

import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.Supplier;

/**
 * Plain TCP servers that stand in for a database behind the test protocol: an echo server and a
 * firehose that pushes a fixed number of bytes as fast as the connection takes them. They use unpooled
 * buffers, so the pooled allocator's metrics measure the proxy alone.
 */
public final class TestUpstreams implements AutoCloseable {

    /** The firehose's bytes: byte i of the stream is {@code i % 251}; offset into this by {@code i % 251}. */
    private static final byte[] PATTERN = new byte[64 * 1024 + 251];

    static {
        for (int i = 0; i < PATTERN.length; i++) {
            PATTERN[i] = (byte) (i % 251);
        }
    }

    private final EventLoopGroup group = new MultiThreadIoEventLoopGroup(2, NioIoHandler.newFactory());
    private final AtomicInteger open = new AtomicInteger();
    private final AtomicInteger halfClosedByPeer = new AtomicInteger();

    /** Echoes every byte back, with backpressure. */
    public InetSocketAddress echo() {
        return start(() -> new ChannelInboundHandlerAdapter() {
            @Override
            public void channelRead(ChannelHandlerContext ctx, Object msg) {
                ctx.write(msg);
            }

            @Override
            public void channelReadComplete(ChannelHandlerContext ctx) {
                ctx.flush();
                if (!ctx.channel().isWritable()) {
                    ctx.channel().config().setAutoRead(false);
                }
            }

            @Override
            public void channelWritabilityChanged(ChannelHandlerContext ctx) {
                ctx.channel().config().setAutoRead(ctx.channel().isWritable());
            }
        });
    }

    /** After the first byte from the client, writes {@code total} bytes of a counting pattern, then closes. */
    public InetSocketAddress firehose(long total) {
        return start(() -> new ChannelInboundHandlerAdapter() {
            long sent;
            boolean started;

            @Override
            public void channelRead(ChannelHandlerContext ctx, Object msg) {
                ((ByteBuf) msg).release();
                if (!started) {
                    started = true;
                    pump(ctx);
                }
            }

            @Override
            public void channelWritabilityChanged(ChannelHandlerContext ctx) {
                if (started) {
                    pump(ctx);
                }
            }

            private void pump(ChannelHandlerContext ctx) {
                while (ctx.channel().isWritable() && sent < total) {
                    int n = (int) Math.min(64 * 1024, total - sent);
                    ByteBuf chunk = ctx.alloc().buffer(n);
                    chunk.writeBytes(PATTERN, (int) (sent % 251), n);
                    sent += n;
                    ctx.write(chunk);
                }
                ctx.flush();
                if (sent >= total) {
                    ctx.writeAndFlush(ctx.alloc().buffer(0)).addListener(ChannelFutureListener.CLOSE);
                }
            }
        });
    }

    /** Reads and discards everything and never answers: a query that runs for ever. */
    public InetSocketAddress sink() {
        return start(() -> new ChannelInboundHandlerAdapter() {
            @Override
            public void channelRead(ChannelHandlerContext ctx, Object msg) {
                ((ByteBuf) msg).release();
            }
        });
    }

    /**
     * Like a database's end of a session: reads, and closes by itself 300 ms after the line {@code BYE} arrives
     * (the client's own goodbye, relayed), or at once when the peer ends its half of the stream; the latter are
     * counted by {@link #halfClosedByPeer()}.
     */
    public InetSocketAddress closesOnBye() {
        return start(true, () -> new ChannelInboundHandlerAdapter() {
            private final StringBuilder text = new StringBuilder();

            @Override
            public void channelRead(ChannelHandlerContext ctx, Object msg) {
                ByteBuf bytes = (ByteBuf) msg;
                text.append(bytes.toString(StandardCharsets.US_ASCII));
                bytes.release();
                if (text.indexOf("BYE\n") >= 0) {
                    ctx.executor().schedule(() -> ctx.close(), 300, TimeUnit.MILLISECONDS);
                }
            }

            @Override
            public void userEventTriggered(ChannelHandlerContext ctx, Object event) {
                if (event instanceof ChannelInputShutdownEvent) {
                    halfClosedByPeer.incrementAndGet();
                    ctx.close();
                }
            }
        });
    }

    /** Connections of {@link #closesOnBye()} servers whose peer ended its half of the stream before they closed. */
    public int halfClosedByPeer() {
        return halfClosedByPeer.get();
    }

    /** Connections open now on all servers. */
    public int openConnections() {
        return open.get();
    }

    private InetSocketAddress start(Supplier<ChannelInboundHandlerAdapter> handler) {
        return start(false, handler);
    }

    private InetSocketAddress start(boolean halfClosure, Supplier<ChannelInboundHandlerAdapter> handler) {
        Channel server = new ServerBootstrap()
                .group(group)
                .channel(NioServerSocketChannel.class)
                .option(ChannelOption.SO_BACKLOG, 4096)
                .childOption(ChannelOption.ALLOCATOR, UnpooledByteBufAllocator.DEFAULT)
                .childOption(ChannelOption.ALLOW_HALF_CLOSURE, halfClosure)
                .childHandler(new ChannelInitializer<>() {
                    @Override
                    protected void initChannel(Channel ch) {
                        open.incrementAndGet();
                        ch.closeFuture().addListener(f -> open.decrementAndGet());
                        ch.pipeline().addLast(handler.get());
                    }
                })
                .bind("127.0.0.1", 0).syncUninterruptibly().channel();
        return (InetSocketAddress) server.localAddress();
    }

    @Override
    public void close() {
        group.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
    }
}
