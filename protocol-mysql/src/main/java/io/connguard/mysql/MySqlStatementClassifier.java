package io.connguard.mysql;

import io.netty.buffer.ByteBuf;
import io.netty.util.concurrent.FastThreadLocal;

import java.util.Arrays;

import static io.connguard.mysql.MySqlSqlWords.NONE;

/**
 * Tells a transaction-mode pooler, from the SQL text of one COM_QUERY (or COM_STMT_PREPARE), which session
 * state the command may leave in the server thread: the pins it starts ({@link MySqlPin}), the pins it
 * ends or may have ended, whether a system variable or the schema changed (those follow the client through
 * the OK packets' session state information, see {@link MySqlSessionState}), and whether the text reads a
 * value of the previous statement. It is fed the text chunk by chunk as it crosses the proxy
 * ({@link MySqlSqlLexer}), never aggregated: a few fixed fields and a 64-byte buffer however long the text.
 * Several statements per command (multi-statements), comments, executable comments, literals, case and
 * white space anywhere are understood. One instance serves one client session (one event loop) at a time
 * and keeps the names of the client's temporary tables and SQL prepared statements between commands
 * ({@link MySqlPinNames}, allocated only when such a statement is seen), so that their last drop ends the
 * pin. A session that has no such names {@link #borrow}s one per command text from its event loop's spare
 * and {@link #giveBack}s it when the text ends, so that an idle session keeps none.
 *
 * <p>Use per command: {@link #begin()}, {@link #accept} for each chunk of the text (the payload after the
 * command byte), {@link #finish()} at the end of the packet, read the outcome, then exactly once
 * {@link #apply} with whether the command succeeded. {@link #reset()} when the server connection's session
 * was reset (COM_RESET_CONNECTION, COM_CHANGE_USER).
 *
 * <h2>Rules</h2>
 * <table>
 * <caption>What starts and ends a pin</caption>
 * <tr><th>statement</th><th>outcome</th></tr>
 * <tr><td>{@code SET @x = ..}, {@code SELECT .. INTO @x}, {@code @x := ..} anywhere, {@code @x} in LOAD DATA,
 *     {@code GET DIAGNOSTICS @x = ..}</td><td>pin {@code user_variable}</td></tr>
 * <tr><td>{@code SET [SESSION|LOCAL] v = ..}, {@code SET @@[session.]v}, {@code SET NAMES}, {@code SET CHARACTER SET},
 *     {@code SET SESSION TRANSACTION ..}, {@code USE db}</td><td>{@link #followsClient() follows the client}</td></tr>
 * <tr><td>{@code SET GLOBAL|PERSIST ..}, {@code SET PASSWORD}, {@code SET DEFAULT ROLE}, MariaDB
 *     {@code SET STATEMENT .. FOR stmt} (then stmt is read)</td><td>nothing</td></tr>
 * <tr><td>{@code SET TRANSACTION ..} (next transaction only)</td><td>pin {@code next_transaction}</td></tr>
 * <tr><td>{@code SQL_CALC_FOUND_ROWS}</td><td>pin {@code found_rows} if no statement follows it in the text</td></tr>
 * <tr><td>any statement but SET, SHOW, USE, DO</td><td>ends {@code found_rows} and {@code next_transaction}</td></tr>
 * <tr><td>{@code CREATE [OR REPLACE] TEMPORARY ..}</td><td>pin {@code temp_table}, name remembered</td></tr>
 * <tr><td>{@code DROP TEMPORARY TABLE a, b} (no IF EXISTS)</td><td>ends {@code temp_table} when it drops the last
 *     remembered name; otherwise, and for {@code DROP TABLE}, may end it</td></tr>
 * <tr><td>{@code LOCK TABLE[S]}, {@code FLUSH TABLES .. WITH READ LOCK}, {@code FLUSH TABLES .. FOR EXPORT}</td>
 *     <td>pin {@code lock_tables}</td></tr>
 * <tr><td>{@code UNLOCK TABLE[S]}</td><td>ends {@code lock_tables}</td></tr>
 * <tr><td>{@code GET_LOCK(}</td><td>pin {@code get_lock}</td></tr>
 * <tr><td>exactly {@code SELECT|DO RELEASE_ALL_LOCKS()}; other RELEASE_ALL_LOCKS(, RELEASE_LOCK(</td>
 *     <td>ends / may end {@code get_lock}</td></tr>
 * <tr><td>{@code PREPARE s FROM 'text'} / {@code FROM @var}</td><td>pin {@code sql_prepare}; the literal text is read
 *     with the same rules and its pins start at every {@code EXECUTE s} ({@code @var}: unknown)</td></tr>
 * <tr><td>{@code DEALLOCATE|DROP PREPARE s}</td><td>ends {@code sql_prepare} when it drops the last remembered
 *     name, else may end it</td></tr>
 * <tr><td>{@code EXECUTE IMMEDIATE 'text'} (MariaDB)</td><td>the text's outcome (ends only "may have ended");
 *     {@code EXECUTE IMMEDIATE @var}: unknown</td></tr>
 * <tr><td>{@code LAST_INSERT_ID()}, {@code @@last_insert_id}, {@code @@identity}</td>
 *     <td>{@link #readsLastInsertId() reads last_insert_id}</td></tr>
 * <tr><td>{@code LAST_INSERT_ID(expr)} outside INSERT, UPDATE, DELETE, REPLACE (whose OK packet reports the value),
 *     {@code SET insert_id|last_insert_id|identity}</td><td>pin {@code last_insert_id}</td></tr>
 * <tr><td>{@code FOUND_ROWS()}, {@code ROW_COUNT()}, {@code SHOW WARNINGS|ERRORS|COUNT(*) ..}, {@code GET DIAGNOSTICS},
 *     {@code @@warning_count}, {@code @@error_count}</td><td>{@link #readsPreviousStatement() reads the previous statement}</td></tr>
 * <tr><td>{@code XA START}, {@code HANDLER .. OPEN}, {@code SET ROLE}, {@code LOCK INSTANCE}, {@code BACKUP LOCK},
 *     {@code EXECUTE s} of a statement not seen prepared; unterminated literal, identifier or comment,
 *     a NUL byte, a comment inside an executable comment</td><td>{@code unknown}</td></tr>
 * <tr><td>a statement with a token in a versioned executable comment ({@code /*!50700 ..*&#47;}, which the server
 *     may skip)</td><td>its pins count, its ends only "may have ended"</td></tr>
 * <tr><td>stored program definitions ({@code CREATE PROCEDURE|FUNCTION|TRIGGER|EVENT}, {@code ALTER EVENT}),
 *     compound statements ({@code BEGIN NOT ATOMIC}, IF, CASE, LOOP, REPEAT, WHILE, labels)</td>
 *     <td>the rest of the text is read as usual, but its ends only "may have ended"</td></tr>
 * </table>
 *
 * <h2>What is conservative</h2>
 * A missed pin leaks one client's state to another; a false pin only costs multiplexing. A pin starts as
 * soon as its statement is seen, even if it then fails; function names count quoted or not; inside
 * executable comments everything counts, whatever version they name. Ends count only when the whole
 * command succeeded ({@link #apply}): in a multi-statement an error stops the rest. What the text cannot
 * show never pins: what stored procedures, functions and triggers do when they run ({@code CALL}).
 *
 * @see <a href="https://dev.mysql.com/doc/refman/8.0/en/set-variable.html">SET syntax for variable assignment</a>
 * @see <a href="https://mariadb.com/kb/en/set-statement/">MariaDB SET STATEMENT</a>
 */
