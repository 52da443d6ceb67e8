package io.connguard.core.api;

import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;

class SqlFingerprintTest {

    private static String pg(String sql) {
        return SqlFingerprint.of(sql, SqlFingerprint.POSTGRES);
    }

    private static String my(String sql) {
        return SqlFingerprint.of(sql, SqlFingerprint.MYSQL);
    }

    @Test
    void stringAndNumericLiteralsBecomePlaceholders() {
        assertThat(pg("SELECT * FROM orders WHERE id = 42 AND name = 'O''Brien' AND total > 3.5e2"))
                .isEqualTo("SELECT * FROM orders WHERE id = ? AND name = ? AND total > ?");
        assertThat(my("UPDATE t SET v = \"secret\", w = 'it\\'s', x = 0x1F WHERE k IN (1, 2, 3)"))
                .isEqualTo("UPDATE t SET v = ?, w = ?, x = ? WHERE k IN (?, ?, ?)");
    }

    @Test
    void identifiersPlaceholdersAndKeywordsStay() {
        assertThat(pg("SELECT \"Col1\", t2.c3 FROM t2 WHERE a = $1 AND b = $12"))
                .isEqualTo("SELECT \"Col1\", t2.c3 FROM t2 WHERE a = $1 AND b = $12");
        assertThat(my("SELECT `order`, c1 FROM t1 WHERE a = ?")).isEqualTo("SELECT `order`, c1 FROM t1 WHERE a = ?");
    }

    @Test
    void postgresSpecialLiterals() {
        assertThat(pg("SELECT E'a\\'b', $$it's $1$$, $tag$x$tag$, B'0101', X'FF'"))
                .isEqualTo("SELECT ?, ?, ?, ?, ?");
    }

    @Test
    void commentsGoAndWhitespaceFolds() {
        assertThat(pg("SELECT 1 -- password 'x'\n  FROM /* secret 7 */ t")).isEqualTo("SELECT ? FROM t");
        assertThat(my("SELECT 1 # secret\nFROM t")).isEqualTo("SELECT ? FROM t");
    }

    @Test
    void unterminatedLiteralOfATruncatedStatementIsStillHidden() {
        assertThat(pg("INSERT INTO t VALUES ('top secret valu")).isEqualTo("INSERT INTO t VALUES (?");
        assertThat(pg("SELECT $$ never closed")).isEqualTo("SELECT ?");
    }

    /** Random statements never throw, stay bounded, and (with no quoted identifiers) leak no quote. */
    @Test
    void garbageNeverThrowsAndNeverLeaksAStringQuote() {
        java.util.Random random = new java.util.Random(7);
        String alphabet = "'$-#/*\\0123456789eExX. abc\n";
        for (int i = 0; i < 20_000; i++) {
            char[] chars = new char[random.nextInt(96)];
            for (int j = 0; j < chars.length; j++) {
                chars[j] = alphabet.charAt(random.nextInt(alphabet.length()));
            }
            String sql = new String(chars);
            assertThat(pg(sql)).doesNotContain("'").hasSizeLessThanOrEqualTo(sql.length());
            assertThat(my(sql)).doesNotContain("'").hasSizeLessThanOrEqualTo(sql.length());
            assertThat(my(sql.replace('$', '"'))).doesNotContain("'");
        }
    }
}
