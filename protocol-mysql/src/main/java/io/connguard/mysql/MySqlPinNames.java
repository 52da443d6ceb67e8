package io.connguard.mysql;

import java.util.Arrays;

/**
 * The names behind two pins that can be ended with certainty when connguard knows every name: the
 * client's temporary tables (a multiset of names exactly as written, since the same name may exist once
 * per database) and its SQL-level prepared statements (a set of lower-cased names, each with the pins its
 * text starts when executed). Creations count at once (a failed one only leaves a false pin); drops are
 * staged while a command runs and applied only when it succeeded. Bounded: beyond {@link #CAPACITY}
 * names, or for a name longer than the lexer keeps, the pin is "untracked" and only a reset ends it.
 * Allocated by {@link MySqlStatementClassifier} for the first such statement only.
 */
final class MySqlPinNames {

    static final int CAPACITY = 16;

    private final byte[][] temp = new byte[CAPACITY][];
    private int tempCount;
    private boolean tempUntracked;
    private final byte[][] stagedDrops = new byte[CAPACITY][];
    private int stagedDropCount;

    private final byte[][] prepared = new byte[CAPACITY][];
    private final int[] preparedPins = new int[CAPACITY];
    private int preparedCount;
    private boolean preparedUntracked;
    private final byte[][] stagedDeallocates = new byte[CAPACITY][];
    private int stagedDeallocateCount;

    /** A temporary table was (perhaps) created; {@code name} null when it could not be read. */
    void tempCreated(byte[] name) {
        if (name == null || tempCount == CAPACITY) {
            tempUntracked = true;
        } else {
            temp[tempCount++] = name;
        }
    }

    void tempUntracked() {
        tempUntracked = true;
    }

    /** {@code DROP TEMPORARY TABLE name} in the running command. */
    void stageTempDrop(byte[] name) {
        if (stagedDropCount < CAPACITY) {
            stagedDrops[stagedDropCount++] = name;
        }
    }

    /** Would no temporary table be left once the staged drops succeed? */
    boolean tempGoneAfterStaged() {
        if (tempUntracked || stagedDropCount == 0) {
            return false;
        }
        int left = tempCount;
        boolean[] used = new boolean[tempCount];
        for (int d = 0; d < stagedDropCount; d++) {
            for (int i = 0; i < tempCount; i++) {
                if (!used[i] && Arrays.equals(temp[i], stagedDrops[d])) {
                    used[i] = true;
                    left--;
                    break;
                }
            }
        }
        return left == 0;
    }

    /** {@code PREPARE name FROM ...}: {@code name} lower-cased, null when unreadable; {@code pins} of its text. */
    void prepared(byte[] name, int pins) {
        if (name == null) {
            preparedUntracked = true;
            return;
        }
        int at = indexOfPrepared(name);
        if (at >= 0) {
            preparedPins[at] = pins;
        } else if (preparedCount == CAPACITY) {
            preparedUntracked = true;
        } else {
            prepared[preparedCount] = name;
            preparedPins[preparedCount++] = pins;
        }
    }

    /** The pins executing the prepared statement {@code name} starts, or -1 when connguard did not see it prepared. */
    int pinsOfPrepared(byte[] name) {
        int at = name == null ? -1 : indexOfPrepared(name);
        return at < 0 ? -1 : preparedPins[at];
    }

    void stageDeallocate(byte[] name) {
        if (stagedDeallocateCount < CAPACITY) {
            stagedDeallocates[stagedDeallocateCount++] = name;
        }
    }

    /** Would no prepared statement be left once the staged deallocations succeed? */
    boolean preparedGoneAfterStaged() {
        if (preparedUntracked || stagedDeallocateCount == 0) {
            return false;
        }
        int left = preparedCount;
        for (int i = 0; i < preparedCount; i++) {
            for (int d = 0; d < stagedDeallocateCount; d++) {
                if (Arrays.equals(prepared[i], stagedDeallocates[d])) {
                    left--;
                    break;
                }
            }
        }
        return left == 0;
    }

    /** The command ended: staged drops and deallocations happened if it {@code succeeded}. */
    void commit(boolean succeeded) {
        if (succeeded) {
            for (int d = 0; d < stagedDropCount; d++) {
                for (int i = 0; i < tempCount; i++) {
                    if (Arrays.equals(temp[i], stagedDrops[d])) {
                        temp[i] = temp[--tempCount];
                        temp[tempCount] = null;
                        break;
                    }
                }
            }
            for (int d = 0; d < stagedDeallocateCount; d++) {
                int at = indexOfPrepared(stagedDeallocates[d]);
                if (at >= 0) {
                    preparedCount--;
                    prepared[at] = prepared[preparedCount];
                    preparedPins[at] = preparedPins[preparedCount];
                    prepared[preparedCount] = null;
                }
            }
        }
        Arrays.fill(stagedDrops, 0, stagedDropCount, null);
        Arrays.fill(stagedDeallocates, 0, stagedDeallocateCount, null);
        stagedDropCount = 0;
        stagedDeallocateCount = 0;
    }

    /** Temporary tables connguard knows of (for tests and /sessions). */
    int tempCount() {
        return tempCount;
    }

    int preparedCount() {
        return preparedCount;
    }

    private int indexOfPrepared(byte[] name) {
        for (int i = 0; i < preparedCount; i++) {
            if (Arrays.equals(prepared[i], name)) {
                return i;
            }
        }
        return -1;
    }
}
