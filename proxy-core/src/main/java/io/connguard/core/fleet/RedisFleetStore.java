package io.connguard.core.fleet;

import io.connguard.core.config.FleetConfig;
import io.lettuce.core.ClientOptions;
import io.lettuce.core.RedisClient;
import io.lettuce.core.RedisURI;
import io.lettuce.core.ScriptOutputType;
import io.lettuce.core.SocketOptions;
import io.lettuce.core.SslOptions;
import io.lettuce.core.TimeoutOptions;
import io.lettuce.core.api.StatefulRedisConnection;
import io.lettuce.core.codec.StringCodec;
import io.lettuce.core.pubsub.RedisPubSubAdapter;
import io.lettuce.core.pubsub.StatefulRedisPubSubConnection;
import io.lettuce.core.resource.ClientResources;
import io.lettuce.core.resource.DefaultClientResources;
import io.lettuce.core.resource.Delay;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import javax.net.ssl.TrustManagerFactory;
import java.io.IOException;
import java.io.InputStream;
import java.net.URI;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyStore;
import java.security.SecureRandom;
import java.security.cert.Certificate;
import java.security.cert.CertificateException;
import java.security.cert.CertificateFactory;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Consumer;

/**
 * The fleet store in Redis through Lettuce (which runs on Netty, like connguard, on its own small event
 * loop): one connection for the scripts of {@link LeaseScripts} and one subscribed to the fleet's channel,
 * on which every freed lease is announced. Commands fail at once while disconnected and after a timeout
 * otherwise, so callers learn quickly that the store is away; Lettuce reconnects (and re-subscribes) by itself.
 */
public final class RedisFleetStore implements FleetStore {

    private static final Logger LOG = LoggerFactory.getLogger(RedisFleetStore.class);

    private final RedisURI uri;
    private final ClientResources resources;
    private final RedisClient client;
    private final String prefix;
    private final String channel;
    private final String seq;
    private final List<Consumer<String>> listeners = new java.util.concurrent.CopyOnWriteArrayList<>();
    private final AtomicBoolean connecting = new AtomicBoolean();
    private volatile StatefulRedisConnection<String, String> connection;
    private volatile StatefulRedisPubSubConnection<String, String> pubsub;
    private volatile boolean closed;
    private volatile String lastFailure;

    /**
     * @param timeout how long a command may take before the store counts as away
     */
    public RedisFleetStore(FleetConfig config, Duration timeout) {
        this.uri = redisUri(config.store(), config.password(), timeout);
        this.resources = DefaultClientResources.builder()
                .ioThreadPoolSize(2)
                .computationThreadPoolSize(2)
                .reconnectDelay(Delay.exponential(Duration.ofMillis(50), Duration.ofMillis(500), 2, TimeUnit.MILLISECONDS))
                .build();
        this.client = RedisClient.create(resources);
        client.setOptions(clientOptions(config, timeout));
        this.prefix = "connguard:{" + config.name() + "}:";
        this.channel = prefix + "released";
        this.seq = prefix + "seq";
    }

    /**
     * Fail fast while away, reconnect by itself; with {@code rediss://} the server's certificate is verified
     * against {@code fleet.caFile} or, without one, the JVM's default trust store (peer and host name both
     * verified, as {@link RedisURI} does by default).
     *
     * <p>Lettuce builds a TLS context for every connection on its event loop, so everything that would read a
     * file there is done here, once, at start: the trust material is loaded now, and the context gets a
     * random source already seeded (the JDK's default reads {@code /dev/urandom} as it goes).
     */
    static ClientOptions clientOptions(FleetConfig config, Duration timeout) {
        ClientOptions.Builder options = ClientOptions.builder()
                .autoReconnect(true)
                .disconnectedBehavior(ClientOptions.DisconnectedBehavior.REJECT_COMMANDS)
                .timeoutOptions(TimeoutOptions.enabled(timeout))
                .socketOptions(SocketOptions.builder().connectTimeout(timeout).keepAlive(true).build());
        if ("rediss".equals(config.store().getScheme())) {
            TrustManagerFactory trust;
            SecureRandom random;
            try {
                trust = trustManagers(config.caFile());
                random = SecureRandom.getInstance("DRBG");
                random.nextBytes(new byte[16]); // seeds it here rather than on an event loop
            } catch (IOException | GeneralSecurityException e) {
                throw new IllegalStateException("fleet.caFile " + config.caFile() + ": " + e.getMessage(), e);
            }
            options.sslOptions(SslOptions.builder().jdkSslProvider().trustManager(trust)
                    .sslContext(builder -> builder.secureRandom(random))
                    .handshakeTimeout(timeout).build());
        }
        return options.build();
    }