final class MySqlStatementClassifier extends MySqlTextOutcome implements MySqlSqlLexer.Tokens {

    /** Each thread's spare instance: one suffices unless a text is split across reads. */
    private static final FastThreadLocal<MySqlStatementClassifier> SPARE = new FastThreadLocal<>();

    /** Extra bits kept with a prepared statement's pins: what executing it reads. */
    private static final int READS_LAST_INSERT_ID = 1 << 30, READS_PREVIOUS = 1 << 29;

    /** Token codes in the short history: a symbol is its byte, other tokens these, a word 512 + its id. */
    static final int ANY_NAME = 256, STRING = 257, OTHER = 258, WORD_BASE = 512;
    /** Statement kinds besides the word ids of their first word. */
    private static final int START = -2, ANY = -3;
    private static final int DONE = -1;

    // SET steps

    private final MySqlSqlLexer lexer = new MySqlSqlLexer(this);
    private final MySqlSetStatement set = new MySqlSetStatement();
    private final boolean nested;
    private MySqlStatementClassifier inner;
    /** The string literal being read (or just read) was forwarded to {@link #inner}. */
    private boolean innerActive;
    private MySqlPinNames names;
    private boolean noBackslashEscapes;
    private boolean ansiQuotes;

    // outcome of the command
    private boolean flow;

