package io.connguard.core.admission;

import java.util.HashMap;
import java.util.Map;

/**
 * The open client connections of one listener per client key, against {@code maxClientConnections}.
 * Unlike the server-connection cap nothing waits here: a client over this cap is refused at once.
 * Sessions of a key run on different event loops, so the counts sit under one lock.
 */
public final class ClientConnections {

    private final Map<ClientKey, int[]> open = new HashMap<>();

    /** Counts one more connection for {@code key} unless it holds {@code cap} already (0 = no cap). */
    public boolean open(ClientKey key, int cap) {
        synchronized (open) {
            int[] count = open.computeIfAbsent(key, k -> new int[1]);
            if (cap > 0 && count[0] >= cap) {
                if (count[0] == 0) {
                    open.remove(key);
                }
                return false;
            }
            count[0]++;
            return true;
        }
    }

    /** One connection of {@code key} has closed. */
    public void close(ClientKey key) {
        synchronized (open) {
            int[] count = open.get(key);
            if (count != null && --count[0] <= 0) {
                open.remove(key);
            }
        }
    }

    /** A connection changed key (MySQL COM_CHANGE_USER): it moves, never refused, as admission moves its slot. */
    public void move(ClientKey from, ClientKey to) {
        if (from.equals(to)) {
            return;
        }
        synchronized (open) {
            close(from);
            open.computeIfAbsent(to, k -> new int[1])[0]++;
        }
    }

    /** The open connections of {@code key} now. */
    public int count(ClientKey key) {
        synchronized (open) {
            int[] count = open.get(key);
            return count == null ? 0 : count[0];
        }
    }
}
