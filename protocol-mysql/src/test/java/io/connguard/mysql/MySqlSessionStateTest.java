package io.connguard.mysql;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import org.junit.jupiter.api.Test;

import java.util.HexFormat;
import java.util.Map;
import java.util.Random;

import static org.assertj.core.api.Assertions.assertThat;

class MySqlSessionStateTest {

    /** OK payloads MariaDB 10.11 sent with tracking on (session_track_system_variables='*'). */
    static final byte[] SET_NAMES_LATIN1 = hex("0000000240000000620020186368617261637465725f7365745f636f6e6e656374696f6e066c"
            + "6174696e31001c146368617261637465725f7365745f636c69656e74066c6174696e31001d156368617261637465725f73"
            + "65745f726573756c7473066c6174696e31020131");
    static final byte[] SET_TIME_ZONE = hex("00000002400000001600110974696d655f7a6f6e65062b30323a3030020131");
    static final byte[] USE_MYSQL = hex("00000002400000000b0106056d7973716c020131");
    static final byte[] SET_AUTOCOMMIT_0 = hex("000000004000000014000f0a6175746f636f6d6d6974034f4646020131");
    static final byte[] SET_USER_VARIABLE = hex("000000004000000003020131");
    static final byte[] SET_SQL_MODE_AND_WAIT = hex("00000000c00000002d00110c776169745f74696d656f757403313030001508"
            + "73716c5f6d6f64650b414e53495f51554f544553020131");
    static final byte[] ENABLE_TRACKING = hex("00000002400000006000181473657373696f6e5f747261636b5f736368656d61024f4e"
            + "00211e73657373696f6e5f747261636b5f73797374656d5f7661726961626c6573012a001e1a73657373696f6e5f747261"
            + "636b5f73746174655f6368616e6765024f4e020131");
    static final byte[] PLAIN_OK = hex("0000000200000000");

    @Test
    void decodesWhatMariaDbReports() {
        assertThat(decode(SET_NAMES_LATIN1).variables()).containsExactly(
                Map.entry("character_set_connection", "latin1"), Map.entry("character_set_client", "latin1"),
                Map.entry("character_set_results", "latin1"));
        assertThat(decode(SET_TIME_ZONE).variables()).containsExactly(Map.entry("time_zone", "+02:00"));
        MySqlSessionChanges use = decode(USE_MYSQL);
        assertThat(use.schema()).isEqualTo("mysql");
        assertThat(use.variables()).isEmpty();
        assertThat(use.stateChanged()).isTrue();
        assertThat(decode(SET_AUTOCOMMIT_0).variables()).containsExactly(Map.entry("autocommit", "OFF"));
        MySqlSessionChanges userVariable = decode(SET_USER_VARIABLE);
        assertThat(userVariable.stateChanged()).isTrue();
        assertThat(userVariable.onlyUntracked()).isTrue();
        assertThat(decode(PLAIN_OK)).isSameAs(MySqlSessionChanges.NONE);
    }

    @Test
    void decodesTheOtherEntryTypesAndSeveralPairsInOneEntry() {
        byte[] payload = Packets.payload(0x00, 0x01, 0xFC, 0x10, 0x27, 0x00, 0x40, 0x00, 0x00,
                2, "hi",                                          // info
                0x29,                                             // state info length
                0x00, 0x0C, 3, "a_b", 1, "1", 2, "cd", 2, "on",  // two pairs in one entry
                0x03, 0x03, 0x00, 1, "g",                         // GTIDs: skipped
                0x04, 0x07, 6, "SET x;",                          // transaction characteristics
                0x05, 0x09, 8, "T_______",                        // transaction state
                0x09, 0x00);                                      // an unknown type: skipped
        MySqlSessionChanges changes = decode(payload);
        assertThat(changes.variables()).containsExactly(Map.entry("a_b", "1"), Map.entry("cd", "on"));
        assertThat(changes.transactionCharacteristics()).isEqualTo("SET x;");
        assertThat(changes.transactionState()).isEqualTo("T_______");
        assertThat(changes.stateChanged()).isFalse();
    }

