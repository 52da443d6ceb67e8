package io.connguard.postgres;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;

/**
 * The few SQL words {@link PgStatementClassifier} acts on, each with a small int id, and an
 * allocation-free lookup from the lower-cased bytes {@link PgSqlLexer} captured. Every other word has id
 * {@link #NONE}.
 */
final class PgSqlWords {

    static final int NONE = -1;

    /** Longest word worth capturing; longer words are {@link #NONE} without a lookup. */
    static final int MAX_LENGTH = 32;

    private static final String[] WORDS = {
        // statements
        "set", "reset", "listen", "unlisten", "discard", "close", "deallocate", "prepare", "declare", "drop",
        "do", "select", "create", "execute",
        // words inside them
        "local", "session", "authorization", "characteristics", "role", "transaction", "constraints", "time",
        "zone", "names", "all", "temp", "temporary", "global", "or", "replace", "into", "with", "hold", "on",
        "commit", "language", "plpgsql", "begin", "then", "else", "loop", "true",
        // functions
        "pg_advisory_lock", "pg_advisory_lock_shared", "pg_try_advisory_lock", "pg_try_advisory_lock_shared",
        "pg_advisory_unlock", "pg_advisory_unlock_shared", "pg_advisory_unlock_all", "set_config",
        // parameters the server reports in ParameterStatus (PostgreSQL 14-17) and a client can set
        "application_name", "client_encoding", "datestyle", "intervalstyle", "timezone",
        "standard_conforming_strings", "default_transaction_read_only", "scram_iterations",
        "session_authorization",
        // boolean spellings of set_config's is_local (besides true and on)
        "t", "y", "yes", "1",
    };

    static final int SET = 0, RESET = 1, LISTEN = 2, UNLISTEN = 3, DISCARD = 4, CLOSE = 5, DEALLOCATE = 6,
            PREPARE = 7, DECLARE = 8, DROP = 9, DO = 10, SELECT = 11, CREATE = 12, EXECUTE = 13;
    static final int LOCAL = 14, SESSION = 15, AUTHORIZATION = 16, CHARACTERISTICS = 17, ROLE = 18,
            TRANSACTION = 19, CONSTRAINTS = 20, TIME = 21, ZONE = 22, NAMES = 23, ALL = 24, TEMP = 25,
            TEMPORARY = 26, GLOBAL = 27, OR = 28, REPLACE = 29, INTO = 30, WITH = 31, HOLD = 32, ON = 33,
            COMMIT = 34, LANGUAGE = 35, PLPGSQL = 36, BEGIN = 37, THEN = 38, ELSE = 39, LOOP = 40, TRUE = 41;
    static final int PG_ADVISORY_LOCK = 42, PG_ADVISORY_LOCK_SHARED = 43, PG_TRY_ADVISORY_LOCK = 44,
            PG_TRY_ADVISORY_LOCK_SHARED = 45, PG_ADVISORY_UNLOCK = 46, PG_ADVISORY_UNLOCK_SHARED = 47,
            PG_ADVISORY_UNLOCK_ALL = 48, SET_CONFIG = 49;
    static final int APPLICATION_NAME = 50, CLIENT_ENCODING = 51, DATESTYLE = 52, INTERVALSTYLE = 53,
            TIMEZONE = 54, STANDARD_CONFORMING_STRINGS = 55, DEFAULT_TRANSACTION_READ_ONLY = 56,
            SCRAM_ITERATIONS = 57, SESSION_AUTHORIZATION = 58;
    static final int T = 59, Y = 60, YES = 61, ONE = 62;

    private static final byte[][] BYTES = new byte[WORDS.length][];
    /** Open addressing: slot → id + 1, 0 for empty. */
    private static final int[] TABLE = new int[256];

    static {
        for (int id = 0; id < WORDS.length; id++) {
            BYTES[id] = WORDS[id].getBytes(StandardCharsets.US_ASCII);
            int slot = hash(BYTES[id], BYTES[id].length) & (TABLE.length - 1);
            while (TABLE[slot] != 0) {
                slot = (slot + 1) & (TABLE.length - 1);
            }
            TABLE[slot] = id + 1;
        }
        if (!WORDS[ONE].equals("1") || !WORDS[SESSION_AUTHORIZATION].equals("session_authorization")
                || !WORDS[SET_CONFIG].equals("set_config") || !WORDS[TRUE].equals("true")) {
            throw new AssertionError("word ids out of step with WORDS");
        }
    }

    private PgSqlWords() {
    }

    /** The id of the lower-cased word {@code bytes[0..length)}, or {@link #NONE}. */
    static int lookup(byte[] bytes, int length) {
        int slot = hash(bytes, length) & (TABLE.length - 1);
        while (true) {
            int entry = TABLE[slot];
            if (entry == 0) {
                return NONE;
            }
            byte[] word = BYTES[entry - 1];
            if (word.length == length && Arrays.equals(word, 0, length, bytes, 0, length)) {
                return entry - 1;
            }
            slot = (slot + 1) & (TABLE.length - 1);
        }
    }

    /** The word of an id, for tests and logs. */
    static String text(int id) {
        return id == NONE ? "?" : WORDS[id];
    }

    /** True for parameters whose value the server reports in ParameterStatus, so a pooler can replay them. */
    static boolean reported(int id) {
        return id >= APPLICATION_NAME && id <= SCRAM_ITERATIONS;
    }

    private static int hash(byte[] bytes, int length) {
        int h = length;
        for (int i = 0; i < length; i++) {
            h = h * 31 + bytes[i];
        }
        return h ^ (h >>> 7) ^ (h >>> 13);
    }
}
