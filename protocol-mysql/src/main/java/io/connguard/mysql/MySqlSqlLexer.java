package io.connguard.mysql;

import io.netty.buffer.ByteBuf;
import io.netty.util.ByteProcessor;

/**
 * Cuts MySQL / MariaDB SQL text into the tokens {@link MySqlStatementClassifier} needs, byte by byte and
 * chunk by chunk, in constant memory: words (looked up in {@link MySqlSqlWords}), {@code `quoted`}
 * identifiers, string literals ({@code '...'} and {@code "..."}, backslash escapes unless
 * {@code NO_BACKSLASH_ESCAPES}; {@code "..."} is an identifier under {@code ANSI_QUOTES}), symbols, and
 * numbers as "other". Comments ({@code #}, {@code -- } followed by a space or control character, and
 * {@code /* *&#47;}, which do not nest) only separate tokens, but executable comments ({@code /*! ... *&#47;},
 * {@code /*!50700 ... *&#47;}, MariaDB's {@code /*M! ... *&#47;}) are code: their content is lexed like the
 * text around them, whatever version they name (the server may run it). It works on bytes: UTF-8 letters
 * are identifier bytes, so a chunk may end anywhere, also inside a character. The text is the whole
 * payload after the command byte (COM_QUERY, COM_STMT_PREPARE): it has no terminator, {@link #finish()}
 * ends it.
 *
 * @see <a href="https://dev.mysql.com/doc/refman/8.0/en/comments.html">Comments</a>
 * @see <a href="https://dev.mysql.com/doc/refman/8.0/en/string-literals.html">String literals</a>
 * @see <a href="https://mariadb.com/kb/en/comment-syntax/">MariaDB comment syntax</a>
 */
final class MySqlSqlLexer implements ByteProcessor {

    /** Receives the tokens. */
    interface Tokens {
        /** A word or a quoted identifier; {@code id} from {@link MySqlSqlWords}; its bytes are in {@link #captured()}. */
        void word(int id, boolean quoted);

        /** A string literal opens: return true to receive its unescaped content through {@link #content}. */
        boolean stringContent();

        /** One unescaped byte of a string literal whose content was asked for. */
        void content(int c);

        /** A string literal ended; {@code id} is its content's word id. */
        void string(int id);

        /** A one-character symbol ({@code ; ( ) , . @ : =} ...). */
        void symbol(int c);

        /** A number or nothing of interest. */
        void other();

        /** The text cannot be lexed with certainty; no more tokens follow, and no {@link #end}. */
        void strange(String reason);

        /** The text ended cleanly. */
        void end();
    }

    private enum State {
        NORMAL, WORD, NUMBER, QUOTED, QUOTED_END, STRING, STRING_ESCAPE, STRING_END, DASH, DASH2, SLASH,
        COMMENT_OPEN, COMMENT_M, BLOCK_COMMENT, BLOCK_STAR, LINE_COMMENT, EXEC_VERSION, EXEC_STAR, DONE
    }

    /** Longest name kept byte for byte (MySQL identifiers have at most 64 characters). */
    static final int MAX_CAPTURE = 64;

    private final Tokens tokens;
    private State state = State.DONE;
    private boolean backslashEscapes = true;
    private boolean ansiQuotes;

    private final byte[] captured = new byte[MAX_CAPTURE];
    private int capturedLength;
    private boolean overflow;
    private int quote;
    private boolean forward;
    private boolean inExecutable;
    private boolean versioned;

    MySqlSqlLexer(Tokens tokens) {
        this.tokens = tokens;
    }

    /** sql_mode NO_BACKSLASH_ESCAPES: a backslash in a literal is an ordinary character. */
    void noBackslashEscapes(boolean on) {
        backslashEscapes = !on;
    }

    /** sql_mode ANSI_QUOTES: {@code "..."} is an identifier (no backslash escapes), not a string. */
    void ansiQuotes(boolean on) {
        ansiQuotes = on;
    }

    void begin() {
        state = State.NORMAL;
        inExecutable = false;
        versioned = false;
    }

