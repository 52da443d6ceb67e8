package io.connguard.core.server;

import io.connguard.core.Version;
import io.connguard.core.admin.AdminServer;
import io.connguard.core.admission.ClientPolicy;
import io.connguard.core.api.ProtocolModule;
import io.connguard.core.config.ConfigError;
import io.connguard.core.config.ConfigException;
import io.connguard.core.config.ConfigLoader;
import io.connguard.core.config.ListenerConfig;
import io.connguard.core.config.ProxyConfig;
import io.connguard.core.config.TlsIdentity;
import io.connguard.core.lifecycle.ConfigWatcher;
import io.connguard.core.lifecycle.Drain;
import io.connguard.core.lifecycle.ReloadResult;
import io.connguard.core.auth.UsersDirectory;
import io.connguard.core.auth.UsersFile;
import io.connguard.core.logging.Logging;
import io.connguard.core.pool.PoolSnapshot;
import io.connguard.core.pool.Pools;
import io.netty.channel.EventLoop;
import io.connguard.core.metrics.ProxyMetrics;
import io.connguard.core.session.ProxyServices;
import io.connguard.core.session.SessionAcceptor;
import io.connguard.core.session.SessionRegistry;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.channel.Channel;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.group.ChannelGroup;
import io.netty.channel.group.DefaultChannelGroup;
import io.netty.util.concurrent.GlobalEventExecutor;
import io.netty.util.concurrent.Future;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import javax.net.ssl.SSLException;
import java.security.GeneralSecurityException;
import java.net.InetSocketAddress;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;

/**
 * A running connguard: binds every listener and the admin endpoint, owns the event loops, the session
 * registry, metrics and the configuration in force, and carries out reloads and the drain.
 */
public final class ProxyServer implements ProxyServices, AutoCloseable {

    private static final Logger LOG = LoggerFactory.getLogger(ProxyServer.class);

    /**
     * How to start.
     *
     * @param configFile  the file {@code POST /reload}, SIGHUP and the file watcher re-read; may be null
     * @param environment where {@code ${NAME}} is looked up on reload
     * @param modules     the installed protocols by id
     * @param ioThreads   event loops for sessions, overriding the configuration's {@code ioThreads}; 0 = as configured
     */
    public record Options(Path configFile, Function<String, String> environment, Map<String, ProtocolModule> modules,
                          int ioThreads) {

        public static Options of(Path configFile) {
            return new Options(configFile, System::getenv, ProtocolModules.load(), 0);
        }
    }

    /** A listener or the admin endpoint could not bind (exit code 2). */
    public static final class BindException extends Exception {
        private static final long serialVersionUID = 1L;

        BindException(String message, Throwable cause) {
            super(message, cause);
        }
    }

    private final Options options;
    private final Transport transport = Transport.detect();
    private final SessionRegistry registry = new SessionRegistry();
    private final UpstreamResolver resolver = new UpstreamResolver();
    private final ChannelGroup channels = new DefaultChannelGroup("connguard", GlobalEventExecutor.INSTANCE, true);
    private final Map<String, Listener> listeners = new LinkedHashMap<>();
    private final ProxyMetrics metrics;
    private final MultiThreadIoEventLoopGroup loops;
    private final Drain drain;
    private final AdminServer admin;
    private final Fleet fleet;
    private final CompletableFuture<Integer> terminated = new CompletableFuture<>();
    private volatile ProxyConfig config;
    private volatile ClientPolicy policy;
    private volatile boolean bound;
    private ConfigWatcher watcher;
    private final ClientTlsWatcher certificateWatcher = new ClientTlsWatcher(listeners::values);
    private final java.util.concurrent.atomic.AtomicBoolean closed = new java.util.concurrent.atomic.AtomicBoolean();

    private ProxyServer(ProxyConfig config, Options options) {
        this.config = config;
        this.options = options;
        this.policy = new ClientPolicy(config.clients());
        this.metrics = new ProxyMetrics(config.clients().maxTrackedClients(), System::nanoTime);
        int threads = options.ioThreads() > 0 ? options.ioThreads()
                : config.ioThreads() > 0 ? config.ioThreads() : Runtime.getRuntime().availableProcessors();
        this.loops = transport.newGroup(threads, "connguard-io");
        this.fleet = Fleet.start(config.fleet(), metrics.registry());
        this.drain = new Drain(this);
        this.admin = new AdminServer(this, transport);
    }

