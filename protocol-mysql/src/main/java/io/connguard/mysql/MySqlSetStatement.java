package io.connguard.mysql;

/**
 * Reads the assignments of one SET statement for {@link MySqlStatementClassifier}: which assign user
 * variables (a pin), which set session system variables (they follow the client through the session state
 * information), which are global (nothing), and the special forms (SET NAMES / CHARACTER SET, SET
 * TRANSACTION for the next transaction only, SET ROLE, SET PASSWORD, SET DEFAULT ROLE, MariaDB's
 * SET STATEMENT ... FOR). A modifier (GLOBAL, SESSION, LOCAL, PERSIST) applies to the assignments after
 * it until the next one, as on the server; {@code @@global.} / {@code @@session.} apply to one. Its
 * findings are taken by the classifier after each token; no allocation but the collation of a
 * {@code SET NAMES ... COLLATE}.
 *
 * @see <a href="https://dev.mysql.com/doc/refman/8.0/en/set-variable.html">SET syntax for variable assignment</a>
 */
final class MySqlSetStatement {

    private static final int DONE = -1;
    private static final int S_TARGET = 0, S_AFTER_SCOPE = 1, S_AT = 2, S_AT2 = 3, S_AT2_SCOPE = 4, S_AT2_DOT = 5,
            S_NAME = 6, S_VALUE = 7, S_STATEMENT = 8;

    private int step = DONE;
    private int depth;
    private boolean global;
    private boolean targetGlobal;
    private int target;
    private int assignment;
    private boolean namesTarget;
    private boolean restart;

    // findings, taken by the classifier
    private int pins;
    private boolean follows;
    private String unknown;
    private String collation;

    /** A SET statement starts. */
    void begin() {
        step = S_TARGET;
        global = false;
        target = MySqlSqlWords.NONE;
        assignment = 0;
        namesTarget = false;
        restart = false;
    }

    /** Nothing more to read in this statement. */
    boolean done() {
        return step == DONE;
    }

    /** Reading an assignment's target (not its value): {@code @@name} here is written, not read. */
    boolean readingTarget() {
        return step != S_VALUE && step != DONE;
    }

    /** MariaDB's SET STATEMENT ... FOR reached FOR: the statement after it is read as a statement of its own. */
    boolean restart() {
        return restart;
    }

    /** The variable a SET names: a plain name is read on, anything else makes the statement unreadable. */
    private void name(int code, int id) {
        if (code >= MySqlStatementClassifier.ANY_NAME && code != MySqlStatementClassifier.STRING) {
            target = id;
            step = S_NAME;
        } else {
            unreadable();
        }
    }

    private void unreadable() {
        unknown = "a SET connguard cannot read";
        step = DONE;
    }

    /** The statement ended at ';' or at the end of the text. */
    void end() {
        switch (step) {
            case S_NAME, S_AT2_SCOPE -> assigned();
            case S_TARGET, S_AFTER_SCOPE, S_AT, S_AT2, S_AT2_DOT, S_STATEMENT -> unknown = "an incomplete SET";
            default -> {
            }
        }
        step = DONE;
    }

    /** Bits of pins found since the last call. */
    int takePins() {
        int taken = pins;
        pins = 0;
        return taken;
    }

    /** A session system variable or the character set was set since the last call. */
    boolean takeFollows() {
        boolean taken = follows;
        follows = false;
        return taken;
    }

    /** Why the statement cannot be read with certainty (since the last call), or null. */
    String takeUnknown() {
        String taken = unknown;
        unknown = null;
        return taken;
    }

    /** The collation of a {@code SET NAMES cs COLLATE name} found since the last call (lower-cased), or null. */
    String takeCollation() {
        String taken = collation;
        collation = null;
        return taken;
    }

