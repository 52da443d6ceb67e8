package io.connguard.postgres;

import io.netty.buffer.ByteBuf;
import io.netty.util.ByteProcessor;

import java.util.Arrays;

/**
 * Cuts PostgreSQL SQL text into the tokens {@link PgStatementClassifier} needs, byte by byte and chunk by
 * chunk, in constant memory: words (lower-cased and looked up in {@link PgSqlWords}), quoted identifiers,
 * string literals ({@code '...'}, {@code E'...'} with backslash escapes, {@code $tag$...$tag$}), symbols
 * and everything else as "other". Comments ({@code --} and nested {@code /* *&#47;}) and white space only
 * separate tokens. It works on bytes: UTF-8 letters are identifier bytes, so a chunk may end anywhere,
 * also inside a character.
 *
 * <p>The text ends at its NUL terminator (Query: the body; Parse: after the statement name). A dollar
 * quote whose body the listener asks to see as code (a DO block) is lexed like the text around it until
 * its closing tag.
 *
 * @see <a href="https://www.postgresql.org/docs/current/sql-syntax-lexical.html">Lexical structure</a>
 */
final class PgSqlLexer implements ByteProcessor {

    /** Receives the tokens. */
    interface Tokens {
        /** A word or a quoted identifier: {@code id} from {@link PgSqlWords} (case folded either way). */
        void word(int id, boolean quoted);

        /** A string literal; {@code id} is its lower-cased content's word id (for {@code 'true'}, {@code 'TimeZone'}). */
        void string(int id);

        /** A one-character symbol or operator character ({@code ; ( ) , . * =} ...). */
        void symbol(int c);

        /** A number, a parameter ({@code $1}) or nothing of interest. */
        void other();

        /** A dollar quote opens outside code: should its body be lexed as code (the body of a DO)? */
        boolean codeBody();

        /** The dollar quote that {@link #codeBody} opened has closed. */
        void codeEnd();

        /** The text cannot be lexed with certainty; no more tokens follow, and no {@link #end}. */
        void strange(String reason);

        /** The text ended cleanly. */
        void end();
    }

    private enum State {
        NAME, NORMAL, WORD, WORD_DOLLAR, NUMBER, PARAM, QUOTED_IDENT, QUOTED_IDENT_END, STRING, STRING_ESCAPE, STRING_END,
        DOLLAR_TAG, DOLLAR_BODY, DOLLAR_CLOSE, DASH, SLASH, LINE_COMMENT, BLOCK_COMMENT, BLOCK_STAR,
        BLOCK_SLASH, DONE
    }

    /** Longest dollar-quote tag followed; a longer one makes the text strange. */
    static final int MAX_TAG = 64;

    private final Tokens tokens;
    private State state = State.DONE;
    private boolean standardConformingStrings = true;

    private final byte[] captured = new byte[PgSqlWords.MAX_LENGTH];
    private int capturedLength;
    private boolean overflow;
    private boolean quoted;
    private boolean backslashEscapes;

    private final byte[] tag = new byte[MAX_TAG];
    private int tagLength;
    private int tagMatched;
    private final byte[] codeTag = new byte[MAX_TAG];
    private int codeTagLength;
    private boolean inCode;
    /** How much of the closing {@code $tag$} of a DO body the last bytes matched, whatever the state; -1 none. */
    private int codeCloseMatched = -1;
    private int commentDepth;
    private int wordDollarMatched;

    PgSqlLexer(Tokens tokens) {
        this.tokens = tokens;
    }

    /**
     * Whether plain {@code '...'} literals take backslashes literally (the server's
     * {@code standard_conforming_strings}, on by default). With it off a backslash escapes the next byte.
     */
    void standardConformingStrings(boolean on) {
        standardConformingStrings = on;
    }

    /** Starts a text: the body of a Query ({@code parse} false) or of a Parse, whose statement name comes first. */
    void begin(boolean parse) {
        state = parse ? State.NAME : State.NORMAL;
        inCode = false;
    }

    /** Lexes {@code length} bytes of {@code buf} from {@code index}; indexes are untouched. */
    void accept(ByteBuf buf, int index, int length) {
        if (state != State.DONE && length > 0) {
            buf.forEachByte(index, length, this);
        }
    }

    /** The message ended: ends the text if its NUL terminator was missing. */
    void finish() {
        if (state != State.DONE) {
            endOfText();
        }
    }

    @Override
    public boolean process(byte value) {
        int c = value & 0xFF;
        if (!inCode) {                      // the common bytes first: inside a word, between words, in a literal
            State current = state;
            if (current == State.WORD && WORD_PART[c]) {
                capture(c);
                return true;
            }
            if (current == State.NORMAL && c <= ' ' && c != 0) {
                return true;
            }
            if (current == State.STRING && c != '\'' && c != '\\' && c != 0) {
                capture(c);
                return true;
            }
        }
        return slowPath(c);
    }