    /**
     * The trust material for a TLS store: the certificates of the PEM bundle {@code caFile}, or the JVM's
     * default trust store when it is null. A file with no certificate in it is an error.
     */
    public static TrustManagerFactory trustManagers(Path caFile) throws IOException, GeneralSecurityException {
        TrustManagerFactory factory = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        if (caFile == null) {
            factory.init((KeyStore) null);
            return factory;
        }
        KeyStore store = KeyStore.getInstance(KeyStore.getDefaultType());
        store.load(null, null);
        try (InputStream in = Files.newInputStream(caFile)) {
            int i = 0;
            for (Certificate certificate : CertificateFactory.getInstance("X.509").generateCertificates(in)) {
                store.setCertificateEntry("ca-" + i++, certificate);
            }
            if (i == 0) {
                throw new CertificateException("no PEM certificate in " + caFile);
            }
        }
        factory.init(store);
        return factory;
    }

    /** The Redis address with the password from {@code fleet.password} when one is set. */
    static RedisURI redisUri(URI store, String password, Duration timeout) {
        RedisURI.Builder builder = RedisURI.builder()
                .withHost(store.getHost())
                .withPort(store.getPort() > 0 ? store.getPort() : RedisURI.DEFAULT_REDIS_PORT)
                .withSsl("rediss".equals(store.getScheme()))
                .withTimeout(timeout);
        String path = store.getPath();
        if (path != null && path.length() > 1) {
            builder.withDatabase(Integer.parseInt(path.substring(1)));
        }
        String user = null;
        String secret = null;
        if (store.getRawUserInfo() != null) {
            String info = store.getRawUserInfo();
            int colon = info.indexOf(':');
            user = decode(colon < 0 ? info : info.substring(0, colon));
            secret = colon < 0 ? null : decode(info.substring(colon + 1));
            if (colon < 0) {
                // redis://secret@host: a lone user-info is the password, as redis-cli reads it.
                secret = user;
                user = null;
            }
        }
        if (password != null && !password.isEmpty()) {
            secret = password;
        }
        if (secret != null && !secret.isEmpty()) {
            if (user != null && !user.isEmpty()) {
                builder.withAuthentication(user, secret);
            } else {
                builder.withPassword(secret.toCharArray());
            }
        }
        return builder.build();
    }

    private static String decode(String text) {
        return URLDecoder.decode(text, StandardCharsets.UTF_8);
    }

    /**
     * Connects, waiting at most {@code wait}; call from a thread that may block (start-up), never from an
     * event loop. Returns false when the store did not answer; {@link #reconnect} then keeps trying.
     */
    public boolean connect(Duration wait) {
        reconnect();
        long deadline = System.nanoTime() + wait.toNanos();
        while (System.nanoTime() < deadline && (connection == null || pubsub == null) && connecting.get()) {
            try {
                Thread.sleep(10);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return false;
            }
        }
        return connection != null && pubsub != null;
    }

    @Override
    public void reconnect() {
        if (closed || (connection != null && pubsub != null) || !connecting.compareAndSet(false, true)) {
            return;
        }
        CompletableFuture<Void> done = CompletableFuture.completedFuture(null);
        if (connection == null) {
            done = client.connectAsync(StringCodec.UTF8, uri).toCompletableFuture().thenAccept(c -> connection = c);
        }
        done.thenCompose(ignored -> pubsub != null ? CompletableFuture.completedFuture(null)
                        : client.connectPubSubAsync(StringCodec.UTF8, uri).toCompletableFuture().thenCompose(this::subscribe))
                .whenComplete((ignored, error) -> {
                    if (error != null) {
                        lastFailure = describe(error);
                        LOG.debug("fleet store {}:{} not reachable: {}", uri.getHost(), uri.getPort(), lastFailure);
                    }
                    connecting.set(false);
                });
    }

    @Override
    public String lastFailure() {
        return lastFailure;
    }

    /**
     * Lettuce's "Unable to connect to host:port" and, below it, what actually went wrong (AUTH refused, a
     * certificate not trusted, connection refused). Neither names the password: Lettuce never puts it in
     * a message, and {@link #uri} is not printed.
     */
    static String describe(Throwable error) {
        Throwable top = error instanceof java.util.concurrent.CompletionException && error.getCause() != null
                ? error.getCause() : error;
        Throwable root = top;
        while (root.getCause() != null && root.getCause() != root) {
            root = root.getCause();
        }
        String text = top.getMessage() == null ? top.getClass().getSimpleName() : top.getMessage();
        return root == top ? text : text + ": " + root;
    }

