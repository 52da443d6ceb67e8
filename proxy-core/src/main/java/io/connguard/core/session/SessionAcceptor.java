package io.connguard.core.session;

import io.connguard.core.server.Listener;
import io.netty.channel.Channel;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.RecvByteBufAllocator;
import io.netty.channel.WriteBufferWaterMark;

/** Gives every accepted client connection of a listener its {@link Session}. */
public final class SessionAcceptor extends ChannelInitializer<Channel> {

    /** Per-channel outbound buffering before the other side stops being read (backpressure). */
    public static final WriteBufferWaterMark WATER_MARK = UpstreamConnector.WATER_MARK;
    /** The read-size policy shared by every channel (see {@link UpstreamConnector#READ_SIZES}). */
    public static final RecvByteBufAllocator READ_SIZES = UpstreamConnector.READ_SIZES;

    private final Listener listener;
    private final ProxyServices services;

    public SessionAcceptor(Listener listener, ProxyServices services) {
        this.listener = listener;
        this.services = services;
    }

    @Override
    protected void initChannel(Channel channel) {
        services.channels().add(channel);
        channel.pipeline().addLast(new RelayHandler(new Session(listener, services, channel), true));
    }
}
