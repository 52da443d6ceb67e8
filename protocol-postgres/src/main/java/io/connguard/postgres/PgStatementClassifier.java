package io.connguard.postgres;

import io.netty.buffer.ByteBuf;
import io.netty.util.concurrent.FastThreadLocal;

import static io.connguard.postgres.PgSqlWords.NONE;

/**
 * Tells a transaction-mode pooler, from the SQL text of one Query or Parse message, which session state
 * the message may leave in the backend: the pins it starts ({@link PgPin}), the pins it ends, the
 * parameters that can follow the client instead, and whether the text was too strange to be sure. It is
 * fed the body chunk by chunk as it crosses the proxy ({@link PgSqlLexer}), never aggregated: its memory
 * is a few fixed fields and two 64-byte buffers however long the text. Several statements per message,
 * comments, literals of every kind, case and white space anywhere are understood. An instance reads one
 * message at a time and is reused for the next; reading the outcome allocates nothing. Sessions
 * {@link #borrow} one per message from their event loop's spare and {@link #giveBack} it at the message
 * end, so that an idle session keeps none (a message split across reads keeps its own until its end).
 *
 * <p>Use: {@link #beginQuery()} or {@link #beginParse()}, {@link #accept} for each body chunk,
 * {@link #finish()} at the message end, then the accessors, or {@link #apply}.
 *
 * <h2>Rules</h2>
 * <table>
 * <caption>What starts and ends a pin</caption>
 * <tr><th>statement</th><th>outcome</th></tr>
 * <tr><td>{@code SET [SESSION] p ...}, {@code set_config('p', v, false)}</td><td>pin {@code set}; but when
 *     p is reported in ParameterStatus (application_name, client_encoding, DateStyle, IntervalStyle,
 *     TimeZone, standard_conforming_strings, default_transaction_read_only, scram_iterations; also
 *     {@code SET NAMES}, {@code SET TIME ZONE}) it {@link #followsClient() follows the client} instead</td></tr>
 * <tr><td>{@code SET LOCAL}, {@code SET TRANSACTION}, {@code SET CONSTRAINTS}, {@code set_config(.., true)}</td>
 *     <td>nothing: the transaction ends it</td></tr>
 * <tr><td>{@code SET ROLE}, {@code SET SESSION AUTHORIZATION}, set_config('role' ...)</td><td>pin {@code role}</td></tr>
 * <tr><td>{@code SET SESSION CHARACTERISTICS}, {@code SET SCHEMA}, {@code SET XML OPTION}, custom {@code a.b}</td><td>pin {@code set}</td></tr>
 * <tr><td>{@code RESET p}, {@code RESET TIME ZONE}</td><td>follows the client if p is reported, else nothing</td></tr>
 * <tr><td>{@code RESET ALL}</td><td>ends {@code set} (not {@code role}: the server keeps the role)</td></tr>
 * <tr><td>{@code LISTEN}</td><td>pin {@code listen}</td></tr>
 * <tr><td>{@code UNLISTEN *} / {@code UNLISTEN name}</td><td>ends / may end {@code listen}</td></tr>
 * <tr><td>pg_advisory_lock[_shared], pg_try_advisory_lock[_shared] anywhere</td><td>pin {@code advisory_lock}</td></tr>
 * <tr><td>exactly {@code SELECT pg_advisory_unlock_all()}</td><td>ends {@code advisory_lock}</td></tr>
 * <tr><td>pg_advisory_unlock_all elsewhere, pg_advisory_unlock[_shared]</td><td>may end {@code advisory_lock}</td></tr>
 * <tr><td>{@code CREATE [OR REPLACE] [GLOBAL|LOCAL] TEMP|TEMPORARY ...}, {@code INTO [GLOBAL|LOCAL] TEMP ...}</td>
 *     <td>pin {@code temp_table}, unless the statement says {@code ON COMMIT DROP}</td></tr>
 * <tr><td>{@code DROP ...}</td><td>may end {@code temp_table}</td></tr>
 * <tr><td>{@code DECLARE ... WITH HOLD}</td><td>pin {@code hold_cursor}</td></tr>
 * <tr><td>{@code CLOSE ALL} / {@code CLOSE name}</td><td>ends / may end {@code hold_cursor}</td></tr>
 * <tr><td>{@code PREPARE name ...} (not {@code PREPARE TRANSACTION})</td><td>pin {@code sql_prepare}</td></tr>
 * <tr><td>{@code DEALLOCATE [PREPARE] ALL} / {@code DEALLOCATE name}</td><td>ends / may end {@code sql_prepare};
 *     ALL also {@link #deallocatesAll() drops protocol-level statements}</td></tr>
 * <tr><td>{@code DISCARD ALL}</td><td>ends every pin, drops protocol-level statements</td></tr>
 * <tr><td>{@code DISCARD TEMP}</td><td>ends {@code temp_table}</td></tr>
 * <tr><td>{@code DO $$ ... $$} (plpgsql)</td><td>its body is read with the same rules (a statement starts
 *     after {@code ;}, BEGIN, THEN, ELSE, LOOP); {@code EXECUTE} (dynamic SQL) in it, another language or a
 *     body that is not dollar-quoted: {@code unknown}</td></tr>
 * <tr><td>unterminated literal, comment, dollar quote or DO body; {@code $name} that is no dollar quote</td>
 *     <td>{@code unknown}</td></tr>
 * </table>
 *
 * <h2>What is conservative</h2>
 * A missed pin leaks one client's state to another; a false pin only costs multiplexing. So: a pin starts
 * as soon as its statement is seen, even if the statement then fails or its transaction rolls back; words
 * such as the advisory-lock functions count wherever they appear outside literals and comments; a SET of
 * an unknown, custom or incomplete parameter pins. Ends are definite only for statements whose effect is
 * certain when they succeed; otherwise they are "may have ended", which a pooler may confirm by asking
 * the server (pg_listening_channels(), pg_locks, pg_cursors, pg_prepared_statements, the temp schema) or
 * ignore. {@link #apply} honours ends only for a message that completed without an error outside a
 * transaction block, because UNLISTEN and RESET are undone by a rollback and DISCARD ALL fails inside a
 * block. Not visible in the text, hence never pins: what functions, procedures and triggers do when they
 * run (their bodies are literals; only DO bodies run at once), and anything a later Bind/Execute of the
 * same prepared statement does (the pooler re-applies the pins of the statement's Parse).
 *
 * @see <a href="https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-ASYNC">ParameterStatus reporting</a>
 */