    /**
     * The token being emitted is inside an executable comment that names a version ({@code /*!50700},
     * {@code /*M!100500}): the server may skip it (MariaDB 10.11 skips {@code /*!50700} to {@code /*!99999}).
     */
    boolean inConditionalCode() {
        return inExecutable && versioned;
    }

    /** Lexes {@code length} bytes of {@code buf} from {@code index}; indexes are untouched. */
    void accept(ByteBuf buf, int index, int length) {
        if (state != State.DONE && length > 0) {
            buf.forEachByte(index, length, this);
        }
    }

    /** Lexes one byte (for text that arrives unescaped from a literal). */
    void accept(int c) {
        if (state != State.DONE) {
            process((byte) c);
        }
    }

    /** The text ended. */
    void finish() {
        if (state != State.DONE) {
            endOfText();
        }
    }

    /** The bytes of the last word, quoted identifier or string, as written (valid during the callback). */
    byte[] captured() {
        return captured;
    }

    /** How many bytes of {@link #captured()} are valid; -1 when the token was longer than {@link #MAX_CAPTURE}. */
    int capturedLength() {
        return overflow ? -1 : capturedLength;
    }

    @Override
    public boolean process(byte value) {
        step(value & 0xFF);
        return state != State.DONE;
    }

    private void step(int c) {
        switch (state) {
            case NORMAL -> normal(c);
            case DONE -> {
            }
            case WORD -> {
                if (identifierPart(c)) {
                    capture(c);
                } else {
                    emitWord(false);
                    normal(c);
                }
            }
            case NUMBER -> {
                if (!identifierPart(c) && c != '.') {
                    tokens.other();
                    normal(c);
                }
            }
            case QUOTED -> {
                if (c == quote) {
                    state = State.QUOTED_END;
                } else {
                    capture(c);
                }
            }
            case QUOTED_END -> {
                if (c == quote) {
                    capture(c);
                    state = State.QUOTED;
                } else {
                    emitWord(true);
                    normal(c);
                }
            }
            case STRING -> {
                if (c == quote) {
                    state = State.STRING_END;
                } else if (c == '\\' && backslashEscapes) {
                    state = State.STRING_ESCAPE;
                } else {
                    stringByte(c);
                }
            }
            case STRING_ESCAPE -> {
                stringByte(switch (c) {
                    case 'n' -> '\n';
                    case 't' -> '\t';
                    case 'r' -> '\r';
                    case '0' -> 0;
                    case 'Z' -> 0x1A;
                    case 'b' -> '\b';
                    default -> c;
                });
                state = State.STRING;
            }
            case STRING_END -> {
                if (c == quote) {
                    stringByte(c);
                    state = State.STRING;
                } else {
                    emitString();
                    normal(c);
                }
            }
            case DASH -> {
                if (c == '-') {
                    state = State.DASH2;
                } else {
                    tokens.symbol('-');
                    normal(c);
                }
            }
            case DASH2 -> {
                if (c <= ' ' || c == 0x7F) {
                    state = c == '\n' ? State.NORMAL : State.LINE_COMMENT;
                } else {
                    tokens.symbol('-');
                    tokens.symbol('-');
                    normal(c);
                }
            }
            case SLASH -> {
                if (c == '*') {
                    if (inExecutable) {
                        strange("a comment inside an executable comment");
                    } else {
                        state = State.COMMENT_OPEN;
                    }
                } else {
                    tokens.symbol('/');
                    normal(c);
                }
            }
            case COMMENT_OPEN, COMMENT_M -> {
                if (c == '!') {
                    inExecutable = true;
                    versioned = false;
                    state = State.EXEC_VERSION;
                } else if (c == 'M' && state == State.COMMENT_OPEN) {
                    state = State.COMMENT_M;
                } else {
                    state = c == '*' ? State.BLOCK_STAR : State.BLOCK_COMMENT;
                }
            }
            case BLOCK_COMMENT -> {
                if (c == '*') {
                    state = State.BLOCK_STAR;
                }
            }
            case BLOCK_STAR -> {
                if (c == '/') {
                    state = State.NORMAL;
                } else if (c != '*') {
                    state = State.BLOCK_COMMENT;
                }
            }
            case LINE_COMMENT -> {
                if (c == '\n') {
                    state = State.NORMAL;
                }
            }
            case EXEC_VERSION -> {
                if (digit(c)) {
                    versioned = true;
                } else {
                    normal(c);
                }
            }
            case EXEC_STAR -> {
                if (c == '/') {
                    inExecutable = false;
                    state = State.NORMAL;
                } else {
                    tokens.symbol('*');
                    normal(c);
                }
            }
        }
    }