    private CompletableFuture<Void> subscribe(StatefulRedisPubSubConnection<String, String> connection) {
        connection.addListener(new RedisPubSubAdapter<>() {
            @Override
            public void message(String from, String key) {
                for (Consumer<String> listener : listeners) {
                    listener.accept(key);
                }
            }
        });
        return connection.async().subscribe(channel).toCompletableFuture().thenAccept(ignored -> pubsub = connection);
    }

    @Override
    public CompletionStage<Acquired> acquire(String key, String id, int cap, long ttlMillis) {
        return acquire(key, id, cap, ttlMillis, 0);
    }

    /** As {@link #acquire(String, String, int, long)} on a clock of the caller's (tests); 0 = the server's. */
    CompletionStage<Acquired> acquire(String key, String id, int cap, long ttlMillis, long nowMillis) {
        return this.<List<Object>>eval(LeaseScripts.ACQUIRE, ScriptOutputType.MULTI,
                        new String[]{leases(key), queue(key), waiters(key), seq},
                        id, Integer.toString(cap), Long.toString(ttlMillis), Long.toString(nowMillis))
                .thenApply(reply -> new Acquired(((Long) reply.get(0)) == 1L, (Long) reply.get(2)));
    }

    @Override
    public CompletionStage<Void> release(String key, String id) {
        return this.<Long>eval(LeaseScripts.RELEASE, ScriptOutputType.INTEGER,
                new String[]{leases(key), queue(key), waiters(key)}, id, channel, key).thenApply(ignored -> null);
    }

    @Override
    public CompletionStage<Integer> renew(Map<String, Holders> holders, long ttlMillis) {
        return renew(holders, ttlMillis, 0);
    }

    CompletionStage<Integer> renew(Map<String, Holders> holders, long ttlMillis, long nowMillis) {
        List<String> keys = new ArrayList<>(1 + holders.size() * 3);
        List<String> args = new ArrayList<>();
        keys.add(seq);
        args.add(Long.toString(ttlMillis));
        args.add(Long.toString(nowMillis));
        holders.forEach((key, held) -> {
            keys.add(leases(key));
            keys.add(queue(key));
            keys.add(waiters(key));
            args.add(Integer.toString(held.leases().size()));
            args.addAll(held.leases());
            args.add(Integer.toString(held.waiters().size()));
            args.addAll(held.waiters());
        });
        return this.<Long>eval(LeaseScripts.RENEW, ScriptOutputType.INTEGER, keys.toArray(String[]::new),
                args.toArray(String[]::new)).thenApply(Long::intValue);
    }

    @Override
    public CompletionStage<Map<String, Integer>> count(Collection<String> keys) {
        List<String> names = List.copyOf(keys);
        if (names.isEmpty()) {
            return CompletableFuture.completedFuture(Map.of());
        }
        return count(names, 0);
    }

    CompletionStage<Map<String, Integer>> count(List<String> names, long nowMillis) {
        return this.<List<Object>>eval(LeaseScripts.COUNT, ScriptOutputType.MULTI,
                names.stream().map(this::leases).toArray(String[]::new), Long.toString(nowMillis)).thenApply(reply -> {
                    Map<String, Integer> counts = new LinkedHashMap<>();
                    for (int i = 0; i < names.size(); i++) {
                        counts.put(names.get(i), ((Long) reply.get(i)).intValue());
                    }
                    return counts;
                });
    }

    @Override
    public void onReleased(Consumer<String> listener) {
        listeners.add(listener);
    }

    private <T> CompletionStage<T> eval(String script, ScriptOutputType type, String[] keys, String... args) {
        StatefulRedisConnection<String, String> c = connection;
        if (c == null) {
            return CompletableFuture.failedFuture(new IllegalStateException("not connected to the fleet store"));
        }
        // EVAL rather than EVALSHA: a store restarted without its script cache must not fail a lease.
        return c.async().<T>eval(script, type, keys, args);
    }

    String leases(String key) {
        return prefix + key + ":leases";
    }

    String queue(String key) {
        return prefix + key + ":queue";
    }

    String waiters(String key) {
        return prefix + key + ":waiters";
    }

    @Override
    public void close() {
        closed = true;
        StatefulRedisConnection<String, String> c = connection;
        StatefulRedisPubSubConnection<String, String> p = pubsub;
        connection = null;
        pubsub = null;
        if (c != null) {
            c.closeAsync();
        }
        if (p != null) {
            p.closeAsync();
        }
        client.shutdownAsync(0, 2, TimeUnit.SECONDS).whenComplete((ignored, error) ->
                resources.shutdown(0, 2, TimeUnit.SECONDS));
    }
}