    /** Binds everything and starts serving; throws when a listener or the admin endpoint cannot bind. */
    public static ProxyServer start(ProxyConfig config, Options options) throws BindException, ConfigException {
        ProxyServer server = new ProxyServer(config, options);
        try {
            server.bindAll();
        } catch (BindException | ConfigException | RuntimeException e) {
            server.close();
            throw e;
        }
        return server;
    }

    private void bindAll() throws BindException, ConfigException {
        metrics.bindRuntime(PooledByteBufAllocator.DEFAULT, loops);
        io.connguard.core.auth.Randomness.warm();
        for (ListenerConfig lc : config.listeners()) {
            ProtocolModule module = options.modules().get(lc.protocol());
            Listener listener = new Listener(lc, module, metrics.listener(lc.name()), tlsContext(lc),
                    clientTlsContext(lc, module, null), fleet.gate());
            listeners.put(lc.name(), listener);
        }
        for (Listener listener : listeners.values()) {
            bind(listener);
        }
        try {
            admin.start(config.admin().listen());
        } catch (java.net.BindException e) {
            throw new BindException(e.getMessage(), e);
        }
        bound = true;
        if (options.configFile() != null) {
            watcher = new ConfigWatcher(options.configFile(), this::reload);
            watcher.start();
        }
        certificateWatcher.start();
        loops.next().scheduleAtFixedRate(metrics::sweep, 1, 1, TimeUnit.MINUTES);
        LOG.atInfo().addKeyValue("transport", transport.name()).addKeyValue("ioThreads", loops.executorCount())
                .log("connguard {} started: {} listener(s), admin on {}", Version.get(), listeners.size(),
                        admin.address());
    }

    private void bind(Listener listener) throws BindException {
        ListenerConfig lc = listener.config();
        EventLoopGroup acceptor = loops;
        EventLoopGroup children = loops;
        if (lc.pool().pooled()) {
            // A pooled listener runs every client and server connection on one event loop, so its pools,
            // idle lists and waiters are confined to one thread (as PgBouncer's are) and need no locks. It
            // accepts on that loop too: a connection accepted elsewhere would be handed over as a task, with
            // a wake-up of the loop, for every connect.
            EventLoop loop = loops.next();
            acceptor = loop;
            children = loop;
            try {
                listener.pools(new Pools(listener, this, loop,
                        lc.auth().usersFile() == null ? null : new UsersDirectory(lc.auth().usersFile())));
            } catch (UsersFile.Invalid e) {
                throw new BindException("listener " + lc.name() + ": " + e.getMessage(), e);
            }
        }
        ServerBootstrap bootstrap = new ServerBootstrap()
                .group(acceptor, children)
                .channel(transport.serverChannel())
                .option(ChannelOption.SO_BACKLOG, 4096)
                .option(ChannelOption.SO_REUSEADDR, true)
                // TCP_NODELAY is Netty's default for accepted and connected sockets.
                .childOption(ChannelOption.AUTO_READ, false)
                .childOption(ChannelOption.SO_KEEPALIVE, true)
                .childOption(ChannelOption.ALLOCATOR, PooledByteBufAllocator.DEFAULT)
                .childOption(ChannelOption.WRITE_BUFFER_WATER_MARK, SessionAcceptor.WATER_MARK)
                .childOption(ChannelOption.RCVBUF_ALLOCATOR, SessionAcceptor.READ_SIZES)
                .childHandler(new SessionAcceptor(listener, this));
        try {
            Channel channel = bootstrap.bind(lc.listen().resolved()).syncUninterruptibly().channel();
            listener.serverChannel(channel);
            LOG.atInfo().addKeyValue("listener", lc.name()).log("listening on {} ({}) for upstream {}",
                    channel.localAddress(), lc.protocol(), lc.upstream());
        } catch (Exception e) {
            throw new BindException("cannot listen on " + lc.listen() + " for listener " + lc.name() + ": "
                    + Objects.requireNonNullElse(e.getMessage(), e.getClass().getSimpleName()), e);
        }
    }