    /** Between tokens. Every state that ends on a byte it does not take hands that byte here. */
    private void normal(int c) {
        state = State.NORMAL;
        if (c == 0) {
            strange("a NUL byte outside a literal");
            return;
        }
        if (c <= ' ') {
            return;
        }
        if (identifierStart(c)) {
            startCapture();
            capture(c);
            state = State.WORD;
        } else if (digit(c)) {
            state = State.NUMBER;
        } else {
            switch (c) {
                case '`' -> startQuoted(c);
                case '"' -> {
                    if (ansiQuotes) {
                        startQuoted(c);
                    } else {
                        startString(c);
                    }
                }
                case '\'' -> startString(c);
                case '#' -> state = State.LINE_COMMENT;
                case '-' -> state = State.DASH;
                case '/' -> state = State.SLASH;
                case '*' -> {
                    if (inExecutable) {
                        state = State.EXEC_STAR;
                    } else {
                        tokens.symbol(c);
                    }
                }
                default -> tokens.symbol(c);
            }
        }
    }

    private void startQuoted(int c) {
        startCapture();
        quote = c;
        state = State.QUOTED;
    }

    private void startString(int c) {
        startCapture();
        quote = c;
        forward = tokens.stringContent();
        state = State.STRING;
    }

    private void stringByte(int c) {
        capture(c);
        if (forward) {
            tokens.content(c);
        }
    }

    private void startCapture() {
        capturedLength = 0;
        overflow = false;
    }

    private void capture(int c) {
        if (capturedLength < captured.length) {
            captured[capturedLength++] = (byte) c;
        } else {
            overflow = true;
        }
    }

    private int capturedId() {
        return overflow ? MySqlSqlWords.NONE : MySqlSqlWords.lookup(captured, capturedLength);
    }

    private void emitWord(boolean quoted) {
        state = State.NORMAL;
        tokens.word(capturedId(), quoted);
    }

    private void emitString() {
        state = State.NORMAL;
        tokens.string(capturedId());
    }

    private void endOfText() {
        switch (state) {
            case WORD -> emitWord(false);
            case QUOTED_END -> emitWord(true);
            case NUMBER -> tokens.other();
            case STRING_END -> emitString();
            case DASH -> tokens.symbol('-');
            case SLASH -> tokens.symbol('/');
            case EXEC_STAR -> tokens.symbol('*');
            case NORMAL, LINE_COMMENT, DASH2, EXEC_VERSION -> {
            }
            case QUOTED -> {
                strange("an unterminated quoted identifier");
                return;
            }
            case STRING, STRING_ESCAPE -> {
                strange("an unterminated string literal");
                return;
            }
            case COMMENT_OPEN, COMMENT_M, BLOCK_COMMENT, BLOCK_STAR -> {
                strange("an unterminated comment");
                return;
            }
            case DONE -> {
                return;
            }
        }
        if (inExecutable) {
            strange("an unterminated executable comment");
            return;
        }
        state = State.DONE;
        tokens.end();
    }

    private void strange(String reason) {
        state = State.DONE;
        tokens.strange(reason);
    }

    private static boolean identifierStart(int c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '$' || c >= 0x80;
    }

    private static boolean identifierPart(int c) {
        return identifierStart(c) || digit(c);
    }

    private static boolean digit(int c) {
        return c >= '0' && c <= '9';
    }
}