final class PgStatementClassifier implements PgSqlLexer.Tokens {

    private static final int WORD = 0, STRING = 1, SYMBOL = 2, OTHER = 3;
    /** Statement kinds besides the word ids of their first word. */
    private static final int START = -2, ANY = -3;
    private static final int DONE = -1;

    /** Each thread's spare instance: one suffices unless a message is split across reads. */
    private static final FastThreadLocal<PgStatementClassifier> SPARE = new FastThreadLocal<>();

    private final PgSqlLexer lexer = new PgSqlLexer(this);

    private int started;
    private int ended;
    private int maybeEnded;
    private boolean followsClient;
    private boolean deallocatesAll;
    private String unknownReason;

    // the statement being read
    private int kind = START;
    private int position;
    private int step;
    private int parameter;
    private int previous = NONE;
    private int beforePrevious = NONE;
    private int parenDepth;
    private boolean tempPending;
    private boolean onCommitDrop;

    private final PgSetConfigCall call = new PgSetConfigCall();

    // DO
    private boolean inBody;
    private boolean bodySeen;
    private boolean expectLanguage;
    private boolean otherLanguage;

    /**
     * This thread's spare classifier, or a new one, set to {@code standardConformingStrings}: it reads one
     * message, then goes back with {@link #giveBack}.
     */
    static PgStatementClassifier borrow(boolean standardConformingStrings) {
        PgStatementClassifier classifier = SPARE.getIfExists();
        if (classifier == null) {
            classifier = new PgStatementClassifier();
        } else {
            SPARE.set(null);
        }
        classifier.standardConformingStrings(standardConformingStrings);
        return classifier;
    }

