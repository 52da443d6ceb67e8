package io.connguard.core.session;

import io.netty.util.concurrent.EventExecutor;

import java.util.ArrayList;
import java.util.Collection;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Every live session of the proxy by id. Snapshots are taken on each session's own event loop (one task
 * per loop), so the admin API never reads a session's fields from another thread.
 */
public final class SessionRegistry {

    private final AtomicLong ids = new AtomicLong();
    /**
     * A set rather than a map by id: a boxed id was 24 bytes of every session, and looking one up by id is
     * the admin API's rare kill, for which a scan is quick enough.
     */
    private final Set<Session> sessions = ConcurrentHashMap.newKeySet();

    long nextId() {
        return ids.incrementAndGet();
    }

    void add(Session session) {
        sessions.add(session);
    }

    void remove(Session session) {
        sessions.remove(session);
    }

    /** The open session with this id, or null. */
    public Session get(long id) {
        for (Session session : sessions) {
            if (session.id() == id) {
                return session;
            }
        }
        return null;
    }

    /** Sessions open now, including those still in their handshake. */
    public int size() {
        return sessions.size();
    }

    public Collection<Session> all() {
        return sessions;
    }

    /** Snapshots of the admitted sessions, ordered by id. */
    public CompletableFuture<List<SessionSnapshot>> snapshot() {
        Map<EventExecutor, List<Session>> byLoop = new HashMap<>();
        for (Session session : sessions) {
            byLoop.computeIfAbsent(session.eventLoop(), loop -> new ArrayList<>()).add(session);
        }
        List<CompletableFuture<List<SessionSnapshot>>> parts = new ArrayList<>();
        for (Map.Entry<EventExecutor, List<Session>> entry : byLoop.entrySet()) {
            CompletableFuture<List<SessionSnapshot>> part = new CompletableFuture<>();
            parts.add(part);
            try {
                entry.getKey().execute(() -> {
                    List<SessionSnapshot> taken = new ArrayList<>();
                    for (Session session : entry.getValue()) {
                        SessionSnapshot snapshot = session.snapshot();
                        if (snapshot != null) {
                            taken.add(snapshot);
                        }
                    }
                    part.complete(taken);
                });
            } catch (RuntimeException rejected) {
                part.complete(List.of());
            }
        }
        return CompletableFuture.allOf(parts.toArray(CompletableFuture[]::new)).thenApply(done -> {
            List<SessionSnapshot> all = new ArrayList<>();
            for (CompletableFuture<List<SessionSnapshot>> part : parts) {
                all.addAll(part.join());
            }
            all.sort(Comparator.comparingLong(SessionSnapshot::id));
            return all;
        });
    }
}