    // the statement being read
    private int kind = START;
    private int position;
    private int step;
    private int depth;
    private int t1 = -1, t2 = -1, t3 = -1, t4 = -1;
    private boolean calcFoundRows;
    private boolean conditional;
    private boolean expectName;
    private boolean lastInsertIdCall;
    private boolean temporary;
    private boolean ifExists;
    /** A table or statement name being read ({@code db \0 table}); allocated for the first such statement. */
    private byte[] name;
    private int nameLength;

    MySqlStatementClassifier() {
        this(false);
    }

    private MySqlStatementClassifier(boolean nested) {
        this.nested = nested;
    }

    /**
     * This thread's spare classifier, or a new one, set to the client's sql_mode: it reads one command's
     * text, then goes back with {@link #giveBack} unless it remembers names ({@link #names()}).
     */
    static MySqlStatementClassifier borrow(boolean noBackslashEscapes, boolean ansiQuotes) {
        MySqlStatementClassifier classifier = SPARE.getIfExists();
        if (classifier == null) {
            classifier = new MySqlStatementClassifier();
        } else {
            SPARE.set(null);
        }
        classifier.sqlMode(noBackslashEscapes, ansiQuotes);
        return classifier;
    }

    /**
     * Done with a borrowed classifier that remembers no names (its outcome was read): it becomes this
     * thread's spare, if it has none.
     */
    void giveBack() {
        if (names == null && SPARE.getIfExists() == null) {
            SPARE.set(this);
        }
    }

    /** OK / EOF status flag: sql_mode has NO_BACKSLASH_ESCAPES (MySQL and MariaDB). */
    static final int SERVER_STATUS_NO_BACKSLASH_ESCAPES = 0x0200;
    /** OK / EOF status flag of MariaDB: sql_mode has ANSI_QUOTES (MySQL does not send it). */
    static final int SERVER_STATUS_ANSI_QUOTES = 0x8000;

    /**
     * Follows sql_mode from the status flags of an OK or EOF, which every response ends with: the cheapest
     * way to lex the next command as the server will. MySQL reports only NO_BACKSLASH_ESCAPES this way; use
     * {@link #sqlMode} with {@link MySqlSessionState#ansiQuotes()} there.
     */
    void followStatus(int status) {
        sqlMode((status & SERVER_STATUS_NO_BACKSLASH_ESCAPES) != 0, (status & SERVER_STATUS_ANSI_QUOTES) != 0);
    }

    /** Follows the client's sql_mode (from the session state information): NO_BACKSLASH_ESCAPES, ANSI_QUOTES. */
    void sqlMode(boolean noBackslashEscapes, boolean ansiQuotes) {
        this.noBackslashEscapes = noBackslashEscapes;
        this.ansiQuotes = ansiQuotes;
        lexer.noBackslashEscapes(noBackslashEscapes);
        lexer.ansiQuotes(ansiQuotes);
        if (inner != null) {
            inner.sqlMode(noBackslashEscapes, ansiQuotes);
        }
    }

    /** A command's text starts. */
    void begin() {
        clearOutcome();
        flow = false;
        innerActive = false;
        if (names != null) {
            names.commit(false);                                // drops of a command never applied did not happen
        }
        resetStatement();
        lexer.begin();
    }

    /** A chunk of the text: {@code length} bytes of {@code buf} from {@code index}, not consumed. */
    void accept(ByteBuf buf, int index, int length) {
        lexer.accept(buf, index, length);
    }

    /** The text ended; the outcome can be read. */
    void finish() {
        lexer.finish();
        if (names != null) {
            if (names.tempGoneAfterStaged()) {
                end(MySqlPin.TEMP_TABLE);
            }
            if (names.preparedGoneAfterStaged()) {
                end(MySqlPin.SQL_PREPARE);
            }
        }
    }