    /** Every other byte; kept out of {@link #process} so that the common path stays small enough to inline. */
    private boolean slowPath(int c) {
        if (c == 0) {
            if (state == State.NAME) {
                state = State.NORMAL;
                return true;
            }
            endOfText();
            return false;
        }
        boolean wasInCode = inCode;
        step(c);
        if (wasInCode && inCode) {
            watchCodeClose(c);
        }
        return state != State.DONE;
    }

    /**
     * The server ends a DO body at the first {@code $tag$} of its opening tag, even inside what the body's
     * own language would read as a literal or a comment. Reading the body as code, the lexer sees the close
     * only between tokens; a close seen anywhere else makes the text strange.
     */
    private void watchCodeClose(int c) {
        if (codeCloseMatched < 0) {
            codeCloseMatched = c == '$' ? 0 : -1;
        } else if (codeCloseMatched < codeTagLength) {
            if (c == (codeTag[codeCloseMatched] & 0xFF)) {
                codeCloseMatched++;
            } else {
                codeCloseMatched = c == '$' ? 0 : -1;
            }
        } else if (c == '$') {
            strange("a DO body whose closing tag is inside a literal, comment or name");
        } else {
            codeCloseMatched = -1;
        }
    }

    private void step(int c) {
        switch (state) {
            case NAME, DONE -> {
            }
            case NORMAL -> normal(c);
            case WORD -> {
                if (c == '$' && inCode) {
                    wordDollarMatched = 0;  // perhaps the body's closing tag right after a word: END$$
                    state = State.WORD_DOLLAR;
                } else if (identifierPart(c)) {
                    capture(c);
                } else {
                    boolean escapeString = c == '\'' && capturedLength == 1 && captured[0] == 'e';
                    emitWord();
                    if (escapeString) {
                        startString(true);
                    } else {
                        normal(c);
                    }
                }
            }
            case WORD_DOLLAR -> {
                if (wordDollarMatched < codeTagLength && c == (codeTag[wordDollarMatched] & 0xFF)) {
                    wordDollarMatched++;
                } else if (wordDollarMatched == codeTagLength && c == '$') {
                    emitWord();
                    inCode = false;
                    tokens.codeEnd();
                } else {
                    capture('$');           // a '$' inside the word after all, and the bytes after it
                    for (int i = 0; i < wordDollarMatched; i++) {
                        capture(codeTag[i] & 0xFF);
                    }
                    state = State.WORD;
                    step(c);
                }
            }
            case NUMBER -> {
                if (!identifierPart(c) && c != '.') {
                    tokens.other();
                    normal(c);
                }
            }
            case PARAM -> {
                if (!digit(c)) {
                    tokens.other();
                    normal(c);
                }
            }
            case QUOTED_IDENT -> {
                if (c == '"') {
                    state = State.QUOTED_IDENT_END;
                } else {
                    capture(c);
                }
            }
            case QUOTED_IDENT_END -> {
                if (c == '"') {
                    capture(c);
                    state = State.QUOTED_IDENT;
                } else {
                    emitWord();
                    normal(c);
                }
            }
            case STRING -> {
                if (c == '\'') {
                    state = State.STRING_END;
                } else if (c == '\\' && backslashEscapes) {
                    state = State.STRING_ESCAPE;
                } else {
                    capture(c);
                }
            }
            case STRING_ESCAPE -> {
                capture(c);
                state = State.STRING;
            }
            case STRING_END -> {
                if (c == '\'') {
                    capture(c);
                    state = State.STRING;
                } else {
                    emitString();
                    normal(c);
                }
            }
            case DOLLAR_TAG -> dollarTag(c);
            case DOLLAR_BODY -> {
                if (c == '$') {
                    tagMatched = 0;
                    state = State.DOLLAR_CLOSE;
                }
            }
            case DOLLAR_CLOSE -> {
                if (tagMatched < tagLength) {
                    if (c == (tag[tagMatched] & 0xFF)) {
                        tagMatched++;
                    } else if (c == '$') {
                        tagMatched = 0;
                    } else {
                        state = State.DOLLAR_BODY;
                    }
                } else if (c == '$') {
                    state = State.NORMAL;
                    tokens.string(PgSqlWords.NONE);
                } else {
                    state = State.DOLLAR_BODY;
                }
            }
            case DASH -> {
                if (c == '-') {
                    state = State.LINE_COMMENT;
                } else {
                    tokens.symbol('-');
                    normal(c);
                }
            }
            case SLASH -> {
                if (c == '*') {
                    commentDepth = 1;
                    state = State.BLOCK_COMMENT;
                } else {
                    tokens.symbol('/');
                    normal(c);
                }
            }
            case LINE_COMMENT -> {
                if (c == '\n' || c == '\r') {
                    state = State.NORMAL;
                }
            }
            case BLOCK_COMMENT -> {
                if (c == '*') {
                    state = State.BLOCK_STAR;
                } else if (c == '/') {
                    state = State.BLOCK_SLASH;
                }
            }
            case BLOCK_STAR -> {
                if (c == '/') {
                    state = --commentDepth == 0 ? State.NORMAL : State.BLOCK_COMMENT;
                } else if (c != '*') {
                    state = State.BLOCK_COMMENT;
                }
            }
            case BLOCK_SLASH -> {
                if (c == '*') {
                    commentDepth++;
                    state = State.BLOCK_COMMENT;
                } else if (c != '/') {
                    state = State.BLOCK_COMMENT;
                }
            }
        }
    }

