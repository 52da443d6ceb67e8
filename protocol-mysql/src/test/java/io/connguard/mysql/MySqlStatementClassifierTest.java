package io.connguard.mysql;

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

import static org.assertj.core.api.Assertions.assertThat;

class MySqlStatementClassifierTest {

    /**
     * The rule table: COM_QUERY text → outcome. {@code +r} pin r started, {@code -r} ended, {@code ~r} may have
     * ended, {@code follows} a tracked variable or the schema changed, {@code lastid} reads LAST_INSERT_ID,
     * {@code previous} reads the previous statement's result; "" nothing at all.
     */
    static Stream<Arguments> statements() {
        return Stream.of(
                // nothing to see
                Arguments.of("SELECT 1", ""),
                Arguments.of("", ""),
                Arguments.of("SELECT 1; ; ;", ""),
                Arguments.of("SELECT 'SET @x = 1'", ""),
                Arguments.of("SELECT \"LOCK TABLES t\"", ""),
                Arguments.of("/* LOCK TABLES t WRITE */ SELECT 1", ""),
                Arguments.of("/*+ MAX_EXECUTION_TIME(1) */ SELECT 1", ""),
                Arguments.of("-- SET @x = 1\nSELECT 1", ""),
                Arguments.of("# SET @x = 1\nSELECT 1", ""),
                Arguments.of("SELECT 1 # GET_LOCK('a', 1)", ""),
                Arguments.of("SELECT `GET_LOCK` FROM t", ""),
                Arguments.of("SELECT @x, @y + 1 FROM t WHERE a = @x", ""),
                Arguments.of("SELECT @x = 1", ""),
                Arguments.of("UPDATE t SET a = 1 WHERE b = 'SET @x = 1'", ""),
                Arguments.of("INSERT INTO t VALUES ('it''s', \"a \\\" b\", 'c\\'d'); SELECT 2", ""),
                Arguments.of("SELECT 'naïve — ünïcödé 😀', `tåble`", ""),
                Arguments.of("BEGIN; UPDATE t SET a = 1; COMMIT", ""),
                Arguments.of("START TRANSACTION WITH CONSISTENT SNAPSHOT", ""),
                Arguments.of("SELECT * FROM t FOR UPDATE", ""),
                Arguments.of("CALL p(@x)", ""),
                Arguments.of("SELECT 1 INTO OUTFILE '/tmp/x'", ""),
                Arguments.of("CREATE TABLE temporary_rows (a int)", ""),
                Arguments.of("CREATE USER 'a'@'%' IDENTIFIED BY 'x'", ""),
                Arguments.of("SELECT 5--2", ""),
                Arguments.of("SELECT 1-2/3*4, 0x1F, 1.5e3, b'01', x'4142', _utf8mb4'x' COLLATE utf8mb4_bin", ""),
                Arguments.of("KILL QUERY 12", ""),
                // user variables
                Arguments.of("SET @x = 1", "+user_variable"),
                Arguments.of("set @x:=1", "+user_variable"),
                Arguments.of("SET @`x y` = 1", "+user_variable"),
                Arguments.of("SET @'x' = 1, @\"y\" = 2", "+user_variable"),
                Arguments.of("SELECT a INTO @a FROM t LIMIT 1", "+user_variable"),
                Arguments.of("SELECT a, b FROM t LIMIT 1 INTO @a, @b", "+user_variable"),
                Arguments.of("SELECT @rownum := @rownum + 1 FROM t", "+user_variable"),
                Arguments.of("SELECT @r:=1", "+user_variable"),
                Arguments.of("UPDATE t SET a = (@old := a) + 1", "+user_variable"),
                Arguments.of("SET time_zone = '+00:00', @x = 1", "follows +user_variable"),
                Arguments.of("SELECT 1; SET @x = 2; SELECT 3", "+user_variable"),
                Arguments.of("SELECT 'x' INTO @`v`", "+user_variable"),
                Arguments.of("LOAD DATA LOCAL INFILE 'f.csv' INTO TABLE t (a, @skip, c) SET b = NOW()", "+user_variable"),
                Arguments.of("LOAD DATA LOCAL INFILE 'f.csv' INTO TABLE t (a, b) SET c = @@session.time_zone", ""),
                // system variables and the schema follow the client
                Arguments.of("SET time_zone = '+00:00'", "follows"),
                Arguments.of("SET SESSION sql_mode = 'ANSI_QUOTES'", "follows"),
                Arguments.of("SET LOCAL autocommit = 0", "follows"),
                Arguments.of("SET @@session.time_zone = 'UTC'", "follows"),
                Arguments.of("SET @@time_zone = 'UTC'", "follows"),
                Arguments.of("SET @@local.sql_mode = ''", "follows"),
                Arguments.of("set autocommit=1", "follows"),
                Arguments.of("SET NAMES utf8mb4 COLLATE utf8mb4_unicode_ci", "follows"),
                Arguments.of("SET NAMES 'latin1'", "follows"),
                Arguments.of("SET CHARACTER SET utf8", "follows"),
                Arguments.of("SET CHARSET utf8", "follows"),
                Arguments.of("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED", "follows"),
                Arguments.of("SET transaction_isolation = 'READ-COMMITTED'", "follows"),
                Arguments.of("SET GLOBAL max_connections = 10, SESSION wait_timeout = 5", "follows"),
                Arguments.of("USE test", "follows"),
                Arguments.of("use `test`; SELECT 1", "follows"),
                Arguments.of("SET default.key_buffer_size = 1", "follows"),
                // not session state
                Arguments.of("SET GLOBAL max_connections = 10", ""),
                Arguments.of("SET @@global.max_connections = 10", ""),
                Arguments.of("SET PERSIST max_connections = 10", ""),
                Arguments.of("SET GLOBAL a = 1, b = 2", ""),
                Arguments.of("SET GLOBAL TRANSACTION ISOLATION LEVEL SERIALIZABLE", ""),
                Arguments.of("SET PASSWORD FOR 'u'@'%' = PASSWORD('x')", ""),
                Arguments.of("SET DEFAULT ROLE r FOR u", ""),
                Arguments.of("SET STATEMENT max_statement_time = 1 FOR SELECT SLEEP(2)", ""),
                Arguments.of("SET STATEMENT sql_mode = '' FOR CREATE TEMPORARY TABLE t (a int)", "+temp_table"),
                Arguments.of("SET STATEMENT a = 1, b = 2 FOR SELECT GET_LOCK('a', 1)", "+get_lock"),
                // next-statement pins
                Arguments.of("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", "+next_transaction"),
                Arguments.of("SET TRANSACTION READ ONLY; START TRANSACTION", ""),
                Arguments.of("SELECT SQL_CALC_FOUND_ROWS * FROM t LIMIT 10", "+found_rows"),
                Arguments.of("SELECT SQL_CALC_FOUND_ROWS * FROM t LIMIT 10; SELECT FOUND_ROWS()", "previous"),
                Arguments.of("SELECT FOUND_ROWS()", "previous"),
                Arguments.of("SELECT FOUND_ROWS(); SELECT SQL_CALC_FOUND_ROWS a FROM t", "previous +found_rows"),
                Arguments.of("SELECT SQL_CALC_FOUND_ROWS * FROM t; SET @a = 1", "+user_variable +found_rows"),
                Arguments.of("/*!40001 SQL_CALC_FOUND_ROWS */", "+found_rows"),
                // LAST_INSERT_ID and the previous statement
                Arguments.of("SELECT LAST_INSERT_ID()", "lastid"),
                Arguments.of("select last_insert_id ( )", "lastid"),
                Arguments.of("INSERT INTO t (a) VALUES (1); SELECT LAST_INSERT_ID()", "lastid"),
                Arguments.of("INSERT INTO child (parent) VALUES (LAST_INSERT_ID())", "lastid"),
                Arguments.of("SELECT @@last_insert_id, @@identity", "lastid"),
                Arguments.of("SELECT @@session.last_insert_id", "lastid"),
                Arguments.of("UPDATE seq SET id = LAST_INSERT_ID(id + 1)", ""),
                Arguments.of("INSERT INTO t (a) VALUES (1) ON DUPLICATE KEY UPDATE id = LAST_INSERT_ID(id)", ""),
                Arguments.of("SET STATEMENT a = 1 FOR UPDATE seq SET id = LAST_INSERT_ID(id + 1)", ""),
                Arguments.of("DO LAST_INSERT_ID(9)", "+last_insert_id"),
                Arguments.of("SELECT LAST_INSERT_ID(5)", "+last_insert_id"),
                Arguments.of("SET insert_id = 5", "+last_insert_id"),
                Arguments.of("SET @@last_insert_id = 5", "+last_insert_id"),
                Arguments.of("SELECT ROW_COUNT()", "previous"),
                Arguments.of("SHOW WARNINGS", "previous"),
                Arguments.of("SHOW COUNT(*) ERRORS", "previous"),
                Arguments.of("SELECT @@warning_count", "previous"),
                Arguments.of("GET DIAGNOSTICS @n = NUMBER", "previous +user_variable"),
                Arguments.of("SHOW TABLES", ""),
                // temporary tables
                Arguments.of("CREATE TEMPORARY TABLE t (a int)", "+temp_table"),
                Arguments.of("create temporary table if not exists t select 1", "+temp_table"),
                Arguments.of("CREATE OR REPLACE TEMPORARY TABLE test.t (a int)", "+temp_table"),
                Arguments.of("CREATE TEMPORARY SEQUENCE s", "+temp_table"),
                Arguments.of("CREATE TEMPORARY TABLE t (a int); DROP TEMPORARY TABLE t", "+temp_table -temp_table"),
                Arguments.of("CREATE TEMPORARY TABLE `a``b` (a int); DROP TEMPORARY TABLE `a``b`", "+temp_table -temp_table"),
                Arguments.of("CREATE TEMPORARY TABLE t (a int); DROP TEMPORARY TABLE T", "+temp_table ~temp_table"),
                Arguments.of("CREATE TEMPORARY TABLE t (a int); DROP TEMPORARY TABLE IF EXISTS t", "+temp_table ~temp_table"),
                Arguments.of("CREATE TEMPORARY TABLE t (a int); DROP TABLE t", "+temp_table ~temp_table"),
                Arguments.of("CREATE TEMPORARY TABLE test.t (a int); DROP TEMPORARY TABLE test.t", "+temp_table -temp_table"),
                Arguments.of("CREATE TEMPORARY TABLE a (x int); CREATE TEMPORARY TABLE b (x int); "
                        + "DROP TEMPORARY TABLE a, b", "+temp_table -temp_table"),
                Arguments.of("CREATE TEMPORARY TABLE a (x int); CREATE TEMPORARY TABLE b (x int); "
                        + "DROP TEMPORARY TABLE a", "+temp_table ~temp_table"),
                Arguments.of("DROP TABLE t", "~temp_table"),
                Arguments.of("DROP TEMPORARY TABLE t", "~temp_table"),
                Arguments.of("DROP DATABASE d", ""),
                // LOCK TABLES
                Arguments.of("LOCK TABLES t READ", "+lock_tables"),
                Arguments.of("lock table t1 write, t2 read local", "+lock_tables"),
                Arguments.of("UNLOCK TABLES", "-lock_tables"),
                Arguments.of("LOCK TABLES t WRITE; UNLOCK TABLES", "+lock_tables -lock_tables"),
                Arguments.of("FLUSH TABLES WITH READ LOCK", "+lock_tables"),
                Arguments.of("FLUSH TABLES t1, t2 WITH READ LOCK", "+lock_tables"),
                Arguments.of("FLUSH TABLES t FOR EXPORT", "+lock_tables"),
                Arguments.of("FLUSH TABLES", ""),
                Arguments.of("LOCK INSTANCE FOR BACKUP", "+unknown"),
                Arguments.of("BACKUP LOCK t", "+unknown"),
                Arguments.of("BACKUP UNLOCK", ""),
                // GET_LOCK
                Arguments.of("SELECT GET_LOCK('a', 10)", "+get_lock"),
                Arguments.of("DO get_lock('a', 0)", "+get_lock"),
                Arguments.of("SELECT x FROM t WHERE GET_LOCK(CONCAT('job', t.id), 0)", "+get_lock"),
                Arguments.of("SELECT `get_lock`('a', 1)", "+get_lock"),
                Arguments.of("SELECT RELEASE_ALL_LOCKS()", "-get_lock"),
                Arguments.of("do release_all_locks ( ) ;", "-get_lock"),
                Arguments.of("SELECT RELEASE_ALL_LOCKS() FROM dual WHERE 1 = 0", "~get_lock"),
                Arguments.of("SELECT 1, RELEASE_ALL_LOCKS()", "~get_lock"),
                Arguments.of("SELECT RELEASE_LOCK('a')", "~get_lock"),
                Arguments.of("SELECT GET_LOCK('a', 1); SELECT RELEASE_ALL_LOCKS()", "+get_lock -get_lock"),
                Arguments.of("SELECT RELEASE_ALL_LOCKS(); SELECT GET_LOCK('a', 1)", "+get_lock"),
                Arguments.of("SELECT IS_FREE_LOCK('a')", ""),
                // SQL prepared statements
                Arguments.of("PREPARE s FROM 'SELECT ?'", "+sql_prepare"),
                Arguments.of("PREPARE s FROM @sql", "+sql_prepare"),
                Arguments.of("PREPARE s FROM 'SELECT 1'; EXECUTE s; DEALLOCATE PREPARE s", "+sql_prepare -sql_prepare"),
                Arguments.of("PREPARE s FROM 'SELECT 1'; DROP PREPARE S", "+sql_prepare -sql_prepare"),
                Arguments.of("PREPARE s FROM 'SET @x = 1'; EXECUTE s", "+user_variable +sql_prepare"),
                Arguments.of("PREPARE s FROM 'SELECT GET_LOCK(?, 1)'; EXECUTE s USING @n", "+get_lock +sql_prepare"),
                Arguments.of("PREPARE s FROM 'SELECT ''it''''s'', LAST_INSERT_ID()'; EXECUTE s", "lastid +sql_prepare"),
                Arguments.of("PREPARE s FROM 'CREATE TEMPORARY TABLE t (a int)'; EXECUTE s; DROP TEMPORARY TABLE t; "
                        + "DEALLOCATE PREPARE s", "+temp_table +sql_prepare -sql_prepare ~temp_table"),
                Arguments.of("PREPARE s FROM @sql; EXECUTE s", "+sql_prepare +unknown"),
                Arguments.of("PREPARE s FROM 'SELECT 1'; PREPARE t FROM 'SELECT 2'; DEALLOCATE PREPARE s",
                        "+sql_prepare ~sql_prepare"),
                Arguments.of("DEALLOCATE PREPARE s", "~sql_prepare"),
                Arguments.of("EXECUTE s", "+unknown"),
                Arguments.of("EXECUTE IMMEDIATE 'SELECT 1'", ""),
                Arguments.of("EXECUTE IMMEDIATE 'SET @a = 1'", "+user_variable"),
                Arguments.of("EXECUTE IMMEDIATE 'UNLOCK TABLES'", "~lock_tables"),
                Arguments.of("EXECUTE IMMEDIATE \"SELECT GET_LOCK('x', 1)\"", "+get_lock"),
                Arguments.of("EXECUTE IMMEDIATE 'SELECT \\'GET_LOCK(\\''", ""),
                Arguments.of("EXECUTE IMMEDIATE CONCAT('SET @', 'a = 1')", "+unknown"),
                Arguments.of("SELECT 1); PREPARE s FROM 'SET @x = 1'; EXECUTE s", "+user_variable +sql_prepare"),
                // found by fuzzing: a literal after unbalanced parentheses is not read as the statement's text
                Arguments.of("PREPARE s) 'SET @x = 1'; EXECUTE s", "+sql_prepare +unknown"),
                Arguments.of("PREPARE a FROM 'SELECT 1'; PREPARE s) 'SET @x = 1'; EXECUTE s", "+sql_prepare +unknown"),
                // executable comments are code
                Arguments.of("/*!40101 SET @OLD_SQL_MODE = @@SQL_MODE */", "+user_variable"),
                Arguments.of("/*!50700 LOCK TABLES t WRITE */", "+lock_tables"),
                Arguments.of("/*!50700 UNLOCK TABLES */", "~lock_tables"),
                Arguments.of("/*M!100100 UNLOCK TABLES */; UNLOCK TABLES", "-lock_tables"),
                Arguments.of("/*!UNLOCK TABLES */", "-lock_tables"),
                Arguments.of("/*!40101 SELECT RELEASE_ALL_LOCKS() */", "~get_lock"),
                Arguments.of("/*!*/ SELECT 1", ""),
                Arguments.of("/*M!100100 SELECT GET_LOCK('a', 1) */", "+get_lock"),
                Arguments.of("/*M SELECT GET_LOCK('a', 1) */", ""),
                Arguments.of("SELECT /*! GET_LOCK('a', 1), */ 2", "+get_lock"),
                Arguments.of("SELECT 1 /*!, 2*3 */", ""),
                Arguments.of("/*!40101 SET NAMES utf8mb4 */; /*!40014 SET FOREIGN_KEY_CHECKS=0 */", "follows"),
                Arguments.of("/*! SELECT 1 /* nested */ */", "+unknown"),
                Arguments.of("/*!40101 SELECT 1", "+unknown"),
                // stored programs and compound statements: ends are uncertain
                Arguments.of("CREATE PROCEDURE p() BEGIN UNLOCK TABLES; SET @x = 1; END", "+user_variable ~lock_tables"),
                Arguments.of("CREATE DEFINER = 'a'@'%' FUNCTION f() RETURNS INT RETURN 1", ""),
                Arguments.of("BEGIN NOT ATOMIC SELECT RELEASE_ALL_LOCKS(); END", "~get_lock"),
                Arguments.of("IF @a THEN UNLOCK TABLES; END IF", "~lock_tables"),
                Arguments.of("lbl: LOOP LEAVE lbl; END LOOP; UNLOCK TABLES", "~lock_tables"),
                // untracked state
                Arguments.of("XA START 'x'", "+unknown"),
                Arguments.of("XA COMMIT 'x'", ""),
                Arguments.of("HANDLER t OPEN", "+unknown"),
                Arguments.of("SET ROLE r", "+unknown"),
                Arguments.of("SET", "+unknown"),
                Arguments.of("SET @", "+unknown"),
                Arguments.of("SET @@session.", "+unknown"),
                // lexing
                Arguments.of("SELECT 'a\\'; SET @x = 1; -- '", ""),
                Arguments.of("SELECT \"a\\\"; SET @x = 1; -- \"", ""),
                Arguments.of("SELECT `a\\`; SET @x = 1", "+user_variable"),
                Arguments.of("SELECT 1 --x\n; SET @x = 1", "+user_variable"),
                Arguments.of("SELECT 1 --\tx\n; SELECT 2", ""),
                Arguments.of("SELECT 1 --", ""),
                Arguments.of("SELECT 1 -- x\r; SET @x = 1", ""),
                Arguments.of("SELECT '", "+unknown"),
                Arguments.of("SELECT \"", "+unknown"),
                Arguments.of("SELECT `", "+unknown"),
                Arguments.of("/* unterminated", "+unknown"),
                Arguments.of("SELECT 1 /* a /* b */ ; SET @x = 1", "+user_variable"),
                Arguments.of("SELECT '\u0000'", ""),
                Arguments.of("SELECT 1\u0000", "+unknown"),
                Arguments.of("SET @x = 1; SELECT RELEASE_ALL_LOCKS(); LOCK TABLES t READ; SELECT LAST_INSERT_ID()",
                        "lastid +user_variable +lock_tables -get_lock"));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("statements")
    void classifiesWholeSplitAtEveryOffsetAndByteByByte(String sql, String expected) {
        byte[] text = sql.getBytes(StandardCharsets.UTF_8);
        assertThat(describe(classify(text, text.length, false))).as("whole").isEqualTo(expected);
        for (int split = 0; split <= text.length; split++) {
            assertThat(describe(classify(text, split, false))).as("split at %d", split).isEqualTo(expected);
        }
        assertThat(describe(classify(text, 1, true))).as("byte by byte").isEqualTo(expected);
    }

    @Test
    void setNamesReportsItsCollation() {
        MySqlStatementClassifier classifier = new MySqlStatementClassifier();
        feed(classifier, "SET NAMES utf8mb4 COLLATE utf8mb4_Unicode_CI".getBytes(StandardCharsets.UTF_8), 1, true);
        assertThat(classifier.namesCollation()).isEqualTo("utf8mb4_unicode_ci");
        feed(classifier, "SET NAMES 'latin1' COLLATE 'latin1_bin', time_zone = 'UTC'".getBytes(StandardCharsets.UTF_8), 3, true);
        assertThat(classifier.namesCollation()).isEqualTo("latin1_bin");
        feed(classifier, "SET NAMES utf8mb4; SELECT 'a' COLLATE utf8mb4_bin".getBytes(StandardCharsets.UTF_8), 3, true);
        assertThat(classifier.namesCollation()).isNull();
        feed(classifier, "SET time_zone = 'UTC' COLLATE utf8mb4_bin".getBytes(StandardCharsets.UTF_8), 3, true);
        assertThat(classifier.namesCollation()).isNull();
    }

    @Test
    void theTableIsLarge() {
        assertThat(statements().count()).isGreaterThanOrEqualTo(100);
    }

    @Test
    void noBackslashEscapesAndAnsiQuotesFollowSqlMode() {
        byte[] single = "SELECT 'a\\'; SET @x = 1; -- '".getBytes(StandardCharsets.UTF_8);
        MySqlStatementClassifier classifier = new MySqlStatementClassifier();
        classifier.sqlMode(true, false);
        feed(classifier, single, 4, true);
        assertThat(describe(classifier)).isEqualTo("+user_variable");
        byte[] dquote = "SELECT \"a\\\"; SET @x = 1; -- \"".getBytes(StandardCharsets.UTF_8);
        classifier.sqlMode(false, true);
        feed(classifier, dquote, 3, true);
        assertThat(describe(classifier)).isEqualTo("+user_variable");
        classifier.sqlMode(false, false);
        feed(classifier, dquote, 3, true);
        assertThat(describe(classifier)).isEqualTo("");
    }

    @Test
    void sqlModeFollowsTheStatusFlagsOfOkPackets() {
        MySqlStatementClassifier classifier = new MySqlStatementClassifier();
        byte[] dquote = "SELECT \"a\\\"; SET @x = 1; -- \"".getBytes(StandardCharsets.UTF_8);
        // the status MariaDB 10.11 sent after SET sql_mode = 'ANSI_QUOTES' (MySqlSessionStateTest)
        classifier.followStatus(0xC000);
        feed(classifier, dquote, 2, true);
        assertThat(describe(classifier)).isEqualTo("+user_variable");
        byte[] single = "SELECT 'a\\'; SET @x = 1; -- '".getBytes(StandardCharsets.UTF_8);
        classifier.followStatus(0x0202);
        feed(classifier, single, 2, true);
        assertThat(describe(classifier)).isEqualTo("+user_variable");
        classifier.followStatus(0x0002);
        feed(classifier, single, 2, true);
        assertThat(describe(classifier)).isEqualTo("");
    }

    @Test
    void temporaryTablesAreCountedAcrossCommandsAndEndOnlyAfterSuccess() {
        MySqlStatementClassifier classifier = new MySqlStatementClassifier();
        int pins = run(classifier, 0, "CREATE TEMPORARY TABLE a (x int)", true);
        pins = run(classifier, pins, "USE other; CREATE TEMPORARY TABLE a (x int)", true);
        assertThat(MySqlPin.of(pins)).containsExactly(MySqlPin.TEMP_TABLE);
        assertThat(classifier.names().tempCount()).isEqualTo(2);
        // the same name exists in two databases: one drop leaves the other
        pins = run(classifier, pins, "DROP TEMPORARY TABLE a", true);
        assertThat(MySqlPin.of(pins)).containsExactly(MySqlPin.TEMP_TABLE);
        // a failed drop drops nothing
        pins = run(classifier, pins, "DROP TEMPORARY TABLE a", false);
        assertThat(MySqlPin.of(pins)).containsExactly(MySqlPin.TEMP_TABLE);
        assertThat(classifier.names().tempCount()).isEqualTo(1);
        pins = run(classifier, pins, "drop temporary table a", true);
        assertThat(pins).isZero();
        assertThat(classifier.names().tempCount()).isZero();
    }

    @Test
    void preparedStatementsEndWithTheirLastDeallocate() {
        MySqlStatementClassifier classifier = new MySqlStatementClassifier();
        int pins = run(classifier, 0, "PREPARE a FROM 'SELECT 1'", true);
        pins = run(classifier, pins, "PREPARE b FROM 'SELECT GET_LOCK(?, 1)'", true);
        pins = run(classifier, pins, "PREPARE A FROM 'SELECT 2'", true);
        assertThat(classifier.names().preparedCount()).isEqualTo(2);
        pins = run(classifier, pins, "EXECUTE b USING @n", true);
        assertThat(MySqlPin.of(pins)).containsExactlyInAnyOrder(MySqlPin.SQL_PREPARE, MySqlPin.GET_LOCK);
        pins = run(classifier, pins, "DEALLOCATE PREPARE a", true);
        assertThat(MySqlPin.of(pins)).contains(MySqlPin.SQL_PREPARE);
        pins = run(classifier, pins, "DEALLOCATE PREPARE b", false);
        assertThat(MySqlPin.of(pins)).contains(MySqlPin.SQL_PREPARE);
        pins = run(classifier, pins, "DEALLOCATE PREPARE b; SELECT RELEASE_ALL_LOCKS()", true);
        assertThat(pins).isZero();
        classifier.reset();
        assertThat(classifier.names()).isNull();
    }

    @Test
    void nextStatementPinsEndAtTheNextStatementThatUsesThem() {
        MySqlStatementClassifier classifier = new MySqlStatementClassifier();
        int pins = run(classifier, 0, "SELECT SQL_CALC_FOUND_ROWS * FROM t LIMIT 1", true);
        assertThat(MySqlPin.of(pins)).containsExactly(MySqlPin.FOUND_ROWS);
        pins = run(classifier, pins, "SET @@session.sql_mode = ''", true);
        assertThat(MySqlPin.of(pins)).containsExactly(MySqlPin.FOUND_ROWS);
        feed(classifier, "SELECT FOUND_ROWS()".getBytes(StandardCharsets.UTF_8), 4, false);
        assertThat(classifier.consumesNextStatementPins()).isTrue();
        assertThat(classifier.readsPreviousStatement()).isTrue();
        assertThat(classifier.apply(pins, true)).isZero();
        pins = run(classifier, 0, "SET TRANSACTION READ ONLY", true);
        assertThat(MySqlPin.of(pins)).containsExactly(MySqlPin.NEXT_TRANSACTION);
        assertThat(run(classifier, pins, "SHOW TABLES", true)).isEqualTo(pins);
        assertThat(run(classifier, pins, "SELECT 1", false)).isEqualTo(pins);
        assertThat(run(classifier, pins, "BEGIN", true)).isZero();
    }

    @Test
    void applyHonoursEndsOnlyAfterSuccess() {
        MySqlStatementClassifier classifier = new MySqlStatementClassifier();
        feed(classifier, "UNLOCK TABLES; SELECT GET_LOCK('a', 1)".getBytes(StandardCharsets.UTF_8), 5, false);
        int held = MySqlPin.LOCK_TABLES.bit() | MySqlPin.USER_VARIABLE.bit();
        assertThat(classifier.apply(held, true)).isEqualTo(MySqlPin.USER_VARIABLE.bit() | MySqlPin.GET_LOCK.bit());
        feed(classifier, "UNLOCK TABLES; SELECT GET_LOCK('a', 1)".getBytes(StandardCharsets.UTF_8), 5, false);
        assertThat(classifier.apply(held, false)).isEqualTo(held | MySqlPin.GET_LOCK.bit());
    }

    @Test
    void unknownExplainsWhy() {
        MySqlStatementClassifier classifier = new MySqlStatementClassifier();
        feed(classifier, "XA START 'a'".getBytes(StandardCharsets.UTF_8), 3, false);
        assertThat(classifier.unknown()).isTrue();
        assertThat(classifier.unknownReason()).contains("XA");
        feed(classifier, "SELECT 1".getBytes(StandardCharsets.UTF_8), 3, false);
        assertThat(classifier.unknown()).isFalse();
        assertThat(classifier.unknownReason()).isNull();
    }

    @Test
    void randomTextNeverThrowsAndIgnoresChunking() {
        Random random = new Random(19);
        byte[] alphabet = "'\"`@:=;()#-/*!M.,\\ \n_SETLOCKtablesINTOget_lockPREPAREfromEXECUTE01\u00e9"
                .getBytes(StandardCharsets.UTF_8);
        for (int round = 0; round < 4000; round++) {
            byte[] text = new byte[random.nextInt(90)];
            for (int i = 0; i < text.length; i++) {
                text[i] = random.nextInt(10) == 0 ? (byte) random.nextInt(256) : alphabet[random.nextInt(alphabet.length)];
            }
            String whole = describe(classify(text, text.length, false));
            String chunked = describe(classify(text, 1 + random.nextInt(7), true));
            assertThat(chunked).as("round %d: %s", round, new String(text, StandardCharsets.UTF_8)).isEqualTo(whole);
        }
    }

    // ------------------------------------------------------------------ helpers

    private static int run(MySqlStatementClassifier classifier, int pins, String sql, boolean succeeded) {
        feed(classifier, sql.getBytes(StandardCharsets.UTF_8), 3, true);
        return classifier.apply(pins, succeeded);
    }

    private static MySqlStatementClassifier classify(byte[] text, int split, boolean repeat) {
        MySqlStatementClassifier classifier = new MySqlStatementClassifier();
        feed(classifier, text, split, repeat);
        return classifier;
    }

    /**
     * Feeds {@code text} from inside a larger buffer (so indexes are absolute), cut at {@code split}, or into
     * pieces of {@code split} bytes when {@code repeat}.
     */
    private static void feed(MySqlStatementClassifier classifier, byte[] text, int split, boolean repeat) {
        byte[] framed = Packets.concat(new byte[] {'x', '\'', 3}, text, new byte[] {'\'', '/', '*'});
        ByteBuf buf = Unpooled.wrappedBuffer(framed);
        classifier.begin();
        List<int[]> pieces = new ArrayList<>();
        if (repeat) {
            for (int at = 0; at < text.length; at += split) {
                pieces.add(new int[] {at, Math.min(split, text.length - at)});
            }
        } else {
            pieces.add(new int[] {0, Math.min(split, text.length)});
            pieces.add(new int[] {Math.min(split, text.length), text.length - Math.min(split, text.length)});
        }
        for (int[] piece : pieces) {
            classifier.accept(buf, 3 + piece[0], piece[1]);
        }
        classifier.finish();
        assertThat(buf.readerIndex()).isZero();
        buf.release();
    }

    static String describe(MySqlStatementClassifier classifier) {
        List<String> parts = new ArrayList<>();
        if (classifier.followsClient()) {
            parts.add("follows");
        }
        if (classifier.readsLastInsertId()) {
            parts.add("lastid");
        }
        if (classifier.readsPreviousStatement()) {
            parts.add("previous");
        }
        for (MySqlPin pin : MySqlPin.of(classifier.pinsStarted())) {
            parts.add("+" + pin.label());
        }
        for (MySqlPin pin : MySqlPin.of(classifier.pinsEnded())) {
            parts.add("-" + pin.label());
        }
        for (MySqlPin pin : MySqlPin.of(classifier.pinsMaybeEnded())) {
            parts.add("~" + pin.label());
        }
        return String.join(" ", parts);
    }
}
