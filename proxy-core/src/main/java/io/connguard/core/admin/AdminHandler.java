package io.connguard.core.admin;

import io.connguard.core.admission.Admission;
import io.connguard.core.admission.ClientKey;
import io.connguard.core.lifecycle.ReloadResult;
import io.connguard.core.metrics.CloseReason;
import io.connguard.core.server.Listener;
import io.connguard.core.server.ProxyServer;
import io.connguard.core.session.Session;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.SimpleChannelInboundHandler;
import io.netty.handler.codec.TooLongFrameException;
import io.netty.handler.codec.http.DefaultFullHttpResponse;
import io.netty.handler.codec.http.FullHttpRequest;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpHeaderValues;
import io.netty.handler.codec.http.HttpMethod;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.handler.codec.http.QueryStringDecoder;
import io.netty.handler.codec.http.TooLongHttpLineException;
import io.netty.handler.timeout.IdleStateEvent;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.TimeUnit;

/**
 * Routes the admin API: {@code /metrics /healthz /readyz /sessions /clients}, {@code DELETE /sessions/{id}},
 * {@code POST /reload} and {@code POST /quitquitquit}. Mutating calls need the bearer token when one is set;
 * when the endpoint does not listen on loopback every call but {@code /metrics /healthz /readyz} needs it.
 * Any other path is 404; a known path with another method is 405.
 */
final class AdminHandler extends SimpleChannelInboundHandler<FullHttpRequest> {

    private static final Logger LOG = LoggerFactory.getLogger(AdminHandler.class);
    private static final String JSON = "application/json; charset=utf-8";
    private static final String TEXT = "text/plain; charset=utf-8";
    private static final String PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8";

    /** What a scraper and the kubelet read without a token wherever the endpoint listens. */
    private static final java.util.Set<String> OPEN_READS = java.util.Set.of("/metrics", "/healthz", "/readyz");

    private final ProxyServer server;
    private final ExecutorService worker;
    private final LoopHeartbeats heartbeats;
    /** admin.listen is not a loopback address: every read but {@link #OPEN_READS} needs the token too. */
    private final boolean offLoopback;

    AdminHandler(ProxyServer server, ExecutorService worker, LoopHeartbeats heartbeats, boolean offLoopback) {
        this.server = server;
        this.worker = worker;
        this.heartbeats = heartbeats;
        this.offLoopback = offLoopback;
    }

    @Override
    protected void channelRead0(ChannelHandlerContext ctx, FullHttpRequest request) {
        RequestDeadline deadline = ctx.pipeline().get(RequestDeadline.class);
        if (deadline != null) {
            deadline.requestComplete();
        }
        if (!request.decoderResult().isSuccess()) {
            Throwable cause = request.decoderResult().cause();
            HttpResponseStatus status = cause instanceof TooLongHttpLineException ? HttpResponseStatus.REQUEST_URI_TOO_LONG
                    : cause instanceof TooLongFrameException ? HttpResponseStatus.REQUEST_HEADER_FIELDS_TOO_LARGE
                    : HttpResponseStatus.BAD_REQUEST;
            respond(ctx, request, status, TEXT, status.reasonPhrase().toLowerCase(java.util.Locale.ROOT) + "\n", false);
            return;
        }
        String path = new QueryStringDecoder(request.uri()).path();
        if (offLoopback && !OPEN_READS.contains(path) && !authorized(request)) {
            // Sessions and clients name users, applications and statement fingerprints: not for the network.
            unauthorized(ctx, request);
            return;
        }
        switch (path) {
            case "/metrics" -> get(ctx, request, () -> CompletableFuture.completedFuture(
                    new Reply(HttpResponseStatus.OK, PROMETHEUS, server.metrics().scrape())));
            case "/healthz" -> get(ctx, request, this::health);
            case "/readyz" -> get(ctx, request, () -> CompletableFuture.completedFuture(server.ready()
                    ? new Reply(HttpResponseStatus.OK, TEXT, "ready\n" + fleetLine())
                    : new Reply(HttpResponseStatus.SERVICE_UNAVAILABLE, TEXT,
                    server.drainControl().started() ? "draining\n" : "not ready\n")));
            case "/sessions" -> get(ctx, request, () -> server.registry().snapshot()
                    .thenApply(s -> new Reply(HttpResponseStatus.OK, JSON, Views.sessions(s))));
            case "/clients" -> get(ctx, request, this::clients);
            case "/pools" -> get(ctx, request, () -> CompletableFuture.completedFuture(
                    new Reply(HttpResponseStatus.OK, JSON, Views.pools(server.pools()))));
            case "/reload" -> mutate(ctx, request, HttpMethod.POST, this::reload);
            case "/quitquitquit" -> mutate(ctx, request, HttpMethod.POST, () -> {
                LOG.info("drain requested through the admin API");
                server.drain();
                return CompletableFuture.completedFuture(new Reply(HttpResponseStatus.OK, JSON,
                        "{\"status\":\"draining\"}"));
            });
            default -> {
                if (path.startsWith("/sessions/") && path.indexOf('/', "/sessions/".length()) < 0) {
                    mutate(ctx, request, HttpMethod.DELETE, () -> kill(path.substring("/sessions/".length())));
                } else {
                    respond(ctx, request, HttpResponseStatus.NOT_FOUND, TEXT, "not found\n", true);
                }
            }
        }
    }