    /**
     * The pins held after this command, given those held before it. Pins started always count; ends (and
     * the end of next-statement pins) only when the command {@code succeeded} (no ERR). Commits the staged
     * drops of temporary tables and prepared statements; call exactly once per command.
     */
    int apply(int pins, boolean succeeded) {
        if (names != null) {
            names.commit(succeeded);
        }
        return pinsAfter(pins, succeeded, started, ended, consumedNext);
    }

    /**
     * {@link #apply}'s rule, for an outcome read earlier: the pins held after a command that started
     * {@code started}, ended {@code ended} and consumed next-statement pins or not.
     */
    static int pinsAfter(int pins, boolean succeeded, int started, int ended, boolean consumedNext) {
        if (!succeeded) {
            return pins | started;
        }
        int held = consumedNext ? pins & ~MySqlPin.NEXT_STATEMENT : pins;
        return (held | started) & ~ended;
    }

    /** The server connection's session was reset: every name connguard remembered is gone. */
    void reset() {
        names = null;
    }

    /** The client's remembered temporary tables and prepared statements (tests, /sessions); null if none ever. */
    MySqlPinNames names() {
        return names;
    }

    // ------------------------------------------------------------------ outcome

    /** A definite end, unless the statement is in a compound statement or in a versioned executable comment. */
    private void end(MySqlPin pin) {
        if (flow || conditional) {
            maybeEnd(pin);
        } else {
            endDefinitely(pin);
        }
    }

    private MySqlPinNames tracked() {
        if (names == null) {
            names = new MySqlPinNames();
        }
        return names;
    }

    // ------------------------------------------------------------------ tokens

    @Override
    public void word(int id, boolean quoted) {
        token(id == NONE ? ANY_NAME : WORD_BASE + id, id, quoted ? NONE : id);
    }

    @Override
    public boolean stringContent() {
        boolean wanted = !nested && depth == 0
                && (kind == MySqlSqlWords.PREPARE && step == 2 || kind == MySqlSqlWords.EXECUTE && step == 1);
        innerActive = wanted;
        if (wanted) {
            if (inner == null) {
                inner = new MySqlStatementClassifier(true);
                inner.sqlMode(noBackslashEscapes, ansiQuotes);
            }
            inner.begin();
        }
        return wanted;
    }

    @Override
    public void content(int c) {
        inner.lexer.accept(c);
    }

    @Override
    public void string(int id) {
        token(STRING, id, NONE);
    }

    @Override
    public void symbol(int c) {
        if (c == ';') {
            endStatement();
        } else {
            token(c, NONE, NONE);
        }
    }

    @Override
    public void other() {
        token(OTHER, NONE, NONE);
    }

    @Override
    public void strange(String reason) {
        unknown(reason);
    }

    @Override
    public void end() {
        endStatement();
    }

    /** One token: {@code code} for the history, {@code id} a word's id, {@code keyword} the same if unquoted. */
    private void token(int code, int id, int keyword) {
        if (code == '(') {
            depth++;
        } else if (code == ')') {
            depth--;
        }
        conditional |= lexer.inConditionalCode();
        anywhere(code, id);
        if (kind == START) {
            kind = keyword != NONE ? keyword : ANY;
            firstToken();
        } else if (step != DONE) {
            statementToken(code, id, keyword);
        }
        position++;
        t4 = t3;
        t3 = t2;
        t2 = t1;
        t1 = code;
        if (kind == MySqlSqlWords.SET && set.restart()) {
            resetStatement();                                   // SET STATEMENT ... FOR: the statement follows
        } else if (flow && (keyword == MySqlSqlWords.THEN || keyword == MySqlSqlWords.ELSE
                || keyword == MySqlSqlWords.BEGIN || keyword == MySqlSqlWords.LOOP || keyword == MySqlSqlWords.REPEAT
                || keyword == MySqlSqlWords.DO || keyword == MySqlSqlWords.ATOMIC)) {
            endStatement();                                     // in a compound statement a statement follows
        }
    }

