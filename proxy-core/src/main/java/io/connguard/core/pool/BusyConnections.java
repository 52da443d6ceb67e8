package io.connguard.core.pool;

import java.util.Arrays;

/**
 * The connections of a pool that are not idle (lent, opening, resetting, closing), and how many of them are
 * pinned, without allocating per lend: each connection keeps its own index in the array, so adding and
 * removing one are constant-time and a transaction-mode checkout and give-back cost no garbage. Order is not
 * kept. Confined to the pool's event loop.
 */
final class BusyConnections {

    private ServerConnection[] items = new ServerConnection[4];
    private int size;
    private int pinned;

    /** Adds {@code c} unless it is here already. */
    void add(ServerConnection c) {
        if (c.busyIndex >= 0) {
            return;
        }
        if (size == items.length) {
            items = Arrays.copyOf(items, size * 2);
        }
        c.busyIndex = size;
        items[size++] = c;
        if (c.pinned()) {
            pinned++;
        }
    }

    /** Removes {@code c}; false if it was not here. */
    boolean remove(ServerConnection c) {
        int i = c.busyIndex;
        if (i < 0) {
            return false;
        }
        ServerConnection last = items[--size];
        items[i] = last;
        last.busyIndex = i;
        items[size] = null;
        c.busyIndex = -1;
        if (c.pinned()) {
            pinned--;
        }
        return true;
    }

    /** {@code c}, one of these, is pinned now (or no longer): its pin is set on it already. */
    void pinChanged(ServerConnection c, boolean wasPinned) {
        if (c.busyIndex >= 0 && wasPinned != c.pinned()) {
            pinned += c.pinned() ? 1 : -1;
        }
    }

    int size() {
        return size;
    }

    boolean isEmpty() {
        return size == 0;
    }

    int pinned() {
        return pinned;
    }

    /** The {@code i}-th connection, {@code 0 <= i < size()}; indexes move when one is removed. */
    ServerConnection get(int i) {
        return items[i];
    }
}
