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

    /** Where a key's cancel goes, and, for a key connguard minted (pooled listeners), the server's own key. */
    private record Route(InetSocketAddress upstream, PgBackendKey serverKey, boolean between) {
        Route(InetSocketAddress upstream, PgBackendKey serverKey) {
            this(upstream, serverKey, false);
        }
    }

    private final ConcurrentMap<PgBackendKey, Route> routes = new ConcurrentHashMap<>();
    /**
     * The route of every idle transaction-mode client of an upstream is the same: one shared per upstream
     * (a listener's) instead of one per idle client, made again at the end of each of its transactions.
     */
    private final ConcurrentMap<InetSocketAddress, Route> idleRoutes = new ConcurrentHashMap<>();

    void register(PgBackendKey key, InetSocketAddress upstream) {
        routes.put(key, new Route(upstream, null));
    }

    /** A key connguard minted for a pooled client: its cancel goes to {@code serverKey}'s backend. */
    void register(PgBackendKey key, InetSocketAddress upstream, PgBackendKey serverKey) {
        routes.put(key, new Route(upstream, serverKey));
    }

    /**
     * Transaction mode: the client with the minted {@code key} holds no server connection now; its cancel
     * reaches nothing (the server would find no query of it to cancel either).
     */
    void registerIdle(PgBackendKey key, InetSocketAddress upstream) {
        routes.put(key, idleRoutes.computeIfAbsent(upstream, to -> new Route(to, null, true)));
    }

    void remove(PgBackendKey key, InetSocketAddress upstream) {
        Route route = routes.get(key);
        if (route != null && route.upstream().equals(upstream)) {
            routes.remove(key, route);
        }
    }

    InetSocketAddress route(PgBackendKey key) {
        Route route = routes.get(key);
        return route == null ? null : route.upstream();
    }

    int size() {
        return routes.size();
    }

    /**
     * Forwards {@code packet} (ownership moves here) for {@code key}, then closes the session; an unknown
     * key just closes it, as the server does.
     */
    void forward(SessionContext context, PgBackendKey key, ByteBuf original) {
        Route route = routes.get(key);
        if (route != null && route.between()) {
            original.release();
            context.log().debug("cancel request for a client between transactions: nothing to cancel");
            context.close();
            return;
        }
        InetSocketAddress upstream = route == null ? null : route.upstream();
        ByteBuf packet = route != null && route.serverKey() != null
                ? rewrite(original, route.serverKey(), context) : original;
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