    /** What counts wherever it appears: function calls, user variable assignments, system variable reads. */
    private void anywhere(int code, int id) {
        if (lastInsertIdCall && t1 == '(') {
            lastInsertIdCall = false;
            if (code == ')') {
                readsLastInsertId = true;
            } else if (kind != MySqlSqlWords.INSERT && kind != MySqlSqlWords.UPDATE && kind != MySqlSqlWords.DELETE
                    && kind != MySqlSqlWords.REPLACE) {
                start(MySqlPin.LAST_INSERT_ID);                 // in DML the OK packet reports the value
            }
        }
        if (code == '(' && t1 >= WORD_BASE) {
            switch (t1 - WORD_BASE) {
                case MySqlSqlWords.GET_LOCK -> start(MySqlPin.GET_LOCK);
                case MySqlSqlWords.RELEASE_LOCK -> maybeEnd(MySqlPin.GET_LOCK);
                case MySqlSqlWords.RELEASE_ALL_LOCKS -> {
                    if (!((kind == MySqlSqlWords.SELECT || kind == MySqlSqlWords.DO) && position == 2)) {
                        maybeEnd(MySqlPin.GET_LOCK);
                    }
                }
                case MySqlSqlWords.LAST_INSERT_ID -> lastInsertIdCall = true;
                case MySqlSqlWords.FOUND_ROWS, MySqlSqlWords.ROW_COUNT -> readsPrevious = true;
                default -> {
                }
            }
        }
        if (code >= ANY_NAME) {
            if (t1 == '@' && t2 == WORD_BASE + MySqlSqlWords.INTO) {
                start(MySqlPin.USER_VARIABLE);                  // INTO @x
            }
            boolean systemVariable = t1 == '@' && t2 == '@' || t1 == '.' && t3 == '@' && t4 == '@';
            if (systemVariable && !(kind == MySqlSqlWords.SET && set.readingTarget())) {
                if (id == MySqlSqlWords.LAST_INSERT_ID || id == MySqlSqlWords.IDENTITY) {
                    readsLastInsertId = true;
                } else if (id == MySqlSqlWords.WARNING_COUNT || id == MySqlSqlWords.ERROR_COUNT) {
                    readsPrevious = true;
                }
            }
            if (id == MySqlSqlWords.SQL_CALC_FOUND_ROWS && code >= WORD_BASE) {
                calcFoundRows = true;
            }
        } else if (code == '=' && t1 == ':' && t2 >= ANY_NAME && t3 == '@' && t4 != '@') {
            start(MySqlPin.USER_VARIABLE);                      // @x := ...
        }
    }

    // ------------------------------------------------------------------ statements

    private void firstToken() {
        if (kind != MySqlSqlWords.SET && kind != MySqlSqlWords.SHOW && kind != MySqlSqlWords.USE
                && kind != MySqlSqlWords.DO) {
            consumedNext = true;
            started &= ~MySqlPin.NEXT_STATEMENT;
        }
        switch (kind) {
            case MySqlSqlWords.USE -> followsClient = true;
            case MySqlSqlWords.IF, MySqlSqlWords.CASE, MySqlSqlWords.LOOP, MySqlSqlWords.REPEAT,
                    MySqlSqlWords.WHILE -> flow = true;
            case MySqlSqlWords.SET -> set.begin();
            default -> {
            }
        }
    }