    /** A response to send. */
    private record Reply(HttpResponseStatus status, String contentType, String body) {
    }

    private interface Action {
        CompletableFuture<Reply> run();
    }

    private void get(ChannelHandlerContext ctx, FullHttpRequest request, Action action) {
        if (!request.method().equals(HttpMethod.GET) && !request.method().equals(HttpMethod.HEAD)) {
            methodNotAllowed(ctx, request, "GET, HEAD");
            return;
        }
        run(ctx, request, action);
    }

    private void mutate(ChannelHandlerContext ctx, FullHttpRequest request, HttpMethod allowed, Action action) {
        if (!request.method().equals(allowed)) {
            methodNotAllowed(ctx, request, allowed.name());
            return;
        }
        if (!authorized(request)) {
            unauthorized(ctx, request);
            return;
        }
        run(ctx, request, action);
    }

    private void unauthorized(ChannelHandlerContext ctx, FullHttpRequest request) {
        FullHttpResponse response = response(HttpResponseStatus.UNAUTHORIZED, JSON,
                "{\"error\":\"a valid Authorization: Bearer token is required\"}", false);
        response.headers().set(HttpHeaderNames.WWW_AUTHENTICATE, "Bearer realm=\"connguard\"");
        send(ctx, request, response);
    }

    private void run(ChannelHandlerContext ctx, FullHttpRequest request, Action action) {
        boolean head = request.method().equals(HttpMethod.HEAD);
        boolean keepAlive = HttpUtil.isKeepAlive(request);
        HttpVersion version = request.protocolVersion();
        CompletableFuture<Reply> reply;
        try {
            reply = action.run();
        } catch (RuntimeException e) {
            reply = CompletableFuture.failedFuture(e);
        }
        // The timeout is the admin loop's own timer, and the answer is written from that loop: a reply is often
        // completed on a session's event loop (a /sessions snapshot), where cancelling CompletableFuture's
        // shared timeout scheduler (orTimeout) would take a contended lock.
        CompletableFuture<Reply> pending = reply;
        io.netty.util.concurrent.ScheduledFuture<?> timeout = ctx.executor().schedule(() -> pending
                .completeExceptionally(new java.util.concurrent.TimeoutException("no answer within 10 s")),
                10, TimeUnit.SECONDS);
        reply.whenCompleteAsync((r, failure) -> {
            timeout.cancel(false);
            FullHttpResponse response;
            if (failure != null) {
                LOG.warn("admin request {} failed", request.uri(), failure);
                response = response(HttpResponseStatus.INTERNAL_SERVER_ERROR, TEXT, "internal error\n", head);
            } else {
                response = response(r.status(), r.contentType(), r.body(), head);
            }
            send(ctx, version, keepAlive, response);
        }, ctx.executor());
    }

    private boolean authorized(FullHttpRequest request) {
        String token = server.config().admin().token();
        if (token.isEmpty()) {
            return true;
        }
        String header = request.headers().get(HttpHeaderNames.AUTHORIZATION);
        if (header == null || !header.regionMatches(true, 0, "Bearer ", 0, 7)) {
            return false;
        }
        byte[] given = header.substring(7).trim().getBytes(StandardCharsets.UTF_8);
        return MessageDigest.isEqual(given, token.getBytes(StandardCharsets.UTF_8));
    }

    /** {@code /readyz} stays 200 while the fleet store is away (the caps fall back to per process) but says so. */
    private String fleetLine() {
        String status = server.fleet().status();
        return status == null ? "" : status + "\n";
    }

    private CompletableFuture<Reply> clients() {
        return server.registry().snapshot().thenCompose(sessions -> {
            List<Listener> listeners = server.listeners();
            if (!server.fleet().enabled()) {
                return CompletableFuture.completedFuture(new Reply(HttpResponseStatus.OK, JSON,
                        Views.clients(listeners, sessions)));
            }
            Map<ClientKey, Integer> here = server.fleet().heldHere();
            List<ClientKey> keys = new ArrayList<>();
            for (Listener listener : listeners) {
                for (Admission.ClientCounts counts : listener.admission().clients()) {
                    if (counts.limits() != null && counts.limits().fleetMaxConnections() > 0) {
                        keys.add(counts.key());
                    }
                }
            }
            return server.fleet().heldInFleet(keys).toCompletableFuture().thenApply(fleet -> new Reply(
                    HttpResponseStatus.OK, JSON, Views.clients(listeners, sessions, new Views.FleetCounts(here, fleet))));
        });
    }