    /** The listener's client TLS context: {@code current} again when its settings did not change. */
    private static ClientTlsContext clientTlsContext(ListenerConfig lc, ProtocolModule module, ClientTlsContext current)
            throws ConfigException {
        if (current != null && current.config().equals(lc.clientTls())) {
            return current;
        }
        if (lc.clientTls().mode().enabled() && !module.terminatesClientTls()) {
            throw new ConfigException(List.of(new ConfigError("listeners." + lc.name() + ".clientTls.mode", 0,
                    "protocol " + lc.protocol() + " does not accept TLS from clients in this version; use mode disable")));
        }
        try {
            return ClientTlsContext.build(lc.name(), lc.clientTls(), module.tlsApplicationProtocols());
        } catch (TlsIdentity.Invalid e) {
            throw new ConfigException(List.of(new ConfigError("listeners." + lc.name() + ".clientTls." + e.field(), 0,
                    e.getMessage())));
        } catch (GeneralSecurityException | SSLException | IllegalArgumentException e) {
            throw new ConfigException(List.of(new ConfigError("listeners." + lc.name() + ".clientTls", 0,
                    "cannot set up TLS for clients: " + e.getMessage())));
        }
    }

    private static UpstreamTlsContext tlsContext(ListenerConfig lc) throws ConfigException {
        try {
            return UpstreamTlsContext.build(lc.upstreamTls());
        } catch (SSLException | IllegalArgumentException e) {
            throw new ConfigException(List.of(new ConfigError("listeners." + lc.name() + ".upstreamTls.caFile", 0,
                    "cannot load CA certificates: " + e.getMessage())));
        }
    }

    // ------------------------------------------------------------------ views

    /** The port a listener is bound to (useful with port 0). */
    public int port(String listener) {
        Listener l = listeners.get(listener);
        if (l == null || l.serverChannel() == null) {
            throw new IllegalArgumentException("no bound listener " + listener);
        }
        return ((InetSocketAddress) l.serverChannel().localAddress()).getPort();
    }

    public InetSocketAddress adminAddress() {
        return admin.address();
    }

    public ProxyConfig config() {
        return config;
    }

    public List<Listener> listeners() {
        return List.copyOf(listeners.values());
    }

    /** Every pool of every pooled listener, as {@code /pools} shows them. */
    public List<PoolSnapshot> pools() {
        List<PoolSnapshot> all = new ArrayList<>();
        for (Listener listener : listeners.values()) {
            if (listener.pools() != null) {
                all.addAll(listener.pools().snapshot());
            }
        }
        return all;
    }

    public EventLoopGroup loops() {
        return loops;
    }

    /** Every listener is bound and the proxy is not draining. */
    public boolean ready() {
        return bound && !drain.started();
    }

    /** Fleet budgets: the leases this process holds and whether the store answers (off when no store is set). */
    public Fleet fleet() {
        return fleet;
    }

    public Drain drainControl() {
        return drain;
    }

    @Override
    public SessionRegistry registry() {
        return registry;
    }

    @Override
    public ProxyMetrics metrics() {
        return metrics;
    }

    @Override
    public ClientPolicy policy() {
        return policy;
    }

    @Override
    public Transport transport() {
        return transport;
    }

    @Override
    public UpstreamResolver resolver() {
        return resolver;
    }

    @Override
    public ChannelGroup channels() {
        return channels;
    }

    /** Completes with the process exit code when the proxy has stopped. */
    public CompletableFuture<Integer> terminated() {
        return terminated;
    }

    // ------------------------------------------------------------------ reload

    /** Re-reads the configuration file and applies it, or keeps the running one and says why. */
    public synchronized ReloadResult reload() {
        if (options.configFile() == null) {
            return ReloadResult.refused(List.of("no configuration file to re-read"));
        }
        ConfigLoader loader = ProtocolModules.configLoader(options.environment(), options.modules());
        ProxyConfig next;
        try {
            next = loader.load(options.configFile());
        } catch (ConfigException e) {
            for (ConfigError error : e.errors()) {
                LOG.atWarn().log("reload ignored, configuration invalid: {}", error);
            }
            return ReloadResult.invalid(e.errors().stream().map(ConfigError::toString).toList());
        }
        return apply(next);
    }