    /** A token after a statement's first word. */
    private void statementToken(int code, int id, int keyword) {
        if (position == 1 && code == ':') {
            flow = true;                                        // label: BEGIN ... END
        }
        switch (kind) {
            case MySqlSqlWords.SET -> {
                set.token(code, id, keyword, depth, t1, lexer);
                takeSet();
                if (set.done()) {
                    step = DONE;
                }
            }
            case MySqlSqlWords.CREATE -> create(code, keyword);
            case MySqlSqlWords.ALTER -> {
                if (keyword == MySqlSqlWords.EVENT && depth == 0) {
                    flow = true;
                }
            }
            case MySqlSqlWords.DROP -> drop(code, keyword);
            case MySqlSqlWords.PREPARE -> prepare(code);
            case MySqlSqlWords.DEALLOCATE -> {
                if (step == 0 && keyword == MySqlSqlWords.PREPARE) {
                    step = 1;
                } else {
                    deallocate(code);
                }
            }
            case MySqlSqlWords.EXECUTE -> execute(code, keyword);
            case MySqlSqlWords.LOCK -> {
                if (keyword == MySqlSqlWords.TABLE || keyword == MySqlSqlWords.TABLES) {
                    start(MySqlPin.LOCK_TABLES);
                } else if (keyword == MySqlSqlWords.INSTANCE) {
                    unknown("LOCK INSTANCE FOR BACKUP");
                }
                step = DONE;
            }
            case MySqlSqlWords.UNLOCK -> {
                if (keyword == MySqlSqlWords.TABLE || keyword == MySqlSqlWords.TABLES) {
                    end(MySqlPin.LOCK_TABLES);
                }
                step = DONE;
            }
            case MySqlSqlWords.FLUSH -> {
                if (keyword == MySqlSqlWords.LOCK && t1 == WORD_BASE + MySqlSqlWords.READ
                        || keyword == MySqlSqlWords.EXPORT && t1 == WORD_BASE + MySqlSqlWords.FOR) {
                    start(MySqlPin.LOCK_TABLES);
                    step = DONE;
                }
            }
            case MySqlSqlWords.BACKUP -> {
                if (keyword != MySqlSqlWords.UNLOCK) {
                    unknown("BACKUP LOCK or BACKUP STAGE");
                }
                step = DONE;
            }
            case MySqlSqlWords.XA -> {
                if (keyword == MySqlSqlWords.START || keyword == MySqlSqlWords.BEGIN) {
                    unknown("an XA transaction");
                }
                step = DONE;
            }
            case MySqlSqlWords.HANDLER -> {
                if (keyword == MySqlSqlWords.OPEN) {
                    unknown("HANDLER ... OPEN");
                    step = DONE;
                }
            }
            case MySqlSqlWords.SHOW -> {
                if (keyword == MySqlSqlWords.WARNINGS || keyword == MySqlSqlWords.ERRORS) {
                    readsPrevious = true;
                    step = DONE;
                }
            }
            case MySqlSqlWords.LOAD -> {
                if (code >= ANY_NAME && t1 == '@' && t2 != '@') {
                    start(MySqlPin.USER_VARIABLE);              // LOAD DATA ... (@a, @b) assigns them
                    step = DONE;
                }
            }
            case MySqlSqlWords.GET -> {
                if (keyword == MySqlSqlWords.DIAGNOSTICS) {
                    readsPrevious = true;
                    step = 1;
                } else if (step == 1 && code >= ANY_NAME && t1 == '@' && t2 != '@') {
                    start(MySqlPin.USER_VARIABLE);              // GET DIAGNOSTICS @n = NUMBER
                }
            }
            case MySqlSqlWords.BEGIN -> {
                if (keyword == MySqlSqlWords.NOT && position == 1) {
                    flow = true;                                // BEGIN NOT ATOMIC
                }
                step = DONE;
            }
            case MySqlSqlWords.SELECT, MySqlSqlWords.DO -> {
                // exactly SELECT|DO RELEASE_ALL_LOCKS ( ): step 1, 2, 3; decided at the end of the statement
                if (position == 1) {
                    step = id == MySqlSqlWords.RELEASE_ALL_LOCKS ? 1 : DONE;
                } else if (step == 1 && code == '(' || step == 2 && code == ')') {
                    step++;
                } else {
                    if (step >= 2) {
                        maybeEnd(MySqlPin.GET_LOCK);
                    }
                    step = DONE;
                }
            }
            default -> step = DONE;
        }
    }

    /** What the SET reader found with the last token. */
    private void takeSet() {
        int pins = set.takePins();
        for (MySqlPin pin : MySqlPin.values()) {
            if ((pins & pin.bit()) != 0) {
                start(pin);
            }
        }
        followsClient |= set.takeFollows();
        String reason = set.takeUnknown();
        if (reason != null) {
            unknown(reason);
        }
        String collation = set.takeCollation();
        if (collation != null) {
            namesCollation = collation;
        }
    }

