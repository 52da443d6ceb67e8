package io.connguard.core.session;

import io.netty.buffer.ByteBuf;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.util.ReferenceCountUtil;

/**
 * The only handler on a session's two channels: it hands reads, read-batch ends, writability changes
 * and closes to the {@link Session}, which decides. One instance per channel.
 */
final class RelayHandler extends ChannelInboundHandlerAdapter {

    private final Session session;
    private final boolean client;

    RelayHandler(Session session, boolean client) {
        this.session = session;
        this.client = client;
    }

    @Override
    public void channelActive(ChannelHandlerContext ctx) {
        if (client) {
            session.start();
        } else {
            session.upstreamActive();
        }
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
        if (msg instanceof ByteBuf bytes) {
            session.read(client, bytes);
        } else {
            ReferenceCountUtil.release(msg);
        }
    }

    @Override
    public void channelReadComplete(ChannelHandlerContext ctx) {
        session.readComplete(client);
    }

    @Override
    public void channelWritabilityChanged(ChannelHandlerContext ctx) {
        session.writabilityChanged(client);
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) {
        session.channelClosed(client);
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
        session.channelFailed(client, cause);
    }
}
