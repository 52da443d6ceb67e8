package io.connguard.mysql;

import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The thread ids of one listener's live sessions: the id each client was given in its greeting and the
 * server's real thread id behind it. They are equal for a client greeted with its upstream's own greeting;
 * they differ for one that got a minted id (greeted before its upstream existed) or whose first upstream
 * was closed while it waited. KILL rewriting and the probation check read it from any session of the
 * listener, so it is thread-safe; an id given out by another listener is never found here.
 */
final class MySqlThreadIds {

    /** What {@link #resolve} sends for a minted id no live session of the listener holds: no thread has id 0. */
    static final long NO_THREAD = 0;

    private final Map<Long, Long> realByGiven = new ConcurrentHashMap<>();
    private final Set<Long> real = ConcurrentHashMap.newKeySet();
    /** The listener's sessions share one: it keeps nothing of a session. */
    private final MySqlKillRewriter killRewriter = new MySqlKillRewriter(this::resolve);

    /** The KILL rewriter that resolves ids with this listener's sessions. */
    MySqlKillRewriter killRewriter() {
        return killRewriter;
    }

    void register(long given, long realThreadId) {
        realByGiven.put(given, realThreadId);
        real.add(realThreadId);
    }

    void unregister(long given, long realThreadId) {
        realByGiven.remove(given, realThreadId);
        real.remove(realThreadId);
    }

    /**
     * The thread id to send the server for {@code id} named in a KILL: the real thread behind an id given
     * to a live session of this listener; the id itself when it is a real thread of this listener or not
     * one connguard mints; {@link #NO_THREAD} for a minted id no live session of this listener holds (one
     * from another listener, or of a session gone), which must never reach the server as it is.
     */
    long resolve(long id) {
        Long behind = realByGiven.get(id);
        if (behind != null) {
            return behind;
        }
        if (real.contains(id) || !MySqlModule.isMinted(id)) {
            return id;
        }
        return NO_THREAD;
    }

    /** Whether {@code id} names a live session of this listener, by the id it was given or its real one. */
    boolean isLive(long id) {
        return realByGiven.containsKey(id) || real.contains(id);
    }
}