    /** Done with a borrowed classifier (its outcome was read): it becomes this thread's spare, if it has none. */
    void giveBack() {
        if (SPARE.getIfExists() == null) {
            SPARE.set(this);
        }
    }

    /** Follows the server's standard_conforming_strings (from ParameterStatus); on by default. */
    void standardConformingStrings(boolean on) {
        lexer.standardConformingStrings(on);
    }

    /** A Query message starts: its body is the text. */
    void beginQuery() {
        begin(false);
    }

    /** A Parse message starts: its body is the statement name, then the text. */
    void beginParse() {
        begin(true);
    }

    private void begin(boolean parse) {
        started = 0;
        ended = 0;
        maybeEnded = 0;
        followsClient = false;
        deallocatesAll = false;
        unknownReason = null;
        inBody = false;
        resetStatement();
        resetDo();
        lexer.begin(parse);
    }

    /** A chunk of the message body: {@code length} bytes of {@code buf} from {@code index}, not consumed. */
    void accept(ByteBuf buf, int index, int length) {
        lexer.accept(buf, index, length);
    }

    /** The message ended; the outcome can be read. */
    void finish() {
        lexer.finish();
    }

    /** Bits of {@link PgPin}: pins the message may have started (including {@link PgPin#UNKNOWN}). */
    int pinsStarted() {
        return started;
    }

    /** Bits of pins whose last mention in the message was a definite end (valid if the message succeeded). */
    int pinsEnded() {
        return ended;
    }

    /** Bits of pins that may have ended: a pooler can ask the server, or keep them. */
    int pinsMaybeEnded() {
        return maybeEnded;
    }

    /** A reported parameter was SET or RESET: the pooler follows it through ParameterStatus, no pin. */
    boolean followsClient() {
        return followsClient;
    }

    /** DEALLOCATE ALL or DISCARD ALL: the session's protocol-level prepared statements are gone too. */
    boolean deallocatesAll() {
        return deallocatesAll;
    }

    boolean unknown() {
        return (started & PgPin.UNKNOWN.bit()) != 0;
    }

    /** Why the text was {@link #unknown()}, for a log line; null otherwise. */
    String unknownReason() {
        return unknownReason;
    }

    /**
     * The pins held after this message, given those held before it. Pins started always count; ends count
     * only when {@code committedOutsideTransaction}: the server answered without an ErrorResponse and its
     * ReadyForQuery said idle ({@code I}).
     */
    int apply(int pins, boolean committedOutsideTransaction) {
        return committedOutsideTransaction ? (pins | started) & ~ended : pins | started;
    }

    // ------------------------------------------------------------------ outcome

    private void start(PgPin pin) {
        started |= pin.bit();
        ended &= ~pin.bit();
    }

    private void end(PgPin pin) {
        ended |= pin.bit();
        maybeEnded &= ~pin.bit();
    }

    private void maybeEnd(PgPin pin) {
        maybeEnded |= pin.bit();
    }

    private void unknown(String reason) {
        if (unknownReason == null) {
            unknownReason = reason;
        }
        start(PgPin.UNKNOWN);
    }

    // ------------------------------------------------------------------ tokens

    @Override
    public void word(int id, boolean quoted) {
        token(WORD, id, quoted ? NONE : id, 0);
    }

    @Override
    public void string(int id) {
        token(STRING, id, NONE, 0);
    }

    @Override
    public void symbol(int c) {
        if (c == ';') {
            endStatement();
        } else {
            token(SYMBOL, NONE, NONE, c);
        }
    }

    @Override
    public void other() {
        token(OTHER, NONE, NONE, 0);
    }

    @Override
    public boolean codeBody() {
        if (kind == PgSqlWords.DO && !bodySeen && !expectLanguage && !otherLanguage) {
            inBody = true;
            bodySeen = true;
            resetStatement();
            return true;
        }
        return false;
    }

