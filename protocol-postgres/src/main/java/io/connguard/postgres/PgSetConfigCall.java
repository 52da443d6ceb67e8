package io.connguard.postgres;

import static io.connguard.postgres.PgSqlWords.NONE;

/**
 * Follows one {@code set_config(name, value, is_local)} call through the tokens of its arguments for
 * {@link PgStatementClassifier}: which parameter it sets (only when the first argument is a single string
 * literal) and whether it is transaction-local (only when the third argument is literally true).
 *
 * @see <a href="https://www.postgresql.org/docs/current/functions-admin.html#FUNCTIONS-ADMIN-SET">set_config</a>
 */
final class PgSetConfigCall {

    /** {@link #parameter()} of a transaction-local call: no session state. */
    static final int LOCAL = -3;
    /** {@link #argumentToken}'s {@code stringId} for a token that is not a string literal. */
    static final int NOT_STRING = -4;

    private boolean pending;
    private int depth;
    private int argument;
    private int argumentTokens;
    private int nameId;
    private int nameTokens;
    private boolean localTrue;
    private int localTokens;

    /** Inside the call's parentheses. */
    boolean active() {
        return depth > 0;
    }

    /** The paren depth of the call's own parentheses. */
    int depth() {
        return depth;
    }

    /** The name set_config was read: a '(' right after it opens the call. */
    void named() {
        pending = true;
    }

    /** Any token: after the name, anything but '(' means it was not a call. */
    void token(boolean openParen) {
        if (pending && !openParen) {
            pending = false;
        }
    }

    /** A '(' raised the paren depth to {@code parenDepth}. */
    void opened(int parenDepth) {
        if (pending) {
            pending = false;
            depth = parenDepth;
            argument = 0;
            argumentTokens = 0;
            nameId = NONE;
            nameTokens = 0;
            localTrue = false;
            localTokens = 0;
        }
    }

    /** A ',' at {@code parenDepth}. */
    void comma(int parenDepth) {
        if (depth > 0 && parenDepth == depth) {
            argument++;
            argumentTokens = 0;
        }
    }

    /** A ')' at {@code parenDepth} (before it lowers it): true when it closes the call. */
    boolean closes(int parenDepth) {
        if (depth > 0 && parenDepth == depth) {
            depth = 0;
            return true;
        }
        return false;
    }

    /** A token of an argument: {@code stringId} a string's word id or {@link #NOT_STRING}, {@code keyword} an unquoted word's id. */
    void argumentToken(int stringId, int keyword) {
        argumentTokens++;
        if (argument == 0) {
            nameTokens = argumentTokens;
            if (argumentTokens == 1) {
                nameId = stringId == NOT_STRING ? NONE : stringId;
            }
        } else if (argument == 2) {
            localTokens = argumentTokens;
            if (argumentTokens == 1) {
                localTrue = keyword == PgSqlWords.TRUE || (stringId != NOT_STRING && trueString(stringId));
            }
        }
    }

    /** After the call closed: {@link #LOCAL}, or the parameter's word id (NONE when unknown or not literal). */
    int parameter() {
        if (argument == 2 && localTokens == 1 && localTrue) {
            return LOCAL;
        }
        return nameTokens == 1 ? nameId : NONE;
    }

    void reset() {
        pending = false;
        depth = 0;
    }

    private static boolean trueString(int id) {
        return id == PgSqlWords.TRUE || id == PgSqlWords.T || id == PgSqlWords.ON || id == PgSqlWords.Y
                || id == PgSqlWords.YES || id == PgSqlWords.ONE;
    }
}
