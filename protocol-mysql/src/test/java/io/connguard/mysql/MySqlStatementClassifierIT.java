package io.connguard.mysql;

import io.connguard.core.testing.Database;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.stream.Stream;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The lexing decisions of {@link MySqlStatementClassifier} checked against the server itself: each text
 * runs as one multi-statement COM_QUERY on MariaDB 10.11, and whether the server assigned {@code @x} must
 * be what the classifier says (a user variable pin), for comments, executable comments, quotes, escapes
 * and sql_mode.
 */
class MySqlStatementClassifierIT {

    static Stream<Arguments> texts() {
        return Stream.of(
                Arguments.of("SELECT 'a\\'; SET @x = 1; -- '", "", false),
                Arguments.of("SELECT 'a\\'; SET @x = 1; -- '", "NO_BACKSLASH_ESCAPES", true),
                Arguments.of("SELECT \"a\\\"; SET @x = 1; -- \"", "", false),
                Arguments.of("SELECT 1 AS \"a\\\"; SET @x = 1; -- \"", "ANSI_QUOTES", true),
                Arguments.of("SELECT 1 AS `a\\`; SET @x = 1", "", true),
                Arguments.of("SELECT '\\''; SET @x = 1", "", true),
                Arguments.of("SELECT 'it''s', \"it\"\"s\"; SET @x = 1", "", true),
                Arguments.of("SELECT 1 --1\n; SET @x = 1", "", true),
                Arguments.of("SELECT 1 --\tx\n; SET @x = 1", "", true),
                Arguments.of("SELECT 1 -- x\r; SET @x = 1", "", false),
                Arguments.of("SELECT 1 # x\n; SET @x = 1", "", true),
                Arguments.of("SELECT 1 # x; SET @x = 1", "", false),
                Arguments.of("SELECT 1 /* a /* b */ ; SET @x = 1", "", true),
                Arguments.of("SELECT 5--2; SET @x = 1", "", true),
                Arguments.of("/*!40101 SET @x = 1 */", "", true),
                Arguments.of("/*!40101 SELECT 1 */; SET @x = 1", "", true),
                Arguments.of("/*M!100100 SET @x = 1 */", "", true),
                Arguments.of("/*M SET @x = 1 */", "", false),
                Arguments.of("/* SET @x = 1 */ SELECT 1", "", false),
                Arguments.of("SELECT 1 /*!, 2 */; SET @x = 1", "", true),
                Arguments.of("SELECT _utf8mb4'x', x'41', b'1'; SET @x = 1", "", true),
                Arguments.of("SELECT 1 INTO @x", "", true),
                Arguments.of("SELECT @x := 1", "", true),
                Arguments.of("SELECT @x = 1", "", false),
                Arguments.of("SET STATEMENT max_statement_time = 10 FOR SELECT @x := 1", "", true),
                Arguments.of("PREPARE s FROM 'SET @x = 1'; EXECUTE s; DEALLOCATE PREPARE s", "", true),
                Arguments.of("PREPARE s FROM 'SELECT ''SET @x = 1'''; EXECUTE s; DEALLOCATE PREPARE s", "", false),
                Arguments.of("EXECUTE IMMEDIATE 'SET @x = 1'", "", true),
                Arguments.of("SELECT 'SET @x = 1'", "", false),
                // MariaDB 10.11 skips MySQL 5.7+ versions: a false pin, never a missed one
                Arguments.of("/*!50700 SET @x = 1 */", "", false),
                Arguments.of("/*M!999999 SET @x = 1 */", "", false));
    }

    @ParameterizedTest(name = "{0} [{1}]")
    @MethodSource("texts")
    void theServerAssignsTheVariableExactlyWhenTheClassifierPins(String sql, String sqlMode, boolean assigned)
            throws IOException {
        Database db = MySqlIt.database();
        try (RawMySql connection = new RawMySql(db.host(), db.port(), MySqlIt.NATIVE_USER, MySqlIt.NATIVE_PASSWORD,
                db.database())) {
            assertThat(connection.query("SET SESSION sql_mode = '" + sqlMode + "'").get(0)[0]).isZero();
            drain(connection, sql);
            assertThat(connection.row("SELECT @x IS NOT NULL")).as("the server assigned @x").containsExactly(assigned ? "1" : "0");
        }
        MySqlStatementClassifier classifier = new MySqlStatementClassifier();
        classifier.sqlMode(sqlMode.contains("NO_BACKSLASH_ESCAPES"), sqlMode.contains("ANSI_QUOTES"));
        byte[] text = sql.getBytes(StandardCharsets.UTF_8);
        ByteBuf buf = Unpooled.wrappedBuffer(text);
        classifier.begin();
        classifier.accept(buf, 0, text.length);
        classifier.finish();
        buf.release();
        boolean pinned = (classifier.pinsStarted() & MySqlPin.USER_VARIABLE.bit()) != 0;
        boolean skippedByServer = sql.startsWith("/*!50700") || sql.startsWith("/*M!999999");
        assertThat(pinned).as("the classifier pins").isEqualTo(assigned || skippedByServer);
    }

    /** Sends {@code sql} and reads every result of it (OK, ERR or text result sets) while more results exist. */
    private static void drain(RawMySql connection, String sql) throws IOException {
        connection.write(0, Packets.payload(MySqlCommand.COM_QUERY, sql));
        while (true) {
            byte[] first = connection.read();
            int header = first[0] & 0xFF;
            int status;
            if (header == 0xFF) {
                return;
            } else if (header == 0x00) {
                status = MySqlStatus.ok(first, Math.min(first.length, 32));
            } else {
                byte[] packet;
                do {
                    packet = connection.read();                  // column definitions up to their EOF
                } while (!((packet[0] & 0xFF) == 0xFE && packet.length < 9));
                do {
                    packet = connection.read();                  // rows up to their EOF
                    if ((packet[0] & 0xFF) == 0xFF) {
                        return;
                    }
                } while (!((packet[0] & 0xFF) == 0xFE && packet.length < 9));
                status = MySqlStatus.eof(packet, packet.length);
            }
            if ((status & MySqlCapabilities.SERVER_MORE_RESULTS_EXISTS) == 0) {
                return;
            }
        }
    }
}
