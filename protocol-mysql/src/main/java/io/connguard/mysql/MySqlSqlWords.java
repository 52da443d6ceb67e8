package io.connguard.mysql;

import java.nio.charset.StandardCharsets;

/**
 * The few SQL words {@link MySqlStatementClassifier} acts on, each with a small int id, and an
 * allocation-free, ASCII-case-insensitive lookup from the bytes {@link MySqlSqlLexer} captured. Every
 * other word has id {@link #NONE}.
 */
final class MySqlSqlWords {

    static final int NONE = -1;

    /** Longest word worth looking up; longer words are {@link #NONE}. */
    static final int MAX_LENGTH = 32;

    private static final String[] WORDS = {
        // statements
        "set", "select", "create", "drop", "lock", "unlock", "flush", "prepare", "deallocate", "execute",
        "use", "begin", "start", "xa", "handler", "do", "show", "get", "alter", "if", "case", "loop",
        "repeat", "while", "call", "help",
        // words inside them
        "global", "session", "local", "persist", "persist_only", "names", "character", "charset",
        "transaction", "password", "role", "default", "statement", "for", "into", "temporary", "table",
        "tables", "exists", "not", "read", "from", "immediate", "procedure", "function", "trigger", "event",
        "instance", "backup", "open", "warnings", "errors", "count", "diagnostics", "export", "or",
        "replace", "with", "outfile", "dumpfile",
        // functions, modifiers and system variables
        "sql_calc_found_rows", "get_lock", "release_lock", "release_all_locks", "last_insert_id",
        "found_rows", "row_count", "insert_id", "identity", "warning_count", "error_count",
        // where a statement starts inside a compound statement
        "then", "else", "atomic",
        // statements whose OK packet reports LAST_INSERT_ID(expr)
        "insert", "update", "delete",
        "collate", "load",
    };

    static final int SET = 0, SELECT = 1, CREATE = 2, DROP = 3, LOCK = 4, UNLOCK = 5, FLUSH = 6, PREPARE = 7,
            DEALLOCATE = 8, EXECUTE = 9, USE = 10, BEGIN = 11, START = 12, XA = 13, HANDLER = 14, DO = 15,
            SHOW = 16, GET = 17, ALTER = 18, IF = 19, CASE = 20, LOOP = 21, REPEAT = 22, WHILE = 23, CALL = 24,
            HELP = 25;
    static final int GLOBAL = 26, SESSION = 27, LOCAL = 28, PERSIST = 29, PERSIST_ONLY = 30, NAMES = 31,
            CHARACTER = 32, CHARSET = 33, TRANSACTION = 34, PASSWORD = 35, ROLE = 36, DEFAULT = 37,
            STATEMENT = 38, FOR = 39, INTO = 40, TEMPORARY = 41, TABLE = 42, TABLES = 43, EXISTS = 44, NOT = 45,
            READ = 46, FROM = 47, IMMEDIATE = 48, PROCEDURE = 49, FUNCTION = 50, TRIGGER = 51, EVENT = 52,
            INSTANCE = 53, BACKUP = 54, OPEN = 55, WARNINGS = 56, ERRORS = 57, COUNT = 58, DIAGNOSTICS = 59,
            EXPORT = 60, OR = 61, REPLACE = 62, WITH = 63, OUTFILE = 64, DUMPFILE = 65;
    static final int SQL_CALC_FOUND_ROWS = 66, GET_LOCK = 67, RELEASE_LOCK = 68, RELEASE_ALL_LOCKS = 69,
            LAST_INSERT_ID = 70, FOUND_ROWS = 71, ROW_COUNT = 72, INSERT_ID = 73, IDENTITY = 74,
            WARNING_COUNT = 75, ERROR_COUNT = 76;
    static final int THEN = 77, ELSE = 78, ATOMIC = 79;
    static final int INSERT = 80, UPDATE = 81, DELETE = 82, COLLATE = 83, LOAD = 84;

    private static final byte[][] BYTES = new byte[WORDS.length][];
    /** Open addressing: slot → id + 1, 0 for empty. */
    private static final int[] SLOTS = new int[256];

    static {
        for (int id = 0; id < WORDS.length; id++) {
            BYTES[id] = WORDS[id].getBytes(StandardCharsets.US_ASCII);
            int slot = hash(BYTES[id], BYTES[id].length) & (SLOTS.length - 1);
            while (SLOTS[slot] != 0) {
                slot = (slot + 1) & (SLOTS.length - 1);
            }
            SLOTS[slot] = id + 1;
        }
        if (!WORDS[HELP].equals("help") || !WORDS[DUMPFILE].equals("dumpfile")
                || !WORDS[ERROR_COUNT].equals("error_count") || WORDS.length != LOAD + 1) {
            throw new AssertionError("word ids out of step with WORDS");
        }
    }

    private MySqlSqlWords() {
    }

    /** The id of the word {@code bytes[0..length)}, compared without ASCII case, or {@link #NONE}. */
    static int lookup(byte[] bytes, int length) {
        if (length > MAX_LENGTH) {
            return NONE;
        }
        int slot = hash(bytes, length) & (SLOTS.length - 1);
        while (true) {
            int entry = SLOTS[slot];
            if (entry == 0) {
                return NONE;
            }
            if (equalsIgnoreCase(BYTES[entry - 1], bytes, length)) {
                return entry - 1;
            }
            slot = (slot + 1) & (SLOTS.length - 1);
        }
    }

    /** The word of an id, for tests and logs. */
    static String text(int id) {
        return id == NONE ? "?" : WORDS[id];
    }

    private static boolean equalsIgnoreCase(byte[] word, byte[] bytes, int length) {
        if (word.length != length) {
            return false;
        }
        for (int i = 0; i < length; i++) {
            if (word[i] != lower(bytes[i])) {
                return false;
            }
        }
        return true;
    }

    private static byte lower(byte b) {
        return b >= 'A' && b <= 'Z' ? (byte) (b + ('a' - 'A')) : b;
    }

    private static int hash(byte[] bytes, int length) {
        int h = length;
        for (int i = 0; i < length; i++) {
            h = h * 31 + lower(bytes[i]);
        }
        return h ^ (h >>> 7) ^ (h >>> 13);
    }
}