    /** Between tokens. Every state that ends on a byte it does not take hands that byte here. */
    private void normal(int c) {
        state = State.NORMAL;
        if (c <= ' ') {
            return;
        }
        if (identifierStart(c)) {
            startCapture(false);
            capture(c);
            state = State.WORD;
        } else if (digit(c)) {
            state = State.NUMBER;
        } else {
            switch (c) {
                case '"' -> {
                    startCapture(true);
                    state = State.QUOTED_IDENT;
                }
                case '\'' -> startString(!standardConformingStrings);
                case '$' -> {
                    tagLength = 0;
                    state = State.DOLLAR_TAG;
                }
                case '-' -> state = State.DASH;
                case '/' -> state = State.SLASH;
                default -> tokens.symbol(c);
            }
        }
    }

    private void dollarTag(int c) {
        if (c == '$') {
            if (inCode && tagLength == codeTagLength
                    && Arrays.equals(tag, 0, tagLength, codeTag, 0, codeTagLength)) {
                inCode = false;
                state = State.NORMAL;
                tokens.codeEnd();
            } else if (!inCode && tokens.codeBody()) {
                System.arraycopy(tag, 0, codeTag, 0, tagLength);
                codeTagLength = tagLength;
                codeCloseMatched = -1;
                inCode = true;
                state = State.NORMAL;
            } else {
                state = State.DOLLAR_BODY;
            }
        } else if (tagLength == 0 && digit(c)) {
            state = State.PARAM;
        } else if (identifierStart(c) || (tagLength > 0 && digit(c))) {
            if (tagLength == MAX_TAG) {
                strange("a dollar-quote tag longer than " + MAX_TAG + " bytes");
            } else {
                tag[tagLength++] = (byte) c;
            }
        } else if (tagLength == 0) {
            tokens.symbol('$');
            normal(c);
        } else {
            strange("'$' followed by a name that is not a dollar quote");
        }
    }

    private void startString(boolean backslashes) {
        startCapture(false);
        backslashEscapes = backslashes;
        state = State.STRING;
    }

    private void startCapture(boolean quotedIdentifier) {
        capturedLength = 0;
        overflow = false;
        quoted = quotedIdentifier;
    }

    private void capture(int c) {
        int at = capturedLength;
        if (at < PgSqlWords.MAX_LENGTH) {
            captured[at] = LOWER[c];
            capturedLength = at + 1;
        } else {
            overflow = true;
        }
    }

    private static final byte[] LOWER = new byte[256];

    static {
        for (int c = 0; c < 256; c++) {
            LOWER[c] = (byte) (c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
        }
    }

    private int capturedId() {
        return overflow ? PgSqlWords.NONE : PgSqlWords.lookup(captured, capturedLength);
    }

    private void emitWord() {
        state = State.NORMAL;
        tokens.word(capturedId(), quoted);
    }

    private void emitString() {
        state = State.NORMAL;
        tokens.string(capturedId());
    }

    private void endOfText() {
        switch (state) {
            case WORD, WORD_DOLLAR, QUOTED_IDENT_END -> emitWord();
            case NUMBER, PARAM -> tokens.other();
            case STRING_END -> emitString();
            case DASH -> tokens.symbol('-');
            case SLASH -> tokens.symbol('/');
            case DOLLAR_TAG -> {
                if (tagLength > 0) {
                    strange("'$' followed by a name that is not a dollar quote");
                    return;
                }
                tokens.symbol('$');
            }
            case NORMAL, LINE_COMMENT, NAME -> {
            }
            case QUOTED_IDENT -> {
                strange("an unterminated quoted identifier");
                return;
            }
            case STRING, STRING_ESCAPE -> {
                strange("an unterminated string literal");
                return;
            }
            case DOLLAR_BODY, DOLLAR_CLOSE -> {
                strange("an unterminated dollar-quoted string");
                return;
            }
            case BLOCK_COMMENT, BLOCK_STAR, BLOCK_SLASH -> {
                strange("an unterminated comment");
                return;
            }
            case DONE -> {
                return;
            }
        }
        if (inCode) {
            strange("an unterminated DO body");
            return;
        }
        state = State.DONE;
        tokens.end();
    }

    private void strange(String reason) {
        state = State.DONE;
        tokens.strange(reason);
    }

    /** Bytes that continue a word, but not '$' (which may close a DO body) nor NUL. */
    private static final boolean[] WORD_PART = new boolean[256];

    static {
        for (int c = 1; c < 256; c++) {
            WORD_PART[c] = c != '$' && identifierPart(c);
        }
    }

    private static boolean identifierStart(int c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
    }

    private static boolean identifierPart(int c) {
        return identifierStart(c) || digit(c) || c == '$';
    }

    private static boolean digit(int c) {
        return c >= '0' && c <= '9';
    }
}
