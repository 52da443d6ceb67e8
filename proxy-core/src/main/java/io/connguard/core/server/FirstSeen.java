package io.connguard.core.server;

import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Remembers the keys a once-only log line has been written for (a client key, or an address while the
 * client is not yet named). Bounded, so that a stream of new keys cannot grow it: when full it forgets
 * them all and starts again, and a key may then be logged once more. Thread-safe.
 */
public final class FirstSeen {

    static final int MAX_KEYS = 4096;

    private final Set<String> seen = ConcurrentHashMap.newKeySet();

    /** True the first time a key is given (and again after the set was full and forgotten). */
    public boolean first(String key) {
        if (seen.contains(key)) {
            return false;
        }
        if (seen.size() >= MAX_KEYS) {
            seen.clear();
        }
        return seen.add(key);
    }
}
