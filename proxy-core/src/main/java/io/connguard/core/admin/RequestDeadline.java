package io.connguard.core.admin;

import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.util.concurrent.ScheduledFuture;

import java.util.concurrent.TimeUnit;

/**
 * Closes an admin connection whose request has not fully arrived {@link AdminServer#REQUEST_SECONDS}
 * after its first byte. The size limits bound what a request may hold; this bounds how long a client
 * may take to send it, so that a client trickling a header a byte at a time (slowloris) cannot hold
 * connections open. It sits in front of the HTTP codec and sees raw bytes; {@link AdminHandler} calls
 * {@link #requestComplete()} when the decoded request reaches it.
 */
final class RequestDeadline extends ChannelInboundHandlerAdapter {

    private final long seconds;
    private ScheduledFuture<?> deadline;

    RequestDeadline(long seconds) {
        this.seconds = seconds;
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
        if (deadline == null) {
            deadline = ctx.executor().schedule(() -> {
                deadline = null;
                ctx.close();
            }, seconds, TimeUnit.SECONDS);
        }
        ctx.fireChannelRead(msg);
    }

    /** The request being read has arrived whole; the next byte starts the next request's deadline. */
    void requestComplete() {
        if (deadline != null) {
            deadline.cancel(false);
            deadline = null;
        }
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) {
        requestComplete();
        ctx.fireChannelInactive();
    }
}
