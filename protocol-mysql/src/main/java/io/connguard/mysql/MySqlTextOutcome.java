package io.connguard.mysql;

/**
 * What one command's SQL text may do to the session, as {@link MySqlStatementClassifier} found it while
 * reading: the pins it starts, ends or may have ended, whether it changes what follows the client, and
 * what it reads of the previous statement. Reading the outcome allocates nothing.
 */
abstract class MySqlTextOutcome {

    int started;
    int ended;
    int maybeEnded;
    boolean consumedNext;
    boolean followsClient;
    boolean readsLastInsertId;
    boolean readsPrevious;
    String unknownReason;
    String namesCollation;

    final void clearOutcome() {
        started = 0;
        ended = 0;
        maybeEnded = 0;
        consumedNext = false;
        followsClient = false;
        readsLastInsertId = false;
        readsPrevious = false;
        unknownReason = null;
        namesCollation = null;
    }

    /** Bits of {@link MySqlPin}: pins the command may have started (including {@link MySqlPin#UNKNOWN}). */
    int pinsStarted() {
        return started;
    }

    /** Bits of pins whose last mention in the text was a definite end (valid if the command succeeded). */
    int pinsEnded() {
        return ended;
    }

    /** Bits of pins that may have ended: a pooler can ask the server, or keep them. */
    int pinsMaybeEnded() {
        return maybeEnded;
    }

    /** A statement other than SET, SHOW, USE or DO ran: {@link MySqlPin#NEXT_STATEMENT} pins held before end. */
    boolean consumesNextStatementPins() {
        return consumedNext;
    }

    /** A session system variable, the character set or the schema changed: the OK packets report the values. */
    boolean followsClient() {
        return followsClient;
    }

    /**
     * LAST_INSERT_ID() (or {@code @@last_insert_id}, {@code @@identity}) is read: on another server connection
     * than the last insert's, the pooler runs {@code DO LAST_INSERT_ID(n)} first with the value of the last
     * OK packet, or keeps the client where it was.
     */
    boolean readsLastInsertId() {
        return readsLastInsertId;
    }

    /** FOUND_ROWS(), ROW_COUNT(), SHOW WARNINGS/ERRORS, GET DIAGNOSTICS: only the previous statement's connection knows. */
    boolean readsPreviousStatement() {
        return readsPrevious;
    }

    /**
     * The collation of the last {@code SET NAMES cs COLLATE name} (lower-cased), or null: MariaDB reports the
     * character set variables of SET NAMES but not collation_connection, which
     * {@link MySqlSessionState#apply(MySqlSessionChanges, String)} completes with it.
     */
    String namesCollation() {
        return namesCollation;
    }

    boolean unknown() {
        return (started & MySqlPin.UNKNOWN.bit()) != 0;
    }

    /** Why the text was {@link #unknown()}, for a log line; null otherwise. */
    String unknownReason() {
        return unknownReason;
    }

    // ------------------------------------------------------------------ recording

    final void start(MySqlPin pin) {
        started |= pin.bit();
        ended &= ~pin.bit();
    }

    /** An end that holds if the command succeeds. */
    final void endDefinitely(MySqlPin pin) {
        ended |= pin.bit();
        maybeEnded &= ~pin.bit();
    }

    final void maybeEnd(MySqlPin pin) {
        maybeEnded |= pin.bit();
    }

    final void unknown(String reason) {
        if (unknownReason == null) {
            unknownReason = reason;
        }
        start(MySqlPin.UNKNOWN);
    }
}
