package io.connguard.postgres;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;

import static io.connguard.postgres.PgMessages.concat;
import static io.connguard.postgres.PgMessages.cstring;
import static org.assertj.core.api.Assertions.assertThat;

class PgStatementClassifierTest {

    /**
     * The rule table: SQL text → outcome. {@code +r} pin r started, {@code -r} pin r ended, {@code ~r} pin r
     * may have ended, {@code follows} a reported parameter was set, {@code deallocate} protocol-level
     * statements dropped; "" nothing at all.
     */
    static Stream<Arguments> statements() {
        String discardAll = "-set -role -listen -advisory_lock -temp_table -hold_cursor -sql_prepare -unknown deallocate";
        return Stream.of(
                // nothing to see
                Arguments.of("SELECT 1", ""),
                Arguments.of("", ""),
                Arguments.of("SELECT 1; ; ;", ""),
                Arguments.of("SELECT 'SET x'", ""),
                Arguments.of("/* LISTEN */ SELECT 1", ""),
                Arguments.of("-- LISTEN x\nSELECT 1", ""),
                Arguments.of("SELECT 1 -- SET x\n; SET LOCAL y = 1", ""),
                Arguments.of("/* outer /* nested */ LISTEN x */ SELECT 1", ""),
                Arguments.of("SELECT \"LISTEN\" FROM t", ""),
                Arguments.of("UPDATE t SET a = 1 WHERE b = 'SET'", ""),
                Arguments.of("ALTER ROLE r SET search_path = x", ""),
                Arguments.of("SELECT $1::int, $2", ""),
                Arguments.of("SELECT pg_advisory_xact_lock(1)", ""),
                Arguments.of("BEGIN; SET LOCAL statement_timeout = 5; COMMIT", ""),
                Arguments.of("SELECT 'naïve — ünïcödé 😀'; SET LOCAL a.b = 'ß'", ""),
                Arguments.of("SELECT E'it\\'s; SET x = 1'", ""),
                Arguments.of("SELECT $$ LISTEN $$, $tag$ $$ LISTEN $tag$; SET LOCAL x = 1", ""),
                Arguments.of("CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql SET search_path = x AS "
                        + "$$ BEGIN SET search_path = y; PERFORM pg_advisory_lock(1); LISTEN z; END $$", ""),
                Arguments.of("CREATE TABLE temp_data (a int)", ""),
                Arguments.of("INSERT INTO temporary_rows SELECT 1", ""),
                // SET and friends
                Arguments.of("SET search_path = x; SELECT 1", "+set"),
                Arguments.of("set search_path to x", "+set"),
                Arguments.of("\tSeT\n\tSEARCH_PATH\n=\nx", "+set"),
                Arguments.of("SET/**/statement_timeout=0", "+set"),
                Arguments.of("SET SESSION statement_timeout = 5", "+set"),
                Arguments.of("set local statement_timeout = 5", ""),
                Arguments.of("SET LOCAL search_path = x", ""),
                Arguments.of("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", ""),
                Arguments.of("SET CONSTRAINTS ALL DEFERRED", ""),
                Arguments.of("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", "+set"),
                Arguments.of("SET SCHEMA 'x'", "+set"),
                Arguments.of("SET XML OPTION DOCUMENT", "+set"),
                Arguments.of("SET myapp.tenant = '42'", "+set"),
                Arguments.of("SET TimeZone.x = 1", "+set"),
                Arguments.of("SET", "+set"),
                Arguments.of("SET SESSION AUTHORIZATION cg_md5", "+role"),
                Arguments.of("SET ROLE cg_md5", "+role"),
                Arguments.of("SET SESSION ROLE cg_md5", "+role"),
                Arguments.of("SET session_authorization = 'x'", "+role"),
                Arguments.of("SET LOCAL ROLE cg_md5", ""),
                Arguments.of("SET application_name = 'x'", "follows"),
                Arguments.of("SET TIME ZONE 'UTC'", "follows"),
                Arguments.of("set session time zone local", "follows"),
                Arguments.of("SET NAMES 'UTF8'", "follows"),
                Arguments.of("SET DateStyle TO ISO, DMY", "follows"),
                Arguments.of("SET intervalstyle = iso_8601", "follows"),
                Arguments.of("SET \"TimeZone\" = 'UTC'", "follows"),
                Arguments.of("SET standard_conforming_strings = on", "follows"),
                Arguments.of("SET default_transaction_read_only = on", "follows"),
                Arguments.of("SET client_encoding TO 'LATIN1'; SET search_path = a", "follows +set"),
                Arguments.of("RESET ALL", "follows -set"),
                Arguments.of("SET search_path = x; RESET ALL", "follows +set -set"),
                Arguments.of("RESET TimeZone", "follows"),
                Arguments.of("RESET TIME ZONE", "follows"),
                Arguments.of("RESET search_path", ""),
                Arguments.of("RESET ROLE", ""),
                Arguments.of("RESET SESSION AUTHORIZATION", ""),
                Arguments.of("SELECT set_config('search_path', 'x', false)", "+set"),
                Arguments.of("SELECT set_config('search_path', 'x', true)", ""),
                Arguments.of("SELECT set_config('search_path', 'x', 'on')", ""),
                Arguments.of("select pg_catalog.set_config('TimeZone', 'UTC', false)", "follows"),
                Arguments.of("SELECT set_config('a.b', x, is_local) FROM t", "+set"),
                Arguments.of("SELECT set_config('role', 'x', 'off')", "+role"),
                Arguments.of("SELECT set_config(name, 'x', false) FROM (VALUES ('TimeZone')) v(name)", "+set"),
                Arguments.of("SELECT set_config('a', set_config('b', 'c', true), true)", "+set"),
                Arguments.of("SELECT set_config('a', 'b', (true))", "+set"),
                Arguments.of("SELECT set_config", ""),
                // LISTEN
                Arguments.of("LISTEN ch", "+listen"),
                Arguments.of("listen \"Ch\"", "+listen"),
                Arguments.of("UNLISTEN *", "-listen"),
                Arguments.of("UNLISTEN ch", "~listen"),
                Arguments.of("LISTEN a; UNLISTEN *", "+listen -listen"),
                Arguments.of("UNLISTEN *; LISTEN a", "+listen"),
                // advisory locks
                Arguments.of("SELECT pg_advisory_lock(1)", "+advisory_lock"),
                Arguments.of("SELECT pg_try_advisory_lock_shared(1, 2)", "+advisory_lock"),
                Arguments.of("SELECT x FROM t WHERE pg_try_advisory_lock(t.id)", "+advisory_lock"),
                Arguments.of("SELECT \"pg_advisory_lock\"(1)", "+advisory_lock"),
                Arguments.of("EXPLAIN SELECT pg_advisory_lock(1)", "+advisory_lock"),
                Arguments.of("SELECT pg_advisory_unlock_all()", "-advisory_lock"),
                Arguments.of("select PG_ADVISORY_UNLOCK_ALL ( ) ;", "-advisory_lock"),
                Arguments.of("SELECT pg_advisory_unlock_all() FROM t WHERE false", "~advisory_lock"),
                Arguments.of("SELECT 1, pg_advisory_unlock_all()", "~advisory_lock"),
                Arguments.of("SELECT pg_advisory_unlock(1)", "~advisory_lock"),
                Arguments.of("SELECT pg_advisory_lock(1); SELECT pg_advisory_unlock_all()", "+advisory_lock -advisory_lock"),
                // DO blocks
                Arguments.of("DO $$ BEGIN PERFORM pg_advisory_lock(1); END $$", "+advisory_lock"),
                Arguments.of("DO $body$ BEGIN SET search_path = x; END $body$", "+set"),
                Arguments.of("DO $$ BEGIN SET LOCAL search_path = x; END $$", ""),
                Arguments.of("DO $$ BEGIN IF true THEN LISTEN x; END IF; END $$", "+listen"),
                Arguments.of("DO $$ BEGIN CREATE TEMP TABLE t (a int); END $$", "+temp_table"),
                Arguments.of("DO $$DECLARE c refcursor; BEGIN OPEN c FOR SELECT 1; END$$", ""),
                Arguments.of("DO $b$ DECLARE a$b int; BEGIN a$b := 1; LISTEN x; END$b$", "+listen"),
                Arguments.of("DO $$ BEGIN PERFORM 1; END$$; SELECT a$b", ""),
                Arguments.of("DO $$ BEGIN RAISE NOTICE 'LISTEN $x$'; END $$ LANGUAGE plpgsql", ""),
                Arguments.of("DO LANGUAGE plpgsql $f$ BEGIN PERFORM 1; END $f$; LISTEN a", "+listen"),
                Arguments.of("DO $$ BEGIN EXECUTE 'SET search_path = x'; END $$", "+unknown"),
                Arguments.of("DO LANGUAGE plpython3u $$ plpy.execute('x') $$", "+unknown"),
                Arguments.of("DO $$ plpy.execute('x') $$ LANGUAGE plperl", "+unknown"),
                Arguments.of("DO 'BEGIN NULL; END'", "+unknown"),
                Arguments.of("DO $$ BEGIN RAISE NOTICE '$$'; END $$", "+unknown"),
                Arguments.of("DO $x$ BEGIN DO $y$ BEGIN END $y$; END $x$", "+unknown"),
                Arguments.of("DO $$ BEGIN PERFORM 1; END", "+unknown"),
                // temporary tables
                Arguments.of("CREATE TEMP TABLE t (a int)", "+temp_table"),
                Arguments.of("create temporary table t as select 1", "+temp_table"),
                Arguments.of("CREATE TEMP TABLE t (a int) ON COMMIT DROP", ""),
                Arguments.of("CREATE TEMP TABLE t (a int) ON COMMIT DELETE ROWS", "+temp_table"),
                Arguments.of("CREATE GLOBAL TEMPORARY TABLE t (a int)", "+temp_table"),
                Arguments.of("CREATE LOCAL TEMP TABLE t (a int)", "+temp_table"),
                Arguments.of("CREATE OR REPLACE TEMP VIEW v AS SELECT 1", "+temp_table"),
                Arguments.of("CREATE TEMP SEQUENCE s", "+temp_table"),
                Arguments.of("SELECT 1 AS a INTO TEMP t", "+temp_table"),
                Arguments.of("SELECT * INTO TEMPORARY TABLE t FROM x", "+temp_table"),
                Arguments.of("WITH x AS (SELECT 1) SELECT * INTO TEMP t FROM x", "+temp_table"),
                Arguments.of("DROP TABLE t", "~temp_table"),
                Arguments.of("DISCARD TEMP", "-temp_table"),
                Arguments.of("DISCARD TEMPORARY", "-temp_table"),
                Arguments.of("DISCARD PLANS", ""),
                Arguments.of("DISCARD SEQUENCES", ""),
                Arguments.of("DISCARD ALL", discardAll),
                Arguments.of("SET search_path = x; LISTEN a; DISCARD ALL", "+set +listen " + discardAll),
                Arguments.of("DISCARD ALL; LISTEN a", "+listen " + discardAll.replace("-listen ", "")),
                // cursors
                Arguments.of("DECLARE c CURSOR WITH HOLD FOR SELECT 1", "+hold_cursor"),
                Arguments.of("DECLARE c NO SCROLL CURSOR WITH HOLD FOR SELECT 1", "+hold_cursor"),
                Arguments.of("DECLARE c CURSOR WITHOUT HOLD FOR SELECT 1", ""),
                Arguments.of("DECLARE c CURSOR FOR SELECT 1", ""),
                Arguments.of("CLOSE ALL", "-hold_cursor"),
                Arguments.of("CLOSE c", "~hold_cursor"),
                // SQL prepared statements
                Arguments.of("PREPARE p AS SELECT 1", "+sql_prepare"),
                Arguments.of("PREPARE p (int) AS SELECT $1", "+sql_prepare"),
                Arguments.of("PREPARE TRANSACTION 'x'", ""),
                Arguments.of("DEALLOCATE ALL", "-sql_prepare deallocate"),
                Arguments.of("DEALLOCATE PREPARE ALL", "-sql_prepare deallocate"),
                Arguments.of("DEALLOCATE p", "~sql_prepare"),
                Arguments.of("DEALLOCATE PREPARE p", "~sql_prepare"),
                // literals and lexing
                Arguments.of("SELECT 'it''s'; LISTEN x", "+listen"),
                Arguments.of("SELECT e'\\\\', 'x'; LISTEN a", "+listen"),
                Arguments.of("SELECT U&'d\\0061t\\+000061'; LISTEN a", "+listen"),
                Arguments.of("SELECT \"a\"\"b\"; LISTEN a", "+listen"),
                Arguments.of("SELECT a$b$c FROM t; LISTEN a", "+listen"),
                Arguments.of("SELECT 1.5e3, .5, 0x1F; LISTEN a", "+listen"),
                Arguments.of("SELECT 1-2/3--4\n; LISTEN a", "+listen"),
                Arguments.of("SELECT 'unterminated", "+unknown"),
                Arguments.of("SELECT \"unterminated", "+unknown"),
                Arguments.of("/* unterminated /* */", "+unknown"),
                Arguments.of("SELECT $a$ unterminated", "+unknown"),
                Arguments.of("SELECT $foo", "+unknown"),
                Arguments.of("SET application_name = 'é'; SELECT pg_advisory_lock(1)", "follows +advisory_lock"));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("statements")
    void classifiesWholeAndSplitAtEveryOffset(String sql, String expected) {
        byte[] query = cstring(sql);
        assertThat(describe(classifyQuery(query, query.length))).as("whole").isEqualTo(expected);
        for (int split = 0; split <= query.length; split++) {
            assertThat(describe(classifyQuery(query, split))).as("split at %d", split).isEqualTo(expected);
        }
        assertThat(describe(classifyQuery(query, 1, true))).as("byte by byte").isEqualTo(expected);
        byte[] parse = concat(cstring("S_1"), cstring(sql), PgMessages.int16(0));
        for (int split = 0; split <= parse.length; split++) {
            assertThat(describe(classify(parse, true, split, false))).as("Parse split at %d", split).isEqualTo(expected);
        }
    }

    @Test
    void standardConformingStringsOffMakesBackslashEscapeAQuote() {
        byte[] sql = cstring("SELECT 'a\\'; LISTEN x; --'");
        assertThat(describe(classifyQuery(sql, sql.length))).isEqualTo("+listen");
        PgStatementClassifier classifier = new PgStatementClassifier();
        classifier.standardConformingStrings(false);
        feed(classifier, sql, false, 5, false);
        assertThat(describe(classifier)).isEqualTo("");
    }

    @Test
    void textEndsAtItsTerminatorAndWithoutOne() {
        byte[] trailing = concat(cstring("SELECT 1"), "LISTEN x".getBytes(StandardCharsets.UTF_8));
        assertThat(describe(classifyQuery(trailing, 3))).isEqualTo("");
        byte[] unterminated = "LISTEN x".getBytes(StandardCharsets.UTF_8);
        assertThat(describe(classifyQuery(unterminated, 3))).isEqualTo("+listen");
    }

    @Test
    void unknownExplainsWhy() {
        byte[] sql = cstring("DO $$ BEGIN EXECUTE 'x'; END $$");
        PgStatementClassifier classifier = classifyQuery(sql, sql.length);
        assertThat(classifier.unknown()).isTrue();
        assertThat(classifier.unknownReason()).contains("EXECUTE");
    }

    @Test
    void aBorrowedClassifierIsTheThreadsSpareAndTakesTheBorrowersSetting() {
        PgStatementClassifier first = PgStatementClassifier.borrow(false);
        byte[] sql = cstring("SELECT 'a\\'; LISTEN x; --'");
        feed(first, sql, false, 5, false);
        assertThat(describe(first)).as("standard_conforming_strings off").isEqualTo("");
        first.giveBack();

        PgStatementClassifier again = PgStatementClassifier.borrow(true);
        assertThat(again).as("the spare is reused").isSameAs(first);
        feed(again, sql, false, 5, false);
        assertThat(describe(again)).as("the setting is the new borrower's").isEqualTo("+listen");
        again.giveBack();
    }

    @Test
    void messagesSplitAcrossReadsOfTwoSessionsOnOneThreadKeepTheirOwnClassifiers() {
        byte[] listen = cstring("LISTEN x; SELECT '");
        byte[] set = cstring("SET search_path = a");
        ByteBuf a = Unpooled.wrappedBuffer(listen);
        ByteBuf b = Unpooled.wrappedBuffer(set);

        PgStatementClassifier first = PgStatementClassifier.borrow(true);
        first.beginQuery();
        first.accept(a, 0, 12);                          // session 1's Query ends in a later read
        PgStatementClassifier second = PgStatementClassifier.borrow(true);
        assertThat(second).as("the first is still reading").isNotSameAs(first);
        second.beginQuery();
        second.accept(b, 0, set.length);
        second.finish();
        assertThat(describe(second)).isEqualTo("+set");
        second.giveBack();                               // becomes the spare

        first.accept(a, 12, listen.length - 12);
        first.finish();
        assertThat(describe(first)).as("unterminated literal: unknown").isEqualTo("+listen +unknown");
        first.giveBack();                                // the thread has a spare: dropped
        assertThat(PgStatementClassifier.borrow(true)).isSameAs(second);
        a.release();
        b.release();
    }

    @Test
    void oneInstanceServesMessageAfterMessage() {
        PgStatementClassifier classifier = new PgStatementClassifier();
        feed(classifier, cstring("SELECT 'unterminated"), false, 4, false);
        assertThat(describe(classifier)).isEqualTo("+unknown");
        feed(classifier, cstring("DO $$ BEGIN PERFORM 1"), false, 4, false);
        assertThat(describe(classifier)).isEqualTo("+unknown");
        feed(classifier, cstring("SELECT 1"), false, 4, false);
        assertThat(describe(classifier)).isEqualTo("");
        feed(classifier, cstring("SET x.y = 1; SELECT set_config('a', 'b', false"), false, 4, false);
        assertThat(describe(classifier)).isEqualTo("+set");
        feed(classifier, cstring("select 2"), false, 4, false);
        assertThat(describe(classifier)).isEqualTo("");
    }

    @Test
    void applyHonoursEndsOnlyAfterSuccessOutsideATransaction() {
        int listenAndSet = PgPin.LISTEN.bit() | PgPin.SET.bit();
        PgStatementClassifier classifier = classifyQuery(cstring("UNLISTEN *; SELECT pg_advisory_lock(1)"), 3);
        int advisory = PgPin.ADVISORY_LOCK.bit();
        assertThat(classifier.apply(listenAndSet, true)).isEqualTo(PgPin.SET.bit() | advisory);
        assertThat(classifier.apply(listenAndSet, false)).isEqualTo(listenAndSet | advisory);
        // A lock taken before an error is held even though the unlock after it was in the same text.
        classifier = classifyQuery(cstring("SELECT pg_advisory_lock(1); SELECT 1/0; SELECT pg_advisory_unlock_all()"), 7);
        assertThat(classifier.apply(0, false)).isEqualTo(advisory);
        assertThat(classifier.apply(0, true)).isEqualTo(0);
    }

    @Test
    void randomGarbageNeverThrowsAndIgnoresChunking() {
        Random random = new Random(17);
        byte[] alphabet = "'\"$-/*;(),.eE\\ \n_aSETLISTENtemp01\u00e9".getBytes(StandardCharsets.UTF_8);
        for (int round = 0; round < 3000; round++) {
            byte[] text = new byte[random.nextInt(80)];
            for (int i = 0; i < text.length; i++) {
                text[i] = random.nextInt(8) == 0 ? (byte) random.nextInt(256) : alphabet[random.nextInt(alphabet.length)];
            }
            String whole = describe(classify(text, round % 2 == 0, text.length, false));
            String chunked = describe(classify(text, round % 2 == 0, 1 + random.nextInt(7), true));
            assertThat(chunked).as("round %d", round).isEqualTo(whole);
        }
    }

    // ------------------------------------------------------------------ helpers

    private static PgStatementClassifier classifyQuery(byte[] body, int split) {
        return classify(body, false, split, false);
    }

    private static PgStatementClassifier classifyQuery(byte[] body, int chunk, boolean repeat) {
        return classify(body, false, chunk, repeat);
    }

    private static PgStatementClassifier classify(byte[] body, boolean parse, int split, boolean repeat) {
        PgStatementClassifier classifier = new PgStatementClassifier();
        feed(classifier, body, parse, split, repeat);
        return classifier;
    }

    /**
     * Feeds {@code body} from inside a larger buffer (so indexes are absolute), cut at {@code split}, or
     * into pieces of {@code split} bytes when {@code repeat}.
     */
    private static void feed(PgStatementClassifier classifier, byte[] body, boolean parse, int split, boolean repeat) {
        byte[] framed = concat(new byte[] {'x', 'y', 'z'}, body, new byte[] {'\'', '$'});
        ByteBuf buf = Unpooled.wrappedBuffer(framed);
        if (parse) {
            classifier.beginParse();
        } else {
            classifier.beginQuery();
        }
        List<int[]> pieces = new ArrayList<>();
        if (repeat) {
            for (int at = 0; at < body.length; at += split) {
                pieces.add(new int[] {at, Math.min(split, body.length - at)});
            }
        } else {
            pieces.add(new int[] {0, Math.min(split, body.length)});
            pieces.add(new int[] {Math.min(split, body.length), body.length - Math.min(split, body.length)});
        }
        for (int[] piece : pieces) {
            classifier.accept(buf, 3 + piece[0], piece[1]);
        }
        classifier.finish();
        assertThat(buf.readerIndex()).isZero();
        buf.release();
    }

    static String describe(PgStatementClassifier classifier) {
        List<String> parts = new ArrayList<>();
        for (PgPin pin : PgPin.of(classifier.pinsStarted())) {
            parts.add("+" + pin.label());
        }
        for (PgPin pin : PgPin.of(classifier.pinsEnded())) {
            parts.add("-" + pin.label());
        }
        for (PgPin pin : PgPin.of(classifier.pinsMaybeEnded())) {
            parts.add("~" + pin.label());
        }
        if (classifier.followsClient()) {
            parts.add(0, "follows");
        }
        if (classifier.deallocatesAll()) {
            parts.add("deallocate");
        }
        return String.join(" ", parts);
    }
}