    @Test
    void theCaptureReadsOnlyOksWithStateChangesSplitAnywhere() {
        MySqlOkCapture capture = new MySqlOkCapture();
        byte[] plain = Packets.payload(0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00);
        assertThat(capture.begin(plain, plain.length, plain.length)).isFalse();
        assertThat(capture.finish()).isSameAs(MySqlSessionChanges.NONE);
        for (byte[] payload : new byte[][] {SET_NAMES_LATIN1, SET_TIME_ZONE, USE_MYSQL, SET_SQL_MODE_AND_WAIT}) {
            MySqlSessionChanges whole = decode(payload);
            for (int split = 0; split <= payload.length; split++) {
                byte[] framed = Packets.concat(new byte[] {1, 2, 3}, payload, new byte[] {9});
                ByteBuf buf = Unpooled.wrappedBuffer(framed);
                assertThat(capture.begin(payload, Math.min(32, payload.length), payload.length)).isTrue();
                capture.accept(buf, 3, split);
                capture.accept(buf, 3 + split, payload.length - split);
                assertThat(capture.finish()).as("split at %d", split).isEqualTo(whole);
                assertThat(buf.readerIndex()).isZero();
                buf.release();
            }
        }
    }

    @Test
    void aCutShortMalformedOrHugeOkIsLostNeverThrown() {
        MySqlOkCapture capture = new MySqlOkCapture();
        ByteBuf buf = Unpooled.wrappedBuffer(SET_TIME_ZONE);
        capture.begin(SET_TIME_ZONE, 20, SET_TIME_ZONE.length);
        capture.accept(buf, 0, SET_TIME_ZONE.length - 1);
        assertThat(capture.finish()).isNull();
        capture.begin(SET_TIME_ZONE, 20, MySqlOkCapture.MAX_PAYLOAD + 1);
        capture.accept(buf, 0, SET_TIME_ZONE.length);
        assertThat(capture.finish()).isNull();
        Random random = new Random(23);
        for (int round = 0; round < 5000; round++) {
            byte[] garbage = SET_SQL_MODE_AND_WAIT.clone();
            for (int flips = 1 + random.nextInt(4); flips > 0; flips--) {
                garbage[random.nextInt(garbage.length)] = (byte) random.nextInt(256);
            }
            int length = random.nextInt(garbage.length + 1);
            if (capture.begin(garbage, Math.min(32, length), length)) {
                capture.accept(Unpooled.wrappedBuffer(garbage), 0, length);
            }
            capture.finish();                                   // null or changes, never an exception
        }
        buf.release();
        MySqlSessionState state = new MySqlSessionState("test");
        state.apply(null);
        assertThat(state.lost()).isTrue();
    }

    @Test
    void replaysWhatTheClientSetOntoAnotherConnection() {
        MySqlSessionState client = new MySqlSessionState("test");
        for (byte[] ok : new byte[][] {SET_NAMES_LATIN1, SET_TIME_ZONE, USE_MYSQL, SET_AUTOCOMMIT_0}) {
            client.apply(decode(ok));
        }
        MySqlSessionState fresh = new MySqlSessionState("test");
        MySqlSessionState.Replay replay = MySqlSessionState.replay(client, fresh);
        assertThat(replay.setStatement()).isEqualTo("SET SESSION character_set_connection = 'latin1', "
                + "SESSION character_set_client = 'latin1', SESSION character_set_results = 'latin1', "
                + "SESSION time_zone = '+02:00', SESSION autocommit = 'OFF'");
        assertThat(replay.schema()).isEqualTo("mysql");
        MySqlSessionState.replayed(client, fresh);
        assertThat(MySqlSessionState.replay(client, fresh).isEmpty()).isTrue();
    }