    @Override
    public void codeEnd() {
        endStatement();
        inBody = false;
        kind = PgSqlWords.DO;
        position = 1;
    }

    @Override
    public void strange(String reason) {
        unknown(reason);
    }

    @Override
    public void end() {
        endStatement();
    }

    /**
     * One token: {@code id} is a word's or string's id, {@code keyword} the same for an unquoted word
     * (quoted identifiers are never keywords but still name functions and parameters), {@code c} a symbol.
     */
    private void token(int type, int id, int keyword, int c) {
        call.token(type == SYMBOL && c == '(');
        if (call.active() && !(type == SYMBOL && parenDepth == call.depth() && (c == ',' || c == ')'))) {
            call.argumentToken(type == STRING ? id : PgSetConfigCall.NOT_STRING, type == WORD ? keyword : NONE);
        }
        if (type == WORD) {
            functionWord(id);
            if (keyword == PgSqlWords.TEMP || keyword == PgSqlWords.TEMPORARY) {
                int before = previous == PgSqlWords.GLOBAL || previous == PgSqlWords.LOCAL ? beforePrevious : previous;
                if (before == PgSqlWords.CREATE || before == PgSqlWords.REPLACE || before == PgSqlWords.INTO) {
                    tempPending = true;
                }
            } else if (keyword == PgSqlWords.DROP && previous == PgSqlWords.COMMIT && beforePrevious == PgSqlWords.ON) {
                onCommitDrop = true;
            } else if (keyword == PgSqlWords.EXECUTE && inBody) {
                unknown("dynamic SQL (EXECUTE) in a DO body");
            }
        } else if (type == SYMBOL) {
            parens(c);
        }
        if (kind == START) {
            kind = type == WORD && keyword != NONE ? keyword : ANY;
            firstToken();
        } else {
            statementToken(type, id, keyword, c);
        }
        position++;
        beforePrevious = previous;
        previous = type == WORD ? keyword : NONE;
        if (inBody && (keyword == PgSqlWords.BEGIN || keyword == PgSqlWords.THEN || keyword == PgSqlWords.ELSE
                || keyword == PgSqlWords.LOOP)) {
            endStatement();
        }
    }

    /** Function names count wherever they appear, quoted or not: a false pin is cheap. */
    private void functionWord(int id) {
        switch (id) {
            case PgSqlWords.PG_ADVISORY_LOCK, PgSqlWords.PG_ADVISORY_LOCK_SHARED, PgSqlWords.PG_TRY_ADVISORY_LOCK,
                    PgSqlWords.PG_TRY_ADVISORY_LOCK_SHARED -> start(PgPin.ADVISORY_LOCK);
            case PgSqlWords.PG_ADVISORY_UNLOCK, PgSqlWords.PG_ADVISORY_UNLOCK_SHARED -> maybeEnd(PgPin.ADVISORY_LOCK);
            case PgSqlWords.PG_ADVISORY_UNLOCK_ALL -> {
                if (kind == PgSqlWords.SELECT && position == 1) {
                    step = 1;               // perhaps exactly SELECT pg_advisory_unlock_all(): decided at the end
                } else {
                    maybeEnd(PgPin.ADVISORY_LOCK);
                }
            }
            case PgSqlWords.SET_CONFIG -> {
                if (call.active()) {
                    start(PgPin.SET);       // nested in another call's arguments: not followed
                } else {
                    call.named();
                }
            }
            default -> {
            }
        }
    }

    private void parens(int c) {
        if (c == '(') {
            call.opened(++parenDepth);
        } else if (c == ')') {
            if (call.closes(parenDepth)) {
                int parameter = call.parameter();
                if (parameter != PgSetConfigCall.LOCAL) {
                    parameter(parameter);
                }
            }
            parenDepth--;
        } else if (c == ',') {
            call.comma(parenDepth);
        }
    }