    /** Applies a validated configuration: limits, rules and timeouts change live; addresses need a restart. */
    public synchronized ReloadResult apply(ProxyConfig next) {
        List<String> restart = restartNeeded(config, next);
        if (!restart.isEmpty()) {
            for (String reason : restart) {
                LOG.atWarn().log("reload refused, needs a restart: {}", reason);
            }
            return ReloadResult.refused(restart);
        }
        Map<String, UpstreamTlsContext> contexts = new LinkedHashMap<>();
        Map<String, ClientTlsContext> clientContexts = new LinkedHashMap<>();
        for (ListenerConfig lc : next.listeners()) {
            try {
                contexts.put(lc.name(), tlsContext(lc));
                Listener listener = listeners.get(lc.name());
                clientContexts.put(lc.name(), clientTlsContext(lc, listener.module(), listener.clientTls()));
            } catch (ConfigException e) {
                LOG.atWarn().log("reload ignored: {}", e.getMessage());
                return ReloadResult.invalid(List.of(e.getMessage()));
            }
        }
        if (next.equals(config)) {
            return ReloadResult.unchanged();
        }
        boolean loggingChanged = !next.logging().equals(config.logging());
        config = next;
        policy = new ClientPolicy(next.clients());
        metrics.maxTrackedClients(next.clients().maxTrackedClients());
        for (ListenerConfig lc : next.listeners()) {
            listeners.get(lc.name()).update(lc, contexts.get(lc.name()), clientContexts.get(lc.name()));
        }
        if (loggingChanged) {
            Logging.configure(next.logging());
        }
        registry.all().forEach(session -> session.refresh());
        LOG.info("configuration reloaded and applied to {} open session(s)", registry.size());
        return ReloadResult.applied();
    }

    private static List<String> restartNeeded(ProxyConfig now, ProxyConfig next) {
        List<String> reasons = new ArrayList<>();
        if (now.ioThreads() != next.ioThreads()) {
            reasons.add("ioThreads changed from " + now.ioThreads() + " to " + next.ioThreads());
        }
        if (!now.fleet().equals(next.fleet())) {
            reasons.add("fleet changed from " + now.fleet() + " to " + next.fleet()
                    + " (fleet.store, fleet.name, fleet.leaseTtl, fleet.password and fleet.caFile are read at start)");
        }
        if (!now.admin().listen().equals(next.admin().listen())) {
            reasons.add("admin.listen changed from " + now.admin().listen() + " to " + next.admin().listen());
        }
        List<String> names = now.listeners().stream().map(ListenerConfig::name).toList();
        List<String> nextNames = next.listeners().stream().map(ListenerConfig::name).toList();
        if (!names.equals(nextNames)) {
            reasons.add("the set of listeners changed from " + names + " to " + nextNames);
            return reasons;
        }
        for (ListenerConfig lc : now.listeners()) {
            ListenerConfig other = next.listener(lc.name()).orElseThrow();
            if (!lc.listen().equals(other.listen())) {
                reasons.add("listener " + lc.name() + ": listen changed from " + lc.listen() + " to " + other.listen());
            }
            if (!java.util.Objects.equals(lc.auth().usersFile(), other.auth().usersFile())) {
                reasons.add("listener " + lc.name() + ": auth.usersFile changed (its content is re-read by itself)");
            }
            if (lc.pool().mode() != other.pool().mode()) {
                reasons.add("listener " + lc.name() + ": pool.mode changed from " + lc.pool().mode().key() + " to "
                        + other.pool().mode().key());
            }
            if (!lc.protocol().equals(other.protocol())) {
                reasons.add("listener " + lc.name() + ": protocol changed from " + lc.protocol() + " to "
                        + other.protocol());
            }
        }
        return reasons;
    }

    // ------------------------------------------------------------------ stopping

    /** Starts the drain (SIGTERM, {@code POST /quitquitquit}); idempotent. */
    public void drain() {
        drain.start();
    }

    /** Called by the drain when it is over: stops listening, closes the loops, completes {@link #terminated}. */
    public void stopped(int exitCode) {
        close();
        terminated.complete(exitCode);
    }

    /** Stops at once: closes the listeners, the admin endpoint and every connection. */
    @Override
    public void close() {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        bound = false;
        if (watcher != null) {
            watcher.close();
        }
        certificateWatcher.close();
        for (Listener listener : listeners.values()) {
            if (listener.serverChannel() != null) {
                listener.serverChannel().close().syncUninterruptibly();
            }
            if (listener.pools() != null) {
                listener.pools().close();
            }
        }
        admin.close();
        // Closed here, on their loops, rather than left to the loops' shutdown: a loop told to stop while it
        // is running tasks (as it is just after its listening socket closed) can end without closing its
        // channels (Netty 4.2's SingleThreadIoEventLoop with no quiet period), and they would stay open.
        channels.close().awaitUninterruptibly(2, TimeUnit.SECONDS);
        Future<?> shutdown = loops.shutdownGracefully(0, 2, TimeUnit.SECONDS);
        shutdown.awaitUninterruptibly(5, TimeUnit.SECONDS);
        resolver.close();
        fleet.close();
        metrics.close();
        terminated.complete(0);
    }
}
