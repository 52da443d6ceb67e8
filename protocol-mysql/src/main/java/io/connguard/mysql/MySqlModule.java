package io.connguard.mysql;

import io.connguard.core.api.ClientIdentity;
import io.connguard.core.api.ListenerInfo;
import io.connguard.core.api.ProtocolModule;
import io.connguard.core.api.ProtocolSession;
import io.connguard.core.api.ServerConnectionContext;
import io.connguard.core.api.ServerConnectionProtocol;
import io.connguard.core.api.SessionContext;

import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The MySQL / MariaDB protocol for connguard. It holds what sessions share: the last server greeting seen
 * per listener (so a client can be greeted before its upstream connection exists), at most one greeting
 * probe per listener in flight, the counter of minted connection ids, and per listener the thread ids of
 * its live sessions ({@link MySqlThreadIds}), which KILL rewriting reads from any session of that listener.
 *
 * @see <a href="https://dev.mysql.com/doc/dev/mysql-server/latest/PAGE_PROTOCOL.html">MySQL client/server protocol</a>
 */
public final class MySqlModule implements ProtocolModule {

    /**
     * Minted connection ids (for a client greeted before its upstream exists) start high so they rarely
     * equal a real thread id, and stay within the greeting's 4 bytes.
     */
    static final long FIRST_CONNECTION_ID = 1_000_000_000L;
    private static final long ID_SPAN = 0xFFFF_FFFFL - FIRST_CONNECTION_ID;

    private final Map<String, MySqlGreeting> greetings = new ConcurrentHashMap<>();
    private final Map<String, CompletableFuture<MySqlGreeting>> probes = new ConcurrentHashMap<>();
    private final Map<String, MySqlThreadIds> threadIds = new ConcurrentHashMap<>();
    private final AtomicLong connectionCounter = new AtomicLong();
    private volatile java.util.concurrent.CompletableFuture<java.security.KeyPair> rsaKey;
    /** Pooled listeners: per pool, how to check a client's scramble response against the password last accepted. */
    private final Map<String, MySqlPasswordProof> proofs = new ConcurrentHashMap<>();

    @Override
    public String id() {
        return "mysql";
    }

    /** The handshake switches the client leg to TLS after the client's SSLRequest (clientTls allow / require). */
    @Override
    public boolean terminatesClientTls() {
        return true;
    }

    @Override
    public ProtocolSession newSession(SessionContext context) {
        if (context.listener().pooled()) {
            ownRsaKey(); // made ahead of the first password exchange, which a server login may be waiting on
        }
        return new MySqlSession(this, context);
    }

    /** Session and transaction mode. */
    @Override
    public java.util.Set<String> poolModes() {
        return java.util.Set.of("session", "transaction");
    }

    @Override
    public ServerConnectionProtocol newServerConnection(ServerConnectionContext context, ClientIdentity who,
                                                        char[] password) {
        return new MySqlServerConnection(context, who, password, null, this);
    }

    @Override
    public ServerConnectionProtocol newServerConnection(ServerConnectionContext context, ClientIdentity who,
                                                        char[] password, ProtocolSession client) {
        return new MySqlServerConnection(context, who, password,
                client instanceof MySqlSession session ? session.loginClient() : null, this);
    }

    long nextConnectionId() {
        return FIRST_CONNECTION_ID + Math.floorMod(connectionCounter.getAndIncrement(), ID_SPAN);
    }

    MySqlGreeting cachedGreeting(ListenerInfo listener) {
        return greetings.get(listener.name());
    }

    void remember(ListenerInfo listener, MySqlGreeting greeting) {
        greetings.put(listener.name(), greeting);
    }

    /** The greeting of the listener's server, read once through a side connection shared by waiting sessions. */
    CompletableFuture<MySqlGreeting> probe(SessionContext context) {
        ListenerInfo listener = context.listener();
        CompletableFuture<MySqlGreeting> created = new CompletableFuture<>();
        CompletableFuture<MySqlGreeting> running = probes.putIfAbsent(listener.name(), created);
        if (running != null) {
            return running;
        }
        created.whenComplete((greeting, failure) -> {
            probes.remove(listener.name(), created);
            if (greeting != null) {
                remember(listener, greeting);
            }
        });
        context.connectAside(listener.upstream(), new MySqlGreetingProbe(created)).addListener(connect -> {
            if (!connect.isSuccess()) {
                created.completeExceptionally(connect.cause());
            }
        });
        return created;
    }

    /**
     * connguard's own RSA key pair, offered to a plaintext client in caching_sha2_password full authentication
     * when the server leg is TLS; made once, off the event loops, when first needed.
     */
    java.util.concurrent.CompletableFuture<java.security.KeyPair> ownRsaKey() {
        java.util.concurrent.CompletableFuture<java.security.KeyPair> key = rsaKey;
        if (key == null) {
            synchronized (this) {
                if (rsaKey == null) {
                    rsaKey = java.util.concurrent.CompletableFuture.supplyAsync(MySqlRsa::generate);
                }
                key = rsaKey;
            }
        }
        return key;
    }

    /** Pooled listeners: the key of the pool of (listener, user, database). */
    static String poolKey(String listener, String user, String database) {
        return listener + '\0' + user + '\0' + (database == null ? "" : database);
    }

    /** The proof of the password a server login of the pool {@code key} was last accepted with, or null. */
    MySqlPasswordProof proof(String key) {
        return proofs.get(key);
    }

    /** A server login of pool {@code key} was accepted with {@code password} (UTF-8). */
    void accepted(String key, byte[] password) {
        proofs.put(key, MySqlPasswordProof.of(password));
    }

    /** A server login of pool {@code key} was refused for {@code password}: its proof is forgotten if it is that one's. */
    void refused(String key, byte[] password) {
        MySqlPasswordProof known = proofs.get(key);
        if (known != null && known.matches(password)) {
            proofs.remove(key, known);
        }
    }

    /** The thread ids of the listener's live sessions. */
    MySqlThreadIds threadIds(ListenerInfo listener) {
        MySqlThreadIds ids = threadIds.get(listener.name()); // every session asks: the lock-free read first
        return ids != null ? ids : threadIds.computeIfAbsent(listener.name(), name -> new MySqlThreadIds());
    }

    /** Whether {@code id} is in the range connguard mints ids from. */
    static boolean isMinted(long id) {
        return id >= FIRST_CONNECTION_ID && id <= 0xFFFF_FFFFL;
    }
}
