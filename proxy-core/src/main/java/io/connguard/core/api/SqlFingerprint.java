package io.connguard.core.api;

/**
 * Turns statement text into a fingerprint that is safe to log and show: string and numeric literals
 * become {@code ?}, comments go, runs of white space become one space. Identifiers, keywords and
 * placeholders ({@code $1}, {@code ?}) stay, so the operator can still tell which statement it was.
 *
 * <p>The input may be a truncated prefix of the statement; an unterminated literal still becomes {@code ?}.
 */
public final class SqlFingerprint {

    /** How a dialect writes literals. */
    public record Dialect(boolean doubleQuotedStrings, boolean backslashEscapes, boolean dollarQuotes,
                          boolean hashComments) {
    }

    /** PostgreSQL: "..." is an identifier, $tag$...$tag$ is a string, backslashes only in E'...'. */
    public static final Dialect POSTGRES = new Dialect(false, false, true, false);

    /** MySQL / MariaDB (default sql_mode): "..." is a string, backslash escapes, # comments. */
    public static final Dialect MYSQL = new Dialect(true, true, false, true);

    private static final int MAX_LENGTH = 512;

    private SqlFingerprint() {
    }

    public static String of(CharSequence sql, Dialect dialect) {
        StringBuilder out = new StringBuilder(Math.min(sql.length(), MAX_LENGTH));
        int n = sql.length();
        int i = 0;
        while (i < n && out.length() < MAX_LENGTH) {
            char c = sql.charAt(i);
            if (c == '\'' || (c == '"' && dialect.doubleQuotedStrings())) {
                boolean escapes = dialect.backslashEscapes() || isEscapePrefix(out);
                dropLiteralPrefix(out);
                i = skipQuoted(sql, i, c, escapes);
                appendToken(out, "?");
            } else if (c == '"' || c == '`') {
                int end = skipQuoted(sql, i, c, false);
                appendRaw(out, sql, i, end);
                i = end;
            } else if (c == '$' && dialect.dollarQuotes() && dollarTagEnd(sql, i) > 0) {
                int tagEnd = dollarTagEnd(sql, i);
                String tag = sql.subSequence(i, tagEnd).toString();
                int close = indexOf(sql, tag, tagEnd);
                i = close < 0 ? n : close + tag.length();
                appendToken(out, "?");
            } else if (c == '-' && i + 1 < n && sql.charAt(i + 1) == '-'
                    || c == '#' && dialect.hashComments()) {
                while (i < n && sql.charAt(i) != '\n') {
                    i++;
                }
                appendSpace(out);
            } else if (c == '/' && i + 1 < n && sql.charAt(i + 1) == '*') {
                int close = indexOf(sql, "*/", i + 2);
                i = close < 0 ? n : close + 2;
                appendSpace(out);
            } else if (isDigit(c) && !continuesWord(out) || c == '.' && i + 1 < n && isDigit(sql.charAt(i + 1))
                    && !continuesWord(out)) {
                i = skipNumber(sql, i);
                appendToken(out, "?");
            } else if (Character.isWhitespace(c)) {
                appendSpace(out);
                i++;
            } else if (c == '$' && i + 1 < n && isDigit(sql.charAt(i + 1))) {
                int end = i + 1;
                while (end < n && isDigit(sql.charAt(end))) {
                    end++;
                }
                appendRaw(out, sql, i, end);
                i = end;
            } else {
                out.append(c);
                i++;
            }
        }
        int end = out.length();
        while (end > 0 && out.charAt(end - 1) == ' ') {
            end--;
        }
        out.setLength(end);
        return out.toString();
    }

    private static int skipQuoted(CharSequence sql, int start, char quote, boolean backslashEscapes) {
        int i = start + 1;
        int n = sql.length();
        while (i < n) {
            char c = sql.charAt(i);
            if (c == '\\' && backslashEscapes) {
                i += 2;
            } else if (c == quote) {
                if (i + 1 < n && sql.charAt(i + 1) == quote) {
                    i += 2;
                } else {
                    return i + 1;
                }
            } else {
                i++;
            }
        }
        return n;
    }

    /** Returns the index after a dollar-quote opening tag ($$ or $name$) at {@code start}, or -1. */
    private static int dollarTagEnd(CharSequence sql, int start) {
        int i = start + 1;
        int n = sql.length();
        if (i < n && isDigit(sql.charAt(i))) {
            return -1;
        }
        while (i < n) {
            char c = sql.charAt(i);
            if (c == '$') {
                return i + 1;
            }
            if (!(Character.isLetterOrDigit(c) || c == '_')) {
                return -1;
            }
            i++;
        }
        return -1;
    }

    private static int skipNumber(CharSequence sql, int start) {
        int i = start;
        int n = sql.length();
        if (sql.charAt(i) == '0' && i + 1 < n && (sql.charAt(i + 1) == 'x' || sql.charAt(i + 1) == 'X')) {
            i += 2;
            while (i < n && Character.digit(sql.charAt(i), 16) >= 0) {
                i++;
            }
            return i;
        }
        while (i < n) {
            char c = sql.charAt(i);
            if (isDigit(c) || c == '.') {
                i++;
            } else if ((c == 'e' || c == 'E') && i + 1 < n
                    && (isDigit(sql.charAt(i + 1)) || (sql.charAt(i + 1) == '-' || sql.charAt(i + 1) == '+'))) {
                i += 2;
            } else {
                break;
            }
        }
        return i;
    }

    private static int indexOf(CharSequence sql, String needle, int from) {
        int last = sql.length() - needle.length();
        outer:
        for (int i = from; i <= last; i++) {
            for (int j = 0; j < needle.length(); j++) {
                if (sql.charAt(i + j) != needle.charAt(j)) {
                    continue outer;
                }
            }
            return i;
        }
        return -1;
    }

    /** A lone E/B/X/N before a quote makes a typed string literal: E'..', X'..'. */
    private static boolean isEscapePrefix(StringBuilder out) {
        int n = out.length();
        return n > 0 && (out.charAt(n - 1) == 'E' || out.charAt(n - 1) == 'e') && (n == 1 || !isWordChar(out.charAt(n - 2)));
    }

    private static void dropLiteralPrefix(StringBuilder out) {
        int n = out.length();
        if (n > 0 && "EeBbXxNn".indexOf(out.charAt(n - 1)) >= 0 && (n == 1 || !isWordChar(out.charAt(n - 2)))) {
            out.setLength(n - 1);
        }
    }

    private static boolean continuesWord(StringBuilder out) {
        return out.length() > 0 && isWordChar(out.charAt(out.length() - 1));
    }

    private static boolean isWordChar(char c) {
        return Character.isLetterOrDigit(c) || c == '_' || c == '$';
    }

    private static boolean isDigit(char c) {
        return c >= '0' && c <= '9';
    }

    private static void appendToken(StringBuilder out, String token) {
        out.append(token);
    }

    private static void appendRaw(StringBuilder out, CharSequence sql, int from, int to) {
        out.append(sql, from, Math.min(to, from + MAX_LENGTH));
    }

    private static void appendSpace(StringBuilder out) {
        if (out.length() > 0 && out.charAt(out.length() - 1) != ' ') {
            out.append(' ');
        }
    }
}