    @Test
    void replayPutsBackWhatTheServerConnectionChangedAndTheClientDidNot() {
        MySqlSessionState previousClient = new MySqlSessionState("test");
        previousClient.apply(decode(SET_SQL_MODE_AND_WAIT));
        previousClient.apply(decode(SET_TIME_ZONE));
        previousClient.apply(decode(USE_MYSQL));
        assertThat(previousClient.ansiQuotes()).isTrue();
        assertThat(previousClient.noBackslashEscapes()).isFalse();
        MySqlSessionState client = new MySqlSessionState("test");
        client.apply(decode(SET_TIME_ZONE));
        MySqlSessionState.Replay replay = MySqlSessionState.replay(client, previousClient);
        assertThat(replay.setStatement()).isEqualTo("SET SESSION wait_timeout = DEFAULT, SESSION sql_mode = DEFAULT");
        assertThat(replay.schema()).isEqualTo("test");
        assertThat(MySqlSessionState.replay(client, new MySqlSessionState("")).schemaCannotBeUnset()).isFalse();
        assertThat(MySqlSessionState.replay(new MySqlSessionState(""), previousClient).schemaCannotBeUnset()).isTrue();
    }

    @Test
    void oneShotVariablesAreNeverReplayed() {
        MySqlSessionState state = new MySqlSessionState("test");
        state.apply(new MySqlSessionChanges(Map.of("insert_id", "5", "rand_seed1", "7", "time_zone", "UTC"), null, true,
                null, null));
        assertThat(state.variables()).containsOnlyKeys("time_zone");
    }

    @Test
    void trackingVariablesAreNeverReplayedButReported() {
        MySqlSessionState state = new MySqlSessionState("test");
        state.apply(decode(ENABLE_TRACKING));
        assertThat(state.variables()).isEmpty();
        assertThat(state.trackingChanged()).isTrue();
        state.reset();
        assertThat(state.trackingChanged()).isFalse();
    }

    @Test
    void lastInsertIdFollowsOkPacketsAndIsReplayedWithDo() {
        MySqlSessionState client = new MySqlSessionState("test");
        MySqlSessionState server = new MySqlSessionState("test");
        // MariaDB's OKs: INSERT of two rows (first id 1), UPDATE (0), id 300 (lenenc 0xFC), 2^40 (0xFE)
        client.ok(hex("00020102000000"), 7);
        assertThat(client.lastInsertId()).isEqualTo(1);
        client.ok(hex("0002002200000028"), 8);
        assertThat(client.lastInsertId()).isEqualTo(1);
        client.ok(hex("0001fc2c010200"), 7);
        assertThat(client.lastInsertId()).isEqualTo(300);
        client.ok(hex("0000fe0000000000010000"), 11);
        assertThat(client.lastInsertId()).isEqualTo(1L << 40);
        client.ok(hex("00"), 1);
        client.ok(hex("00fe"), 2);
        assertThat(client.lastInsertId()).isEqualTo(1L << 40);
        assertThat(MySqlSessionState.replayLastInsertId(client, server)).isEqualTo("DO LAST_INSERT_ID(1099511627776)");
        MySqlSessionState.lastInsertIdReplayed(client, server);
        assertThat(MySqlSessionState.replayLastInsertId(client, server)).isNull();
        client.reset();
        assertThat(client.lastInsertId()).isZero();
    }

    @Test
    void literalsReadTheSameWhateverTheSqlMode() {
        assertThat(MySqlSessionState.literal("100")).isEqualTo("100");
        assertThat(MySqlSessionState.literal("-1.5")).isEqualTo("-1.5");
        assertThat(MySqlSessionState.literal("")).isEqualTo("''");
        assertThat(MySqlSessionState.literal("STRICT_TRANS_TABLES,ANSI_QUOTES")).isEqualTo("'STRICT_TRANS_TABLES,ANSI_QUOTES'");
        assertThat(MySqlSessionState.literal("a'b\\c")).isEqualTo("X'6127625c63'");
        assertThat(MySqlSessionState.literal("é")).isEqualTo("X'c3a9'");
    }

    private static MySqlSessionChanges decode(byte[] payload) {
        ByteBuf buf = Unpooled.wrappedBuffer(payload);
        try {
            return MySqlSessionChanges.decode(buf, 0, payload.length);
        } finally {
            buf.release();
        }
    }

    private static byte[] hex(String hex) {
        return HexFormat.of().parseHex(hex);
    }
}