    /** A session-level change of the parameter {@code id} (NONE when not known for sure). */
    private void parameter(int id) {
        if (id == PgSqlWords.NAMES || PgSqlWords.reported(id)) {
            followsClient = true;
        } else if (id == PgSqlWords.ROLE || id == PgSqlWords.SESSION_AUTHORIZATION) {
            start(PgPin.ROLE);
        } else {
            start(PgPin.SET);
        }
    }

    // ------------------------------------------------------------------ statements

    private void firstToken() {
        switch (kind) {
            case PgSqlWords.LISTEN -> start(PgPin.LISTEN);
            case PgSqlWords.DROP -> maybeEnd(PgPin.TEMP_TABLE);
            case PgSqlWords.DO -> {
                if (inBody) {
                    unknown("a DO block inside a DO body");
                }
            }
            default -> {
            }
        }
    }

    /** A token after a statement's first word, read by the statement it belongs to. */
    private void statementToken(int type, int id, int keyword, int c) {
        if (step == DONE) {
            return;
        }
        switch (kind) {
            case PgSqlWords.SET -> set(type, id, keyword, c);
            case PgSqlWords.RESET -> reset(type, id, keyword, c);
            case PgSqlWords.UNLISTEN -> {
                if (type == SYMBOL && c == '*') {
                    end(PgPin.LISTEN);
                } else {
                    maybeEnd(PgPin.LISTEN);
                }
                step = DONE;
            }
            case PgSqlWords.DISCARD -> {
                if (keyword == PgSqlWords.ALL) {
                    ended = PgPin.ALL;
                    maybeEnded = 0;
                    deallocatesAll = true;
                } else if (keyword == PgSqlWords.TEMP || keyword == PgSqlWords.TEMPORARY) {
                    end(PgPin.TEMP_TABLE);
                }
                step = DONE;
            }
            case PgSqlWords.CLOSE -> {
                if (keyword == PgSqlWords.ALL) {
                    end(PgPin.HOLD_CURSOR);
                } else {
                    maybeEnd(PgPin.HOLD_CURSOR);
                }
                step = DONE;
            }
            case PgSqlWords.DEALLOCATE -> {
                if (keyword == PgSqlWords.PREPARE && step == 0) {
                    step = 1;
                    return;
                }
                if (keyword == PgSqlWords.ALL) {
                    end(PgPin.SQL_PREPARE);
                    deallocatesAll = true;
                } else {
                    maybeEnd(PgPin.SQL_PREPARE);
                }
                step = DONE;
            }
            case PgSqlWords.PREPARE -> {
                if (keyword != PgSqlWords.TRANSACTION) {
                    start(PgPin.SQL_PREPARE);
                }
                step = DONE;
            }
            case PgSqlWords.DECLARE -> {
                if (keyword == PgSqlWords.HOLD && previous == PgSqlWords.WITH) {
                    start(PgPin.HOLD_CURSOR);
                    step = DONE;
                }
            }
            case PgSqlWords.SELECT -> {
                if (position == 1) {
                    return;                 // the first selected word; functionWord marked unlock_all
                }
                if (step == 1 && position == 2 && c == '(' || step == 2 && position == 3 && c == ')') {
                    step++;
                } else if (step > 0) {
                    maybeEnd(PgPin.ADVISORY_LOCK);
                    step = DONE;
                }
            }
            case PgSqlWords.DO -> doToken(type, id, keyword);
            default -> step = DONE;
        }
    }

