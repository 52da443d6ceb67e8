package io.connguard.mysql;

import java.util.EnumSet;
import java.util.Set;

/**
 * Why a MySQL client in transaction mode must stay on its server connection: session state that lives in
 * the server thread, is not reported in OK packets' session state information, and so can neither follow
 * the client to another connection nor be left for the next client. Each reason is one bit of the masks
 * {@link MySqlStatementClassifier} reports; the label is the value of the {@code reason} label in metrics
 * and {@code /sessions}.
 */
enum MySqlPin {
    /** A user variable was assigned: {@code SET @x = ...}, {@code SELECT ... INTO @x}, {@code @x := ...}. */
    USER_VARIABLE("user_variable"),
    /** CREATE TEMPORARY TABLE. */
    TEMP_TABLE("temp_table"),
    /** LOCK TABLES, FLUSH TABLES ... WITH READ LOCK / FOR EXPORT: ended by UNLOCK TABLES. */
    LOCK_TABLES("lock_tables"),
    /** GET_LOCK(): a named lock held by the server thread until RELEASE_LOCK / RELEASE_ALL_LOCKS. */
    GET_LOCK("get_lock"),
    /** SQL-level {@code PREPARE name FROM ...} (protocol-level COM_STMT_PREPARE follows the client instead). */
    SQL_PREPARE("sql_prepare"),
    /** SQL_CALC_FOUND_ROWS: FOUND_ROWS() in the next statement must run on the same connection. */
    FOUND_ROWS("found_rows"),
    /** SET TRANSACTION without SESSION/GLOBAL: characteristics of the next transaction only. */
    NEXT_TRANSACTION("next_transaction"),
    /** LAST_INSERT_ID(expr) or SET insert_id / last_insert_id: a value the protocol does not report. */
    LAST_INSERT_ID("last_insert_id"),
    /** Text too strange to be sure what it does, or state connguard does not track (XA, HANDLER, SET ROLE ...). */
    UNKNOWN("unknown");

    /** Every reason's bit. */
    static final int ALL = (1 << values().length) - 1;

    /** Pins that only the next statement needs; any later statement (but SET, SHOW, USE, DO) ends them. */
    static final int NEXT_STATEMENT = FOUND_ROWS.bit() | NEXT_TRANSACTION.bit();

    private final String label;

    MySqlPin(String label) {
        this.label = label;
    }

    String label() {
        return label;
    }

    int bit() {
        return 1 << ordinal();
    }

    /** The reasons whose bits are set in {@code mask} (allocates; for logs, tests and /sessions). */
    static Set<MySqlPin> of(int mask) {
        EnumSet<MySqlPin> set = EnumSet.noneOf(MySqlPin.class);
        for (MySqlPin pin : values()) {
            if ((mask & pin.bit()) != 0) {
                set.add(pin);
            }
        }
        return set;
    }
}