    private CompletableFuture<Reply> health() {
        return CompletableFuture.completedFuture(heartbeats.allResponding()
                ? new Reply(HttpResponseStatus.OK, TEXT, "ok\n")
                : new Reply(HttpResponseStatus.SERVICE_UNAVAILABLE, TEXT, "event loops not responding\n"));
    }

    private CompletableFuture<Reply> reload() {
        return CompletableFuture.supplyAsync(() -> {
            ReloadResult result = server.reload();
            Json json = new Json().beginObject()
                    .field("status", result.status().name().toLowerCase(java.util.Locale.ROOT))
                    .name("reasons").beginArray();
            for (String reason : result.reasons()) {
                json.value(reason);
            }
            json.endArray().endObject();
            HttpResponseStatus status = switch (result.status()) {
                case APPLIED, UNCHANGED -> HttpResponseStatus.OK;
                case INVALID -> HttpResponseStatus.BAD_REQUEST;
                case REFUSED -> HttpResponseStatus.CONFLICT;
            };
            return new Reply(status, JSON, json.toString());
        }, worker);
    }

    private CompletableFuture<Reply> kill(String idText) {
        long id;
        try {
            id = Long.parseLong(idText);
        } catch (NumberFormatException e) {
            return CompletableFuture.completedFuture(new Reply(HttpResponseStatus.NOT_FOUND, JSON,
                    "{\"error\":\"no such session\"}"));
        }
        Session session = server.registry().get(id);
        if (session == null) {
            return CompletableFuture.completedFuture(new Reply(HttpResponseStatus.NOT_FOUND, JSON,
                    "{\"error\":\"no such session\"}"));
        }
        LOG.atInfo().addKeyValue("session", id).log("session kill requested through the admin API");
        session.kill(CloseReason.ADMIN);
        return CompletableFuture.completedFuture(new Reply(HttpResponseStatus.OK, JSON,
                "{\"killed\":" + id + "}"));
    }

    private void methodNotAllowed(ChannelHandlerContext ctx, FullHttpRequest request, String allow) {
        FullHttpResponse response = response(HttpResponseStatus.METHOD_NOT_ALLOWED, TEXT, "method not allowed\n", false);
        response.headers().set(HttpHeaderNames.ALLOW, allow);
        send(ctx, request, response);
    }

    private void respond(ChannelHandlerContext ctx, FullHttpRequest request, HttpResponseStatus status,
                         String contentType, String body, boolean keepAliveAllowed) {
        FullHttpResponse response = response(status, contentType, body, request.method().equals(HttpMethod.HEAD));
        send(ctx, request.protocolVersion(), keepAliveAllowed && HttpUtil.isKeepAlive(request), response);
    }

    private static FullHttpResponse response(HttpResponseStatus status, String contentType, String body, boolean head) {
        byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
        ByteBuf content = head ? Unpooled.EMPTY_BUFFER : Unpooled.wrappedBuffer(bytes);
        FullHttpResponse response = new DefaultFullHttpResponse(HttpVersion.HTTP_1_1, status, content);
        response.headers().set(HttpHeaderNames.CONTENT_TYPE, contentType);
        response.headers().setInt(HttpHeaderNames.CONTENT_LENGTH, bytes.length);
        response.headers().set(HttpHeaderNames.CACHE_CONTROL, "no-store");
        return response;
    }

    private static void send(ChannelHandlerContext ctx, FullHttpRequest request, FullHttpResponse response) {
        send(ctx, request.protocolVersion(), HttpUtil.isKeepAlive(request), response);
    }

    private static void send(ChannelHandlerContext ctx, HttpVersion version, boolean keepAlive,
                             FullHttpResponse response) {
        response.setProtocolVersion(version);
        if (keepAlive) {
            if (version.equals(HttpVersion.HTTP_1_0)) {
                response.headers().set(HttpHeaderNames.CONNECTION, HttpHeaderValues.KEEP_ALIVE);
            }
            ctx.writeAndFlush(response);
        } else {
            response.headers().set(HttpHeaderNames.CONNECTION, HttpHeaderValues.CLOSE);
            ctx.writeAndFlush(response).addListener(ChannelFutureListener.CLOSE);
        }
    }

    @Override
    public void userEventTriggered(ChannelHandlerContext ctx, Object evt) {
        if (evt instanceof IdleStateEvent) {
            ctx.close();
        } else {
            ctx.fireUserEventTriggered(evt);
        }
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
        LOG.debug("admin connection failed: {}", cause.toString());
        ctx.close();
    }
}
