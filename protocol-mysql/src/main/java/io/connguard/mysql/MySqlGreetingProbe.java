package io.connguard.mysql;

import io.netty.buffer.ByteBuf;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;

import java.util.concurrent.CompletableFuture;

/**
 * The handler of an uncounted side connection that only reads a server's greeting and closes, so that the
 * first client of a listener can be greeted before any greeting was cached.
 *
 * @see <a href="https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_connection_phase.html">Connection phase</a>
 */
final class MySqlGreetingProbe extends ChannelInboundHandlerAdapter {

    private static final int MAX_GREETING = 16 * 1024;

    private final CompletableFuture<MySqlGreeting> result;
    private MySqlPacketAssembler assembler;

    MySqlGreetingProbe(CompletableFuture<MySqlGreeting> result) {
        this.result = result;
    }

    @Override
    public void handlerAdded(ChannelHandlerContext ctx) {
        if (ctx.channel().isActive()) {
            ctx.read(); // auto-read may be off on core's channels
        }
    }

    @Override
    public void channelActive(ChannelHandlerContext ctx) {
        ctx.read();
        ctx.fireChannelActive();
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
        if (!(msg instanceof ByteBuf bytes) || result.isDone()) {
            io.netty.util.ReferenceCountUtil.release(msg);
            return;
        }
        if (assembler == null) {
            assembler = new MySqlPacketAssembler(ctx.alloc(), MAX_GREETING);
        }
        ByteBuf packet = null;
        try {
            assembler.add(bytes);
            packet = assembler.next();
            if (packet == null) {
                ctx.read();
                return;
            }
            int first = packet.getUnsignedByte(MySqlWire.HEADER_SIZE);
            if (first == MySqlWire.ERR) {
                String message = packet.toString(MySqlWire.HEADER_SIZE + 3, packet.readableBytes() - MySqlWire.HEADER_SIZE - 3,
                        java.nio.charset.StandardCharsets.UTF_8);
                result.completeExceptionally(new IllegalStateException("the server refused the connection: "
                        + packet.getUnsignedShortLE(MySqlWire.HEADER_SIZE + 1) + " " + message));
            } else {
                result.complete(MySqlGreeting.decode(packet, MySqlWire.HEADER_SIZE, packet.readableBytes() - MySqlWire.HEADER_SIZE));
            }
            ctx.close();
        } catch (RuntimeException e) {
            result.completeExceptionally(e);
            ctx.close();
        } finally {
            if (packet != null) {
                packet.release();
            }
        }
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) {
        result.completeExceptionally(new IllegalStateException("the server closed the connection before greeting"));
        if (assembler != null) {
            assembler.close();
        }
        ctx.fireChannelInactive();
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
        result.completeExceptionally(cause);
        ctx.close();
    }
}
