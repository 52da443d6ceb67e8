package io.connguard.core.session;

import io.connguard.core.metrics.ListenerMeters;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.socket.DuplexChannel;
import io.netty.util.ReferenceCountUtil;

import java.util.concurrent.TimeUnit;

/**
 * Takes over an upstream connection a session gave up before anything was authenticated on it (an early
 * upstream whose client must wait): it ends the stream, discards what the server still sends, and reads
 * until the server closes, at most a bounded time, so that the listener slot held for it comes back only
 * once the database has let the connection go.
 */
final class DroppedUpstream extends ChannelInboundHandlerAdapter {

    private final ListenerMeters meters;

    private DroppedUpstream(ListenerMeters meters) {
        this.meters = meters;
    }

    /** Replaces the session's handler on {@code channel} and starts closing it. */
    static void takeOver(Channel channel, ListenerMeters meters, long waitMillis) {
        channel.pipeline().replace(RelayHandler.class, "dropped", new DroppedUpstream(meters));
        if (!channel.isActive()) {
            channel.close();
            return;
        }
        channel.flush();
        if (channel instanceof DuplexChannel duplex) {
            duplex.shutdownOutput();
        } else {
            channel.close();
        }
        channel.read();
        channel.eventLoop().schedule(() -> channel.close(), waitMillis, TimeUnit.MILLISECONDS);
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
        ReferenceCountUtil.release(msg);
    }

    @Override
    public void channelReadComplete(ChannelHandlerContext ctx) {
        if (ctx.channel().isActive()) {
            ctx.read();
        }
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) {
        meters.upstreamClosed();
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
        ctx.close();
    }
}
