package io.connguard.mysql;

import io.connguard.core.testing.Database;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Session state tracking against the real server: what MariaDB reports in OK packets once
 * {@link MySqlSessionState#ENABLE_TRACKING} ran, and that replaying it on a fresh connection reproduces the
 * session.
 */
class MySqlSessionTrackingIT {

    private static final String STATE = "SELECT @@character_set_client, @@character_set_connection, @@character_set_results, "
            + "@@collation_connection, @@time_zone, @@autocommit, @@sql_mode, @@tx_isolation, @@wait_timeout, DATABASE()";

    @Test
    void whatAClientSetIsReportedAndReplayedOnAFreshConnection() throws IOException {
        Database db = MySqlIt.database();
        MySqlSessionState client = new MySqlSessionState(db.database());
        try (RawMySql first = open(db)) {
            assertThat(first.query(MySqlSessionState.ENABLE_TRACKING).get(0)[0]).isZero();

            MySqlSessionChanges names = run(first, "SET NAMES latin1", client);
            assertThat(names.variables()).containsKeys("character_set_client", "character_set_connection",
                    "character_set_results");
            assertThat(names.variables().get("character_set_client")).isEqualTo("latin1");

            assertThat(run(first, "SET time_zone = '+02:00'", client).variables()).containsEntry("time_zone", "+02:00");
            MySqlSessionChanges use = run(first, "USE information_schema", client);
            assertThat(use.schema()).isEqualTo("information_schema");
            assertThat(run(first, "SET autocommit = 0", client).variables()).containsEntry("autocommit", "OFF");
            run(first, "COMMIT", client);
            run(first, "SET sql_mode = 'ANSI_QUOTES,STRICT_ALL_TABLES', wait_timeout = 77", client);
            run(first, "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED", client);
            MySqlSessionChanges userVariable = run(first, "SET @x = 1", client);
            assertThat(userVariable.stateChanged()).isTrue();
            assertThat(userVariable.onlyUntracked()).isTrue();
            assertThat(client.ansiQuotes()).isTrue();
            assertThat(client.schema()).isEqualTo("information_schema");
            assertThat(client.lost()).isFalse();

            List<String> expected = first.row(STATE);
            assertThat(expected).containsSubsequence("latin1", "+02:00", "0");
            first.query("COMMIT");

            try (RawMySql second = open(db)) {
                assertThat(second.query(MySqlSessionState.ENABLE_TRACKING).get(0)[0]).isZero();
                MySqlSessionState server = new MySqlSessionState(db.database());
                assertThat(second.row(STATE)).isNotEqualTo(expected);
                MySqlSessionState.Replay replay = MySqlSessionState.replay(client, server);
                assertThat(replay.setStatement()).isNotNull();
                List<byte[]> set = second.query(replay.setStatement());
                assertThat(set.get(0)[0]).as("replay %s: %s", replay.setStatement(), new String(set.get(0))).isZero();
                server.apply(capture(set.get(0)));
                List<byte[]> init = second.command(Packets.payload(0x02, replay.schema()));
                assertThat(init.get(0)[0]).isZero();
                server.apply(capture(init.get(0)));
                assertThat(second.row(STATE)).isEqualTo(expected);
                assertThat(MySqlSessionState.replay(client, server).isEmpty())
                        .as("what the server reported after the replay is the client's state").isTrue();
            }
        }
    }

    @Test
    void aServerConnectionIsPutBackForAClientThatSetNothing() throws IOException {
        Database db = MySqlIt.database();
        try (RawMySql connection = open(db)) {
            connection.query(MySqlSessionState.ENABLE_TRACKING);
            List<String> fresh = connection.row(STATE);
            MySqlSessionState server = new MySqlSessionState(db.database());
            server.apply(capture(connection.query("SET time_zone = '-05:00', sql_mode = 'NO_BACKSLASH_ESCAPES', "
                    + "wait_timeout = 99, NAMES utf8mb4 COLLATE utf8mb4_bin").get(0)));
            server.apply(capture(connection.query("USE information_schema").get(0)));
            assertThat(server.noBackslashEscapes()).isTrue();
            assertThat(connection.row(STATE)).isNotEqualTo(fresh);
            MySqlSessionState.Replay replay = MySqlSessionState.replay(new MySqlSessionState(db.database()), server);
            assertThat(connection.query(replay.setStatement()).get(0)[0]).as(replay.setStatement()).isZero();
            assertThat(connection.command(Packets.payload(0x02, replay.schema())).get(0)[0]).isZero();
            assertThat(connection.row(STATE)).isEqualTo(fresh);
        }
    }

    @Test
    void characterSetsGoBackToTheLoginsNotToTheGlobals() throws IOException {
        Database db = MySqlIt.database();
        // a pool whose connections log in with latin1_swedish_ci, on a server whose globals are (here) utf8mb4
        try (RawMySql connection = new RawMySql(db.host(), db.port(), MySqlIt.NATIVE_USER, MySqlIt.NATIVE_PASSWORD,
                db.database(), 8)) {
            connection.query(MySqlSessionState.ENABLE_TRACKING);
            List<String> fresh = connection.row(STATE);
            List<String> values = connection.row(MySqlSessionState.BASELINE_QUERY);
            java.util.Map<String, String> baseline = new java.util.HashMap<>();
            for (int i = 0; i < values.size(); i++) {
                baseline.put(MySqlSessionState.LOGIN_VARIABLES.get(i), values.get(i));
            }
            assertThat(baseline).containsEntry("character_set_client", "latin1");
            MySqlSessionState server = new MySqlSessionState(db.database(), baseline);
            server.apply(capture(connection.query("SET NAMES utf8mb4 COLLATE utf8mb4_bin").get(0)));
            assertThat(connection.row(STATE)).isNotEqualTo(fresh);
            MySqlSessionState.Replay replay = MySqlSessionState.replay(new MySqlSessionState(db.database(), baseline), server);
            assertThat(replay.setStatement()).doesNotContain("DEFAULT");
            assertThat(connection.query(replay.setStatement()).get(0)[0]).as(replay.setStatement()).isZero();
            assertThat(connection.row(STATE)).isEqualTo(fresh);
        }
    }

    @Test
    void setNamesWithACollationIsReplayedWithIt() throws IOException {
        Database db = MySqlIt.database();
        MySqlSessionState client = new MySqlSessionState(db.database());
        MySqlStatementClassifier classifier = new MySqlStatementClassifier();
        String sql = "SET NAMES utf8mb4 COLLATE utf8mb4_unicode_ci";
        try (RawMySql first = open(db); RawMySql second = open(db)) {
            first.query(MySqlSessionState.ENABLE_TRACKING);
            second.query(MySqlSessionState.ENABLE_TRACKING);
            ByteBuf text = Unpooled.wrappedBuffer(sql.getBytes(java.nio.charset.StandardCharsets.UTF_8));
            classifier.begin();
            classifier.accept(text, 0, text.readableBytes());
            classifier.finish();
            text.release();
            MySqlSessionChanges changes = capture(first.query(sql).get(0));
            assertThat(changes.variables()).as("MariaDB leaves collation_connection out").doesNotContainKey("collation_connection");
            client.apply(changes, classifier.namesCollation());
            MySqlSessionState server = new MySqlSessionState(db.database());
            MySqlSessionState.Replay replay = MySqlSessionState.replay(client, server);
            assertThat(second.query(replay.setStatement()).get(0)[0]).as(replay.setStatement()).isZero();
            assertThat(second.row(STATE)).isEqualTo(first.row(STATE));
            assertThat(second.row("SELECT @@collation_connection")).containsExactly("utf8mb4_unicode_ci");
        }
    }

    @Test
    void aValueWithQuotesAndBackslashesIsReplayedAsHex() throws IOException {
        Database db = MySqlIt.database();
        try (RawMySql connection = open(db)) {
            connection.query(MySqlSessionState.ENABLE_TRACKING);
            String literal = MySqlSessionState.literal("it's a \\ test");
            MySqlSessionChanges changes = capture(connection.query("SET SESSION sql_mode = " + MySqlSessionState.literal(
                    "ANSI_QUOTES") + ", time_zone = " + MySqlSessionState.literal("+01:00")).get(0));
            assertThat(changes.variables()).containsEntry("time_zone", "+01:00");
            List<String> row = connection.row("SELECT " + literal);
            assertThat(row).containsExactly("it's a \\ test");
        }
    }

    @Test
    void lastInsertIdOfOneConnectionIsReadOnAnother() throws IOException {
        Database db = MySqlIt.database();
        MySqlSessionState client = new MySqlSessionState(db.database());
        try (RawMySql first = open(db); RawMySql second = open(db)) {
            first.query("CREATE TEMPORARY TABLE cg_ids (id INT AUTO_INCREMENT PRIMARY KEY, v INT) AUTO_INCREMENT = 4711");
            byte[] ok = first.query("INSERT INTO cg_ids (v) VALUES (1)").get(0);
            client.ok(ok, Math.min(32, ok.length));
            assertThat(client.lastInsertId()).isEqualTo(4711);
            MySqlSessionState server = new MySqlSessionState(db.database());
            String replay = MySqlSessionState.replayLastInsertId(client, server);
            List<byte[]> answer = second.query(replay);
            assertThat(answer).hasSize(1);
            assertThat(answer.get(0)[0]).as("DO answers with one OK").isZero();
            assertThat(second.row("SELECT LAST_INSERT_ID()")).containsExactly("4711");
        }
    }

    private static RawMySql open(Database db) throws IOException {
        return new RawMySql(db.host(), db.port(), MySqlIt.NATIVE_USER, MySqlIt.NATIVE_PASSWORD, db.database());
    }

    /** Runs {@code sql}, reads its OK through a capture split in two, and applies it to {@code state}. */
    private static MySqlSessionChanges run(RawMySql connection, String sql, MySqlSessionState state) throws IOException {
        List<byte[]> response = connection.query(sql);
        assertThat(response.get(0)[0]).as("%s: %s", sql, new String(response.get(0))).isZero();
        MySqlSessionChanges changes = capture(response.get(0));
        state.apply(changes);
        return changes;
    }

    private static MySqlSessionChanges capture(byte[] ok) {
        MySqlOkCapture capture = new MySqlOkCapture();
        if (!capture.begin(ok, Math.min(32, ok.length), ok.length)) {
            return capture.finish();
        }
        ByteBuf buf = Unpooled.wrappedBuffer(ok);
        capture.accept(buf, 0, ok.length / 2);
        capture.accept(buf, ok.length / 2, ok.length - ok.length / 2);
        buf.release();
        MySqlSessionChanges changes = capture.finish();
        assertThat(changes).as("the OK's session state could be read").isNotNull();
        return changes;
    }
}
