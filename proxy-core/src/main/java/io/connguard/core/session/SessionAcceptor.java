package io.connguard.core.session;

import io.connguard.core.server.Listener;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandler;
import io.netty.channel.ChannelHandlerAdapter;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.RecvByteBufAllocator;
import io.netty.channel.WriteBufferWaterMark;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Gives every accepted client connection of a listener its {@link Session}: added to each accepted channel's
 * pipeline, it replaces itself with the session's {@link RelayHandler} once the channel is registered on its
 * event loop. (Netty's {@code ChannelInitializer} does the same, plus a concurrent set of the channels being
 * initialised, an insert and a removal for every connect.) The handler is named: a generated name costs a
 * search of the pipeline for a free one.
 */
@ChannelHandler.Sharable
public final class SessionAcceptor extends ChannelHandlerAdapter {

    /** Per-channel outbound buffering before the other side stops being read (backpressure). */
    public static final WriteBufferWaterMark WATER_MARK = UpstreamConnector.WATER_MARK;
    /** The read-size policy shared by every channel (see {@link UpstreamConnector#READ_SIZES}). */
    public static final RecvByteBufAllocator READ_SIZES = UpstreamConnector.READ_SIZES;

    private static final Logger LOG = LoggerFactory.getLogger(SessionAcceptor.class);

    private final Listener listener;
    private final ProxyServices services;

    public SessionAcceptor(Listener listener, ProxyServices services) {
        this.listener = listener;
        this.services = services;
    }

    /** Called on the channel's event loop once it is registered (the acceptor adds this handler before). */
    @Override
    public void handlerAdded(ChannelHandlerContext ctx) {
        Channel channel = ctx.channel();
        try {
            services.channels().add(channel);
            ctx.pipeline().replace(this, "session", new RelayHandler(new Session(listener, services, channel), true));
        } catch (RuntimeException | Error e) {
            LOG.warn("could not start a session for {}: closing it", channel.remoteAddress(), e);
            channel.close();
        }
    }
}