    /** CREATE: step 1 after TEMPORARY, 2 after TABLE / IF NOT EXISTS, 3 after a name, 4 after its dot. */
    private void create(int code, int keyword) {
        if (depth == 0 && (keyword == MySqlSqlWords.PROCEDURE || keyword == MySqlSqlWords.FUNCTION
                || keyword == MySqlSqlWords.TRIGGER || keyword == MySqlSqlWords.EVENT)) {
            flow = true;                                        // a stored program's body: not run now
        }
        switch (step) {
            case 0 -> {
                if (keyword == MySqlSqlWords.TEMPORARY && (position == 1
                        || t1 == WORD_BASE + MySqlSqlWords.REPLACE && t2 == WORD_BASE + MySqlSqlWords.OR && position == 3)) {
                    step = 1;
                }
            }
            case 1 -> {
                if (keyword == MySqlSqlWords.TABLE) {
                    step = 2;
                } else {
                    tempCreated(false);                        // MariaDB: CREATE TEMPORARY SEQUENCE
                    step = DONE;
                }
            }
            case 2 -> {
                if (keyword == MySqlSqlWords.IF || keyword == MySqlSqlWords.NOT || keyword == MySqlSqlWords.EXISTS) {
                    return;
                }
                nameLength = 0;
                step = namePart(code) ? 3 : DONE;
                if (step == DONE) {
                    tempCreated(false);
                }
            }
            case 3 -> {
                if (code == '.' && nameLength < name.length) {
                    name[nameLength++] = 0;
                    step = 4;
                } else {
                    tempCreated(true);
                    step = DONE;
                }
            }
            case 4 -> {
                tempCreated(namePart(code));
                step = DONE;
            }
            default -> {
            }
        }
    }

    private void tempCreated(boolean named) {
        start(MySqlPin.TEMP_TABLE);
        if (nested) {
            return;
        }
        tracked().tempCreated(named ? Arrays.copyOf(name, nameLength) : null);
    }

    /** DROP [TEMPORARY] TABLE[S] [IF EXISTS] names, DROP PREPARE name; step 1 in the list of tables. */
    private void drop(int code, int keyword) {
        if (step == 0) {
            if (keyword == MySqlSqlWords.TEMPORARY && position == 1) {
                temporary = true;
            } else if (keyword == MySqlSqlWords.TABLE || keyword == MySqlSqlWords.TABLES) {
                maybeEnd(MySqlPin.TEMP_TABLE);
                step = 1;
                nameLength = 0;
                expectName = true;
            } else if (keyword == MySqlSqlWords.PREPARE && position == 1) {
                kind = MySqlSqlWords.DEALLOCATE;
                step = 1;
            } else {
                step = DONE;
            }
            return;
        }
        if (expectName && nameLength == 0 && (keyword == MySqlSqlWords.IF || keyword == MySqlSqlWords.EXISTS)) {
            ifExists = true;
        } else if (code == ',' && !expectName) {
            tempDropped();
            nameLength = 0;
            expectName = true;
        } else if (code == '.' && !expectName && nameLength < name.length) {
            name[nameLength++] = 0;
            expectName = true;
        } else if (expectName && namePart(code)) {
            expectName = false;
        } else {
            temporary = false;                                 // not a plain list of names: untracked
        }
    }

    private void tempDropped() {
        if (temporary && !ifExists && !flow && !conditional && !nested && !expectName && names != null) {
            names.stageTempDrop(Arrays.copyOf(name, nameLength));
        }
    }

    /** PREPARE name FROM 'text' | @var: step 0 the name, 1 FROM, 2 the source. */
    private void prepare(int code) {
        switch (step) {
            case 0 -> {
                nameLength = 0;
                boolean named = namePart(code);
                lowerName();
                start(MySqlPin.SQL_PREPARE);
                if (nested) {
                    unknown("PREPARE inside prepared text");
                    step = DONE;
                } else {
                    step = named ? 1 : DONE;
                    if (!named) {
                        tracked().prepared(null, 0);
                    }
                }
            }
            case 1 -> step = 2;
            case 2 -> {
                int pins;
                if (code == STRING && innerActive) {
                    innerActive = false;
                    inner.finish();
                    pins = inner.started | (inner.readsLastInsertId ? READS_LAST_INSERT_ID : 0)
                            | (inner.readsPrevious ? READS_PREVIOUS : 0);
                } else {
                    pins = MySqlPin.UNKNOWN.bit();              // FROM @var: text connguard cannot read
                }
                tracked().prepared(Arrays.copyOf(name, nameLength), pins);
                step = DONE;
            }
            default -> {
            }
        }
    }

    /** DEALLOCATE PREPARE name (and DROP PREPARE name). */
    private void deallocate(int code) {
        nameLength = 0;
        if (namePart(code) && names != null && !flow && !conditional && !nested) {
            lowerName();
            names.stageDeallocate(Arrays.copyOf(name, nameLength));
        }
        maybeEnd(MySqlPin.SQL_PREPARE);
        step = DONE;
    }