    /** A token after SET: {@code depth} of parentheses, {@code previous} the history code of the token before. */
    void token(int code, int id, int keyword, int depth, int previous, MySqlSqlLexer lexer) {
        this.depth = depth;
        switch (step) {
            case S_TARGET -> {
                targetGlobal = global;
                if (keyword == MySqlSqlWords.GLOBAL || keyword == MySqlSqlWords.PERSIST
                        || keyword == MySqlSqlWords.PERSIST_ONLY) {
                    global = true;
                    step = S_AFTER_SCOPE;
                } else if (keyword == MySqlSqlWords.SESSION || keyword == MySqlSqlWords.LOCAL) {
                    global = false;
                    step = S_AFTER_SCOPE;
                } else if (keyword == MySqlSqlWords.TRANSACTION && assignment == 0) {
                    pins |= MySqlPin.NEXT_TRANSACTION.bit();
                    step = DONE;
                } else if (keyword == MySqlSqlWords.NAMES || keyword == MySqlSqlWords.CHARSET
                        || keyword == MySqlSqlWords.CHARACTER) {
                    follows = true;
                    namesTarget = keyword == MySqlSqlWords.NAMES;
                    step = S_VALUE;
                } else if (keyword == MySqlSqlWords.PASSWORD && assignment == 0) {
                    step = DONE;
                } else if (keyword == MySqlSqlWords.ROLE && assignment == 0) {
                    unknown = "SET ROLE";
                    step = DONE;
                } else if (keyword == MySqlSqlWords.STATEMENT && assignment == 0) {
                    step = S_STATEMENT;
                } else if (code == '@') {
                    step = S_AT;
                } else {
                    name(code, id);
                }
            }
            case S_AFTER_SCOPE -> {
                targetGlobal = global;
                if (keyword == MySqlSqlWords.TRANSACTION) {
                    follows |= !global;
                    step = DONE;
                } else {
                    name(code, id);
                }
            }
            case S_AT -> {
                if (code == '@') {
                    targetGlobal = false;
                    step = S_AT2;
                } else if (code >= MySqlStatementClassifier.ANY_NAME) {
                    pins |= MySqlPin.USER_VARIABLE.bit();
                    step = S_VALUE;
                } else {
                    unreadable();
                }
            }
            case S_AT2 -> {
                target = id;
                if (keyword == MySqlSqlWords.GLOBAL || keyword == MySqlSqlWords.PERSIST
                        || keyword == MySqlSqlWords.PERSIST_ONLY) {
                    targetGlobal = true;
                    step = S_AT2_SCOPE;
                } else if (keyword == MySqlSqlWords.SESSION || keyword == MySqlSqlWords.LOCAL) {
                    step = S_AT2_SCOPE;
                } else if (code >= MySqlStatementClassifier.ANY_NAME && code != MySqlStatementClassifier.STRING) {
                    step = S_NAME;
                } else {
                    unreadable();
                }
            }
            case S_AT2_SCOPE -> {
                if (code == '.') {
                    step = S_AT2_DOT;
                } else {
                    assigned();                                 // a variable named like a scope
                    nextAssignment(code);
                }
            }
            case S_AT2_DOT -> {
                target = id;
                step = S_NAME;
            }
            case S_NAME -> {
                if (target == MySqlSqlWords.DEFAULT && keyword == MySqlSqlWords.ROLE && assignment == 0) {
                    step = DONE;                                // SET DEFAULT ROLE: stored, not session state
                } else if (code == '.') {
                    target = MySqlSqlWords.NONE;                              // a structured variable: component.name
                    step = S_AT2_DOT;
                } else {
                    assigned();
                    nextAssignment(code);
                }
            }
            case S_VALUE -> {
                if (namesTarget && depth == 0 && previous == MySqlStatementClassifier.WORD_BASE + MySqlSqlWords.COLLATE && code >= MySqlStatementClassifier.ANY_NAME
                        && lexer.capturedLength() > 0) {
                    collation = new String(lexer.captured(), 0, lexer.capturedLength(),
                            java.nio.charset.StandardCharsets.US_ASCII).toLowerCase(java.util.Locale.ROOT);
                }
                nextAssignment(code);
            }
            case S_STATEMENT -> {
                if (keyword == MySqlSqlWords.FOR && depth == 0) {
                    restart = true;
                }
            }
            default -> {
            }
        }
    }

    private void nextAssignment(int code) {
        if (code == ',' && depth == 0) {
            namesTarget = false;
            assignment++;
            step = S_TARGET;
        } else {
            step = S_VALUE;
        }
    }

    /** The assignment's target, a system variable, is known. */
    private void assigned() {
        if (targetGlobal) {
            return;
        }
        if (target == MySqlSqlWords.LAST_INSERT_ID || target == MySqlSqlWords.INSERT_ID
                || target == MySqlSqlWords.IDENTITY) {
            pins |= MySqlPin.LAST_INSERT_ID.bit();
        } else {
            follows = true;
        }
    }

}