    /** SET: step 0 after SET, 1 after SET SESSION, 2 after the parameter name, 3 after TIME. */
    private void set(int type, int id, int keyword, int c) {
        switch (step) {
            case 0, 1 -> {
                if (type != WORD) {
                    start(PgPin.SET);
                    step = DONE;
                } else if (step == 0 && (keyword == PgSqlWords.LOCAL || keyword == PgSqlWords.TRANSACTION
                        || keyword == PgSqlWords.CONSTRAINTS)) {
                    step = DONE;
                } else if (step == 0 && keyword == PgSqlWords.SESSION) {
                    step = 1;
                } else if (step == 1 && keyword == PgSqlWords.AUTHORIZATION) {
                    start(PgPin.ROLE);
                    step = DONE;
                } else if (keyword == PgSqlWords.TIME) {
                    step = 3;
                } else {
                    parameter = keyword == PgSqlWords.CHARACTERISTICS && step == 1 ? NONE : id;
                    step = 2;
                }
            }
            case 2 -> {
                parameter(type == SYMBOL && c == '.' ? NONE : parameter);
                step = DONE;
            }
            case 3 -> {
                parameter(keyword == PgSqlWords.ZONE ? PgSqlWords.TIMEZONE : NONE);
                step = DONE;
            }
            default -> step = DONE;
        }
    }

    /** RESET: step 0 after RESET, 2 after the parameter name. */
    private void reset(int type, int id, int keyword, int c) {
        if (step == 0) {
            if (keyword == PgSqlWords.ALL) {
                end(PgPin.SET);
                followsClient = true;
                step = DONE;
            } else if (keyword == PgSqlWords.TIME) {
                followsClient = true;
                step = DONE;
            } else if (type == WORD) {
                parameter = id;
                step = 2;
            } else {
                step = DONE;
            }
        } else {
            if (!(type == SYMBOL && c == '.') && PgSqlWords.reported(parameter)) {
                followsClient = true;
            }
            step = DONE;
        }
    }

    /** DO [LANGUAGE name] body [LANGUAGE name]; the body itself arrives as code tokens. */
    private void doToken(int type, int id, int keyword) {
        if (expectLanguage) {
            expectLanguage = false;
            if (id != PgSqlWords.PLPGSQL || (type != WORD && type != STRING)) {
                otherLanguage = true;
            }
        } else if (keyword == PgSqlWords.LANGUAGE) {
            expectLanguage = true;
        } else if (type == STRING) {
            unknown("a DO body that is not dollar-quoted");
        }
    }

    /** The statement ended at ';', at the end of the text, or (in a DO body) before a new block statement. */
    private void endStatement() {
        if (step != DONE) {
            switch (kind) {
                case PgSqlWords.SET -> {
                    if (step == 2) {
                        parameter(parameter);
                    } else {
                        start(PgPin.SET);
                    }
                }
                case PgSqlWords.RESET -> {
                    if (step == 2 && PgSqlWords.reported(parameter)) {
                        followsClient = true;
                    }
                }
                case PgSqlWords.UNLISTEN -> maybeEnd(PgPin.LISTEN);
                case PgSqlWords.CLOSE -> maybeEnd(PgPin.HOLD_CURSOR);
                case PgSqlWords.DEALLOCATE -> maybeEnd(PgPin.SQL_PREPARE);
                case PgSqlWords.SELECT -> {
                    if (step == 3 && position == 4) {
                        end(PgPin.ADVISORY_LOCK);
                    } else if (step > 0) {
                        maybeEnd(PgPin.ADVISORY_LOCK);
                    }
                }
                default -> {
                }
            }
        }
        if (kind == PgSqlWords.DO && !inBody) {
            if (otherLanguage) {
                unknown("a DO block in a language other than plpgsql");
            } else if (!bodySeen || expectLanguage) {
                unknown("a DO block without a dollar-quoted body");
            }
            resetDo();
        }
        if (call.active()) {
            start(PgPin.SET);               // set_config( never closed: its arguments are unknown
        }
        if (tempPending && !onCommitDrop) {
            start(PgPin.TEMP_TABLE);
        }
        resetStatement();
    }

    private void resetStatement() {
        kind = START;
        position = 0;
        step = 0;
        parameter = NONE;
        previous = NONE;
        beforePrevious = NONE;
        parenDepth = 0;
        tempPending = false;
        onCommitDrop = false;
        call.reset();
    }

    private void resetDo() {
        bodySeen = false;
        expectLanguage = false;
        otherLanguage = false;
    }
}
