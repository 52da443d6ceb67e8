package io.connguard.postgres;

import java.util.EnumSet;
import java.util.Set;

/**
 * Why a client in transaction mode must stay on its server connection: session state that lives in the
 * backend and would leak to the next client (or be missing for this one) if the connection were shared.
 * Each reason is one bit of the masks {@link PgStatementClassifier} reports; the label is the value of the
 * {@code reason} label in metrics and {@code /sessions}.
 */
enum PgPin {
    /** A session-level SET (or set_config(..., false)) of a parameter the server does not report. */
    SET("set"),
    /** SET ROLE / SET SESSION AUTHORIZATION: RESET ALL does not undo them, only DISCARD ALL does. */
    ROLE("role"),
    /** LISTEN: notifications are delivered to the backend that listens. */
    LISTEN("listen"),
    /** A session-level advisory lock (pg_advisory_lock, pg_try_advisory_lock and their _shared forms). */
    ADVISORY_LOCK("advisory_lock"),
    /** CREATE TEMP TABLE / VIEW / SEQUENCE, SELECT ... INTO TEMP. */
    TEMP_TABLE("temp_table"),
    /** DECLARE ... WITH HOLD: the cursor outlives its transaction. */
    HOLD_CURSOR("hold_cursor"),
    /** SQL-level PREPARE name AS ... (protocol-level Parse is handled by PgPreparedStatements instead). */
    SQL_PREPARE("sql_prepare"),
    /** Text too strange to be sure what it does (an unterminated literal, a DO block with dynamic SQL). */
    UNKNOWN("unknown");

    /** Every reason's bit. */
    static final int ALL = (1 << values().length) - 1;

    private final String label;

    PgPin(String label) {
        this.label = label;
    }

    String label() {
        return label;
    }

    int bit() {
        return 1 << ordinal();
    }

    /** The reasons whose bits are set in {@code mask} (allocates; for logs, tests and /sessions). */
    static Set<PgPin> of(int mask) {
        EnumSet<PgPin> set = EnumSet.noneOf(PgPin.class);
        for (PgPin pin : values()) {
            if ((mask & pin.bit()) != 0) {
                set.add(pin);
            }
        }
        return set;
    }
}
