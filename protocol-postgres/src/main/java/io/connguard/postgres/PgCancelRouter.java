package io.connguard.postgres;

import io.connguard.core.api.SessionContext;
import io.netty.buffer.ByteBuf;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.util.ReferenceCountUtil;

import java.net.InetSocketAddress;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentMap;

/**
 * Routes CancelRequests: it remembers, for every live session, which upstream owns the backend key the
 * server gave it, and forwards a client's CancelRequest there on a fresh connection that is neither
 * counted nor queued. Shared by all sessions of the module, hence thread-safe.
 *
 * <p>Like the server, it answers nothing: the client learns the request was processed when its connection
 * closes, which happens here once the server has closed the side connection.
 *
 * @see <a href="https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-CANCELING-REQUESTS">
 *     Canceling requests in progress</a>
 */
final class PgCancelRouter {

    /**
     * Where the cancels of one backend key go: the session that gave the key to its client. Its answers may be
     * read from any event loop (the one that accepted the cancel request's connection).
     */
    interface Target {
        /** The database the session's listener relays to. */
        InetSocketAddress cancelUpstream();

        /**
         * The server's own key to send instead of the client's (a key connguard minted, on a pooled listener):
         * in transaction mode the key of the connection serving the client at this moment, null between its
         * transactions; null on a relayed session (the client's key is the server's).
         */
        PgBackendKey cancelServerKey();

        /** Transaction mode: a null {@link #cancelServerKey} means the client holds no server connection. */
        boolean cancelsPerTransaction();
    }

    /**
     * Every live session's key. A session registers once when its client learns the key; transaction mode's
     * lends and give-backs change what its target answers, not this map, so a transaction costs it nothing.
     */
    private final ConcurrentMap<PgBackendKey, Target> routes = new ConcurrentHashMap<>();

    void register(PgBackendKey key, Target target) {
        routes.put(key, target);
    }

    /** Forgets {@code key} if it is still {@code target}'s (another session's equal key stays). */
    void remove(PgBackendKey key, Target target) {
        routes.remove(key, target);
    }

    InetSocketAddress route(PgBackendKey key) {
        Target target = routes.get(key);
        return target == null ? null : target.cancelUpstream();
    }

    int size() {
        return routes.size();
    }

    /**
     * Forwards {@code packet} (ownership moves here) for {@code key}, then closes the session; an unknown
     * key just closes it, as the server does.
     */
    void forward(SessionContext context, PgBackendKey key, ByteBuf original) {
        Target target = routes.get(key);
        PgBackendKey serverKey = target == null ? null : target.cancelServerKey();
        if (target != null && serverKey == null && target.cancelsPerTransaction()) {
            original.release();
            context.log().debug("cancel request for a client between transactions: nothing to cancel");
            context.close();
            return;
        }
        InetSocketAddress upstream = target == null ? null : target.cancelUpstream();
        ByteBuf packet = serverKey != null ? rewrite(original, serverKey, context) : original;
        if (upstream == null) {
            packet.release();
            context.log().debug("cancel request for an unknown {}: closing", key);
            context.close();
            return;
        }
        context.log().debug("forwarding a cancel request for {} to {}", key, upstream);
        context.connectAside(upstream, new AwaitServerClose(context)).addListener(connected -> {
            if (connected.isSuccess()) {
                Channel channel = (Channel) connected.getNow();
                channel.writeAndFlush(packet).addListener(written -> {
                    if (!written.isSuccess()) {
                        channel.close();
                    }
                });
            } else {
                packet.release();
                context.log().info("could not forward a cancel request for {} to {}: {}", key, upstream,
                        String.valueOf(connected.cause()));
                context.close();
            }
        });
    }

    /** The cancel for a minted key, as the server's own key (the client's packet is released). */
    private static ByteBuf rewrite(ByteBuf original, PgBackendKey serverKey, SessionContext context) {
        original.release();
        return serverKey.cancelRequest(context.alloc());
    }

    /** Ends the client's cancel connection when the server has processed the request and closed its side. */
    private static final class AwaitServerClose extends ChannelInboundHandlerAdapter {

        private final SessionContext context;

        AwaitServerClose(SessionContext context) {
            this.context = context;
        }

        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) {
            ReferenceCountUtil.release(msg);
        }

        @Override
        public void channelInactive(ChannelHandlerContext ctx) {
            context.close();
        }

        @Override
        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
            ctx.close();
        }
    }
}
