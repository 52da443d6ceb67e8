package io.connguard.app.packaging;

import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.buffer.UnpooledByteBufAllocator;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.nio.NioIoHandler;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import io.netty.handler.codec.ByteToMessageDecoder;

import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * A stand-in for PostgreSQL that holds thousands of sessions cheaply (the shared local server allows 400):
 * trust authentication, every query answered at once with an empty result, except a query starting with
 * {@code flood}, answered with DataRows of 32 KiB for as long as the connection takes them (with
 * backpressure: it writes while the channel is writable). Unpooled buffers: the test measures the proxy.
 */
final class FakePostgres implements AutoCloseable {

    private static final int SSL_REQUEST = 80877103;
    private static final int GSSENC_REQUEST = 80877104;
    private static final ByteBuf WELCOME = Unpooled.unreleasableBuffer(Unpooled.wrappedBuffer(concat(
            message('R', new byte[] {0, 0, 0, 0}),
            message('S', "server_version\0" + "15.0\0"),
            message('S', "server_encoding\0UTF8\0"),
            message('S', "client_encoding\0UTF8\0"),
            message('S', "standard_conforming_strings\0on\0"),
            message('K', new byte[] {0, 0, 0x10, (byte) 0x92, 0, 0, 0x4, (byte) 0xd2}),
            message('Z', "I"))));
    private static final ByteBuf EMPTY_RESULT = Unpooled.unreleasableBuffer(Unpooled.wrappedBuffer(concat(
            message('C', "SELECT 0\0"), message('Z', "I"))));
    private static final ByteBuf ROW_DESCRIPTION = Unpooled.unreleasableBuffer(Unpooled.wrappedBuffer(
            message('T', concat(new byte[] {0, 1}, "x\0".getBytes(StandardCharsets.US_ASCII),
                    new byte[] {0, 0, 0, 0, 0, 0, 0, 0, 0, 25, (byte) 0xff, (byte) 0xff, (byte) 0xff, (byte) 0xff,
                            (byte) 0xff, (byte) 0xff, 0, 0}))));
    private static final ByteBuf DATA_ROW;

    static {
        byte[] value = new byte[32 * 1024];
        java.util.Arrays.fill(value, (byte) 'x');
        byte[] body = concat(new byte[] {0, 1}, new byte[] {0, 0, (byte) (value.length >> 8), 0}, value);
        DATA_ROW = Unpooled.unreleasableBuffer(Unpooled.wrappedBuffer(message('D', body)));
    }

    private final EventLoopGroup group = new MultiThreadIoEventLoopGroup(1, NioIoHandler.newFactory());
    private final Channel server;

    private FakePostgres() throws InterruptedException {
        server = new ServerBootstrap().group(group).channel(NioServerSocketChannel.class)
                .option(ChannelOption.SO_BACKLOG, 4096)
                .childOption(ChannelOption.ALLOCATOR, UnpooledByteBufAllocator.DEFAULT)
                .childHandler(new ChannelInitializer<>() {
                    @Override
                    protected void initChannel(Channel ch) {
                        ch.pipeline().addLast(new Backend());
                    }
                })
                .bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0)).sync().channel();
    }

    static FakePostgres start() throws InterruptedException {
        return new FakePostgres();
    }

    String address() {
        return "127.0.0.1:" + ((InetSocketAddress) server.localAddress()).getPort();
    }

    @Override
    public void close() {
        server.close().syncUninterruptibly();
        group.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
    }

    /** One session: the start-up message, then typed messages. */
    private static final class Backend extends ByteToMessageDecoder {

        private boolean started;
        private boolean flooding;

        @Override
        protected void decode(ChannelHandlerContext ctx, ByteBuf in, List<Object> out) {
            while (true) {
                if (!started) {
                    if (in.readableBytes() < 8 || in.readableBytes() < in.getInt(in.readerIndex())) {
                        return;
                    }
                    int length = in.readInt();
                    int code = in.readInt();
                    in.skipBytes(length - 8);
                    if (code == SSL_REQUEST || code == GSSENC_REQUEST) {
                        ctx.writeAndFlush(Unpooled.wrappedBuffer(new byte[] {'N'}));
                        continue;
                    }
                    started = true;
                    ctx.writeAndFlush(WELCOME.duplicate());
                    continue;
                }
                if (in.readableBytes() < 5 || in.readableBytes() < 1 + in.getInt(in.readerIndex() + 1)) {
                    return;
                }
                byte type = in.readByte();
                int length = in.readInt();
                String body = in.readCharSequence(length - 4, StandardCharsets.UTF_8).toString();
                if (type == 'X') {
                    ctx.close();
                    return;
                }
                if (type == 'Q' && body.startsWith("flood")) {
                    flooding = true;
                    ctx.write(ROW_DESCRIPTION.duplicate());
                    pump(ctx);
                } else if (type == 'Q' && !flooding) {
                    ctx.writeAndFlush(EMPTY_RESULT.duplicate());
                }
            }
        }

        @Override
        public void channelWritabilityChanged(ChannelHandlerContext ctx) throws Exception {
            if (flooding) {
                pump(ctx);
            }
            super.channelWritabilityChanged(ctx);
        }

        @Override
        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
            ctx.close();
        }

        private static void pump(ChannelHandlerContext ctx) {
            while (ctx.channel().isWritable()) {
                ctx.write(DATA_ROW.duplicate());
            }
            ctx.flush();
        }
    }

    private static byte[] message(char type, String body) {
        return message(type, body.getBytes(StandardCharsets.UTF_8));
    }

    private static byte[] message(char type, byte[] body) {
        byte[] out = new byte[5 + body.length];
        out[0] = (byte) type;
        int length = 4 + body.length;
        out[1] = (byte) (length >>> 24);
        out[2] = (byte) (length >>> 16);
        out[3] = (byte) (length >>> 8);
        out[4] = (byte) length;
        System.arraycopy(body, 0, out, 5, body.length);
        return out;
    }

    private static byte[] concat(byte[]... parts) {
        int n = 0;
        for (byte[] p : parts) {
            n += p.length;
        }
        byte[] out = new byte[n];
        int at = 0;
        for (byte[] p : parts) {
            System.arraycopy(p, 0, out, at, p.length);
            at += p.length;
        }
        return out;
    }
}