    /** EXECUTE name [USING ...], MariaDB EXECUTE IMMEDIATE 'text' | @var; step 1 after IMMEDIATE. */
    private void execute(int code, int keyword) {
        if (step == 0 && keyword == MySqlSqlWords.IMMEDIATE) {
            step = 1;
            return;
        }
        if (step == 1) {
            if (code == STRING && innerActive) {
                innerActive = false;
                inner.finish();
                started(inner.started);
                maybeEnded |= inner.ended | inner.maybeEnded;
                followsClient |= inner.followsClient;
                readsLastInsertId |= inner.readsLastInsertId;
                readsPrevious |= inner.readsPrevious;
            } else {
                unknown("EXECUTE IMMEDIATE of text connguard cannot read");
            }
            step = DONE;
            return;
        }
        nameLength = 0;
        int pins = -1;
        if (namePart(code) && names != null && !nested) {
            lowerName();
            pins = names.pinsOfPrepared(Arrays.copyOf(name, nameLength));
        }
        if (pins < 0) {
            unknown("EXECUTE of a statement connguard did not see prepared");
        } else {
            started(pins & MySqlPin.ALL);
            readsLastInsertId |= (pins & READS_LAST_INSERT_ID) != 0;
            readsPrevious |= (pins & READS_PREVIOUS) != 0;
        }
        step = DONE;
    }

    /** Pins started by text run indirectly; its temporary tables are not remembered by name. */
    private void started(int pins) {
        for (MySqlPin pin : MySqlPin.values()) {
            if ((pins & pin.bit()) != 0) {
                start(pin);
            }
        }
        if ((pins & MySqlPin.TEMP_TABLE.bit()) != 0 && !nested) {
            tracked().tempUntracked();
        }
        if ((pins & MySqlPin.UNKNOWN.bit()) != 0 && unknownReason == null) {
            unknownReason = "executed text that is unknown";
        }
    }

    /** Appends the word or quoted identifier just read to {@link #name}; false if the token is no name. */
    private boolean namePart(int code) {
        if (code < WORD_BASE && code != ANY_NAME) {
            return false;
        }
        if (name == null) {
            name = new byte[2 * MySqlSqlLexer.MAX_CAPTURE + 1];
        }
        int length = lexer.capturedLength();
        if (length < 0 || nameLength + length > name.length) {
            return false;
        }
        System.arraycopy(lexer.captured(), 0, name, nameLength, length);
        nameLength += length;
        return true;
    }

    private void lowerName() {
        for (int i = 0; i < nameLength; i++) {
            if (name[i] >= 'A' && name[i] <= 'Z') {
                name[i] += 'a' - 'A';
            }
        }
    }

    /** The statement ended at ';' or at the end of the text. */
    private void endStatement() {
        if (kind == MySqlSqlWords.SET) {
            set.end();
            takeSet();
        } else if (kind == MySqlSqlWords.CREATE && step >= 1 && step <= 4) {
            tempCreated(step == 3);
        } else if (kind == MySqlSqlWords.DROP && step == 1) {
            tempDropped();
        } else if ((kind == MySqlSqlWords.SELECT || kind == MySqlSqlWords.DO) && position >= 2) {
            if (step == 3 && position == 4) {
                end(MySqlPin.GET_LOCK);
            } else if (step > 0 && step != DONE) {
                maybeEnd(MySqlPin.GET_LOCK);
            }
        } else if (kind == MySqlSqlWords.PREPARE && step == 2) {
            tracked().prepared(Arrays.copyOf(name, nameLength), MySqlPin.UNKNOWN.bit());
        }
        if (lastInsertIdCall) {
            start(MySqlPin.LAST_INSERT_ID);                     // LAST_INSERT_ID( never closed
        }
        if (calcFoundRows) {
            start(MySqlPin.FOUND_ROWS);
        }
        resetStatement();
    }

    private void resetStatement() {
        kind = START;
        position = 0;
        step = 0;
        depth = 0;
        t1 = t2 = t3 = t4 = -1;
        calcFoundRows = false;
        conditional = false;
        expectName = false;
        lastInsertIdCall = false;
        temporary = false;
        ifExists = false;
        nameLength = 0;
    }
}
