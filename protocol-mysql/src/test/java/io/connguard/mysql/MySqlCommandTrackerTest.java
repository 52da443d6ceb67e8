package io.connguard.mysql;

import io.connguard.core.api.ClientIdentity;
import io.connguard.core.api.ListenerInfo;
import io.connguard.core.api.SessionState;
import io.connguard.core.testing.LeakGuard;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.ByteArrayOutputStream;
import java.util.List;
import java.util.Random;

import static io.connguard.core.api.SessionState.ACTIVE;
import static io.connguard.core.api.SessionState.IDLE;
import static io.connguard.core.api.SessionState.IDLE_IN_TRANSACTION;
import static io.connguard.mysql.Packets.binaryRow;
import static io.connguard.mysql.Packets.columnCount;
import static io.connguard.mysql.Packets.columnDefinition;
import static io.connguard.mysql.Packets.concat;
import static io.connguard.mysql.Packets.eof;
import static io.connguard.mysql.Packets.err;
import static io.connguard.mysql.Packets.ok;
import static io.connguard.mysql.Packets.okEof;
import static io.connguard.mysql.Packets.packet;
import static io.connguard.mysql.Packets.payload;
import static io.connguard.mysql.Packets.query;
import static io.connguard.mysql.Packets.textRow;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * Every response shape of the command phase, hand-built after the protocol pages, with and without
 * CLIENT_DEPRECATE_EOF: the session must stay {@code active} exactly until the response's last packet
 * and then report {@code idle} or {@code idle_in_transaction} from its status flags. Each exchange is
 * also replayed with the server's bytes cut at every offset.
 */
@ExtendWith(LeakGuard.class)
class MySqlCommandTrackerTest {

    private static final int AUTOCOMMIT = 0x0002;
    private static final int IN_TRANS = 0x0001;
    private static final int MORE = 0x0008;
    private static final int CURSOR = 0x0040;
    private static final long DEPRECATE = Conversation.CONNECTOR_J_CAPS;
    private static final long CLASSIC = Conversation.LIBMARIADB_CAPS;

    private static Conversation session(long capabilities) {
        Conversation conversation = new Conversation(Conversation.moduleWithGreeting(),
                Conversation.listener(ListenerInfo.UpstreamTlsMode.DISABLE)).authenticate(capabilities);
        conversation.context.recording.states.clear();
        return conversation;
    }

    /**
     * Sends {@code command}, then the server's {@code response} up to the start of its last packet: still
     * active; then the last packet: the expected state. Repeated with the response cut at every offset.
     */
    private static void exchange(long capabilities, byte[] command, byte[] response, SessionState expected) {
        int lastPacket = 0;
        for (int i = 0; i < response.length; i += 4 + ((response[i] & 0xFF) | (response[i + 1] & 0xFF) << 8)) {
            lastPacket = i;
        }
        for (int cut = 0; cut < response.length; cut++) {
            Conversation conversation = session(capabilities);
            conversation.client(command);
            assertThat(conversation.toUpstream()).isEqualTo(command);
            int first = Math.min(cut, lastPacket);
            if (first > 0) {
                conversation.server(java.util.Arrays.copyOfRange(response, 0, first));
            }
            conversation.server(java.util.Arrays.copyOfRange(response, first, lastPacket));
            assertThat(conversation.state()).as("before the last packet, cut at %d", cut).isEqualTo(ACTIVE);
            if (cut > lastPacket) {
                conversation.server(java.util.Arrays.copyOfRange(response, lastPacket, cut));
            }
            conversation.server(java.util.Arrays.copyOfRange(response, Math.max(cut, lastPacket), response.length));
            assertThat(conversation.state()).as("after the response, cut at %d", cut).isEqualTo(expected);
            assertThat(conversation.toClient()).isEqualTo(response);
            assertThat(conversation.context.recording.lostSync).isEmpty();
            conversation.finish();
        }
    }

    @Test
    void okAndErr() {
        exchange(DEPRECATE, query("insert into t values (1)"), ok(1, AUTOCOMMIT), IDLE);
        exchange(DEPRECATE, query("begin"), ok(1, AUTOCOMMIT | IN_TRANS), IDLE_IN_TRANSACTION);
        exchange(CLASSIC, query("select * from nope"), err(1, 1146, "Table 'test.nope' doesn't exist"), IDLE);
    }

    @Test
    void anErrKeepsThePreviousTransactionState() {
        Conversation conversation = session(DEPRECATE);
        conversation.client(query("begin"));
        conversation.server(ok(1, IN_TRANS));
        conversation.client(query("select * from nope"));
        conversation.server(err(1, 1146, "no such table"));
        assertThat(conversation.context.recording.states).containsExactly(ACTIVE, IDLE_IN_TRANSACTION, ACTIVE, IDLE_IN_TRANSACTION);
        conversation.finish();
    }

    @Test
    void textResultSetWithEofPackets() {
        exchange(CLASSIC, query("select a, b from t"), concat(columnCount(1, 2), columnDefinition(2, "a"),
                columnDefinition(3, "b"), eof(4, AUTOCOMMIT), textRow(5, "1", "x"), textRow(6, "2", "y"),
                eof(7, AUTOCOMMIT | IN_TRANS)), IDLE_IN_TRANSACTION);
    }

    @Test
    void textResultSetWithDeprecateEofEndsAtTheOkWithAnFeHeader() {
        exchange(DEPRECATE, query("select a from t"), concat(columnCount(1, 1), columnDefinition(2, "a"),
                textRow(3, "1"), textRow(4, ""), okEof(5, AUTOCOMMIT)), IDLE);
    }

    @Test
    void anErrInsideTheRowsEndsTheResponse() {
        exchange(DEPRECATE, query("select sleep(10) from t"), concat(columnCount(1, 1), columnDefinition(2, "a"),
                textRow(3, "0"), err(4, 1317, "Query execution was interrupted")), IDLE);
    }

    @Test
    void multiResultsStayActiveUntilTheLastResult() {
        exchange(DEPRECATE, query("select 1; insert into t values (2); select 3"), concat(
                columnCount(1, 1), columnDefinition(2, "1"), textRow(3, "1"), okEof(4, AUTOCOMMIT | MORE),
                ok(5, AUTOCOMMIT | MORE),
                columnCount(6, 1), columnDefinition(7, "3"), textRow(8, "3"), okEof(9, AUTOCOMMIT)), IDLE);
        exchange(CLASSIC, query("call p()"), concat(
                columnCount(1, 1), columnDefinition(2, "a"), eof(3, MORE), textRow(4, "1"), eof(5, MORE | IN_TRANS),
                ok(6, IN_TRANS)), IDLE_IN_TRANSACTION);
    }

    @Test
    void localInfileEndsAtTheOkAfterTheClientsEmptyPacket() {
        for (long capabilities : new long[] {DEPRECATE, CLASSIC}) {
            Conversation conversation = session(capabilities);
            conversation.client(query("load data local infile 'x.csv' into table t"));
            conversation.server(packet(1, payload(0xFB, "x.csv")));
            assertThat(conversation.state()).isEqualTo(ACTIVE);
            byte[] file = concat(packet(2, payload("1,one\n")), packet(3, payload("2,two\n")));
            conversation.client(file);
            assertThat(conversation.state()).isEqualTo(ACTIVE);
            conversation.client(packet(4, new byte[0]));
            conversation.server(Packets.progress(5));
            assertThat(conversation.state()).isEqualTo(ACTIVE);
            conversation.server(ok(6, AUTOCOMMIT));
            assertThat(conversation.state()).isEqualTo(IDLE);
            assertThat(conversation.context.recording.lostSync).isEmpty();
            conversation.finish();
        }
    }

    @Test
    void localInfileDataThatLooksLikeCommandsIsData() {
        Conversation conversation = session(DEPRECATE);
        conversation.client(query("load data local infile 'x.csv' into table t"));
        conversation.server(packet(1, payload(0xFB, "x.csv")));
        byte[] lookalike = query("KILL QUERY " + MySqlModule.FIRST_CONNECTION_ID);
        lookalike[3] = 0; // sequence ids wrap: a file packet may carry 0
        conversation.client(concat(packet(2, payload("x")), lookalike, packet(3, new byte[0])));
        assertThat(conversation.toUpstream()).endsWith(concat(lookalike, packet(3, new byte[0])));
        conversation.server(ok(4, AUTOCOMMIT));
        assertThat(conversation.state()).isEqualTo(IDLE);
        conversation.finish();
    }

    @Test
    void prepareWithParametersAndColumns() {
        exchange(CLASSIC, Packets.command(MySqlCommand.COM_STMT_PREPARE, "select a from t where b = ? and c = ?"),
                concat(Packets.prepareOk(1, 1, 1, 2), columnDefinition(2, "?"), columnDefinition(3, "?"), eof(4, AUTOCOMMIT),
                        columnDefinition(5, "a"), eof(6, AUTOCOMMIT)), IDLE);
        exchange(DEPRECATE, Packets.command(MySqlCommand.COM_STMT_PREPARE, "select a, b from t where b = ?"),
                concat(Packets.prepareOk(1, 1, 2, 1), columnDefinition(2, "?"), columnDefinition(3, "a"),
                        columnDefinition(4, "b")), IDLE);
        exchange(DEPRECATE, Packets.command(MySqlCommand.COM_STMT_PREPARE, "insert into t values (?)"),
                concat(Packets.prepareOk(1, 1, 0, 1), columnDefinition(2, "?")), IDLE);
        exchange(CLASSIC, Packets.command(MySqlCommand.COM_STMT_PREPARE, "nonsense"), err(1, 1064, "syntax"), IDLE);
    }

    @Test
    void executeWithABinaryResultSet() {
        exchange(DEPRECATE, Packets.execute(1, 0), concat(columnCount(1, 1), columnDefinition(2, "a"),
                binaryRow(3, 1), binaryRow(4, 2), okEof(5, AUTOCOMMIT | IN_TRANS)), IDLE_IN_TRANSACTION);
        exchange(CLASSIC, Packets.execute(1, 0), concat(columnCount(1, 1), columnDefinition(2, "a"), eof(3, AUTOCOMMIT),
                binaryRow(4, 0), eof(5, AUTOCOMMIT)), IDLE);
        exchange(DEPRECATE, Packets.execute(1, 0), ok(1, AUTOCOMMIT), IDLE);
    }

    @Test
    void mariaDbMetadataCachingSkipsTheColumnDefinitions() {
        exchange(CLASSIC, Packets.execute(1, 0), concat(columnCount(1, 2, 0), eof(2, AUTOCOMMIT), binaryRow(3, 1),
                eof(4, AUTOCOMMIT)), IDLE);
        exchange(CLASSIC, Packets.execute(1, 0), concat(columnCount(1, 1, 1), columnDefinition(2, "a"), eof(3, AUTOCOMMIT),
                binaryRow(4, 1), eof(5, AUTOCOMMIT)), IDLE);
    }

    @Test
    void aCursorEndsTheExecuteAfterTheMetadataAndFetchesEndAtTheirTerminator() {
        Conversation conversation = session(CLASSIC);
        conversation.client(Packets.execute(1, 1));
        conversation.server(concat(columnCount(1, 1), columnDefinition(2, "a"), eof(3, AUTOCOMMIT | IN_TRANS | CURSOR)));
        assertThat(conversation.state()).isEqualTo(IDLE_IN_TRANSACTION);
        conversation.client(Packets.fetch(1, 2));
        conversation.server(concat(binaryRow(1, 1), binaryRow(2, 2)));
        assertThat(conversation.state()).isEqualTo(ACTIVE);
        conversation.server(eof(3, IN_TRANS | CURSOR));
        assertThat(conversation.state()).isEqualTo(IDLE_IN_TRANSACTION);
        conversation.client(Packets.fetch(1, 2));
        conversation.server(concat(binaryRow(1, 3), eof(2, AUTOCOMMIT | 0x0080)));
        assertThat(conversation.state()).isEqualTo(IDLE);
        conversation.client(Packets.fetch(1, 2));
        conversation.server(err(1, 1421, "The statement (1) has no open cursor"));
        assertThat(conversation.state()).isEqualTo(IDLE);
        assertThat(conversation.context.recording.lostSync).isEmpty();
        conversation.finish();
    }

    @Test
    void aCursorWithDeprecateEofEndsAtTheOkAfterTheMetadata() {
        exchange(DEPRECATE, Packets.execute(1, 1), concat(columnCount(1, 1), columnDefinition(2, "a"),
                okEof(3, AUTOCOMMIT | CURSOR)), IDLE);
    }

    @Test
    void commandsWithoutAResponseKeepTheSessionIdle() {
        Conversation conversation = session(DEPRECATE);
        conversation.client(packet(0, payload(0x19, 1, 0, 0, 0))); // COM_STMT_CLOSE
        conversation.client(packet(0, payload(0x18, 1, 0, 0, 0, 0, 0, "long data"))); // COM_STMT_SEND_LONG_DATA
        assertThat(conversation.context.recording.states).containsOnly(IDLE);
        conversation.client(packet(0, payload(0x01))); // COM_QUIT
        assertThat(conversation.context.recording.states).containsOnly(IDLE);
        conversation.finish();
    }

    @Test
    void simpleCommands() {
        exchange(DEPRECATE, packet(0, payload(0x0E)), ok(1, AUTOCOMMIT), IDLE); // COM_PING
        exchange(DEPRECATE, packet(0, payload(0x1F)), ok(1, AUTOCOMMIT), IDLE); // COM_RESET_CONNECTION
        exchange(DEPRECATE, packet(0, payload(0x02, "test")), ok(1, AUTOCOMMIT), IDLE); // COM_INIT_DB
        exchange(CLASSIC, packet(0, payload(0x1B, 1, 0)), eof(1, AUTOCOMMIT), IDLE); // COM_SET_OPTION
        exchange(DEPRECATE, packet(0, payload(0x1A, 1, 0, 0, 0)), ok(1, AUTOCOMMIT), IDLE); // COM_STMT_RESET
        exchange(DEPRECATE, packet(0, payload(0x09)), packet(1, payload("Uptime: 354  Threads: 1")), IDLE); // COM_STATISTICS
        exchange(CLASSIC, packet(0, payload(0x04, "t", 0)), concat(columnDefinition(1, "a"), eof(2, AUTOCOMMIT)), IDLE);
    }

    @Test
    void bulkExecuteAnswersLikeExecute() {
        exchange(DEPRECATE, packet(0, payload(0xFA, 1, 0, 0, 0, 0x80, 0, 3, 0, 1)), ok(1, AUTOCOMMIT), IDLE);
        exchange(DEPRECATE, packet(0, payload(0xFA, 1, 0, 0, 0, 0x80, 0, 3, 0, 1)), concat(columnCount(1, 1),
                columnDefinition(2, "id"), binaryRow(3, 1), binaryRow(4, 2), okEof(5, AUTOCOMMIT)), IDLE);
    }

    @Test
    void pipelinedCommandsStayActiveUntilTheLastResponse() {
        Conversation conversation = session(DEPRECATE);
        conversation.client(concat(Packets.command(MySqlCommand.COM_STMT_PREPARE, "select ?"),
                packet(0, payload(0x17, 0xFF, 0xFF, 0xFF, 0xFF, 0, 1, 0, 0, 0)),
                packet(0, payload(0x19, 0xFF, 0xFF, 0xFF, 0xFF))));
        conversation.server(concat(Packets.prepareOk(1, 5, 1, 1), columnDefinition(2, "?"), columnDefinition(3, "?")));
        assertThat(conversation.state()).isEqualTo(ACTIVE);
        conversation.server(concat(columnCount(1, 1), columnDefinition(2, "?"), binaryRow(3, 1)));
        assertThat(conversation.state()).isEqualTo(ACTIVE);
        conversation.server(okEof(4, AUTOCOMMIT));
        assertThat(conversation.context.recording.states).containsExactly(ACTIVE, IDLE);
        conversation.finish();
    }

    /** More commands pipelined than the tracker's first ring holds: responses of mixed shapes, in order. */
    @Test
    void manyPipelinedCommandsOfMixedShapesAreAnsweredInOrder() {
        Conversation conversation = session(DEPRECATE);
        byte[] commands = new byte[0];
        byte[] responses = new byte[0];
        for (int i = 0; i < 13; i++) {
            if (i % 3 == 1) {
                commands = concat(commands, query("SELECT " + i));
                responses = concat(responses, columnCount(1, 1), columnDefinition(2, "c"), textRow(3, "x"),
                        okEof(4, AUTOCOMMIT));
            } else {
                commands = concat(commands, query("DO " + i));
                responses = concat(responses, ok(1, AUTOCOMMIT));
            }
        }
        conversation.client(commands);
        assertThat(conversation.state()).isEqualTo(ACTIVE);
        int half = responses.length / 2;
        conversation.server(java.util.Arrays.copyOfRange(responses, 0, half));
        assertThat(conversation.state()).isEqualTo(ACTIVE);
        conversation.server(java.util.Arrays.copyOfRange(responses, half, responses.length));
        assertThat(conversation.context.recording.states).containsExactly(ACTIVE, IDLE);
        assertThat(conversation.context.recording.lostSync).isEmpty();
        conversation.client(query("DO 99"));
        conversation.server(ok(1, AUTOCOMMIT));
        assertThat(conversation.context.recording.states).containsExactly(ACTIVE, IDLE, ACTIVE, IDLE);
        conversation.finish();
    }

    @Test
    void changeUserIsRewrittenForAnAuthSwitchAndReKeysTheIdentityOnItsOk() {
        byte[] attributes = payload(12, "program_name", 7, "billing");
        byte[] changeUser = packet(0, payload(0x11, "cg_my_other", 0, 20, new byte[20], "test", 0, 45, 0,
                "mysql_native_password", 0, attributes.length, attributes));
        for (int cut = 1; cut < changeUser.length; cut++) {
            Conversation conversation = session(DEPRECATE);
            conversation.client(java.util.Arrays.copyOfRange(changeUser, 0, cut));
            conversation.client(java.util.Arrays.copyOfRange(changeUser, cut, changeUser.length));
            byte[] upstream = conversation.toUpstream();
            assertThat(upstream).isEqualTo(packet(0, payload(0x11, "cg_my_other", 0, 0, "test", 0, 45, 0,
                    MySqlHandshakeResponse.SWITCH_PLUGIN, 0, attributes.length, attributes)));
            assertThat(conversation.state()).isEqualTo(ACTIVE);
            conversation.server(packet(1, payload(0xFE, "mysql_native_password", 0, "abcdefghij0123456789", 0)));
            byte[] authData = packet(2, new byte[20]);
            authData[4] = 0x11; // auth data that happens to look like a command byte is still auth data
            conversation.client(authData);
            assertThat(conversation.toUpstream()).isEqualTo(authData);
            assertThat(conversation.context.recording.identities).hasSize(1);
            conversation.server(ok(3, AUTOCOMMIT));
            assertThat(conversation.context.recording.identities).last()
                    .isEqualTo(new ClientIdentity("cg_my_other", "test", "billing"));
            assertThat(conversation.state()).isEqualTo(IDLE);
            assertThat(conversation.context.recording.lostSync).isEmpty();
            conversation.finish();
        }
    }

    @Test
    void aRefusedChangeUserKeepsTheIdentity() {
        Conversation conversation = session(DEPRECATE);
        conversation.client(packet(0, payload(0x11, "nobody", 0, 0, "test", 0, 45, 0, "mysql_native_password", 0)));
        conversation.server(packet(1, payload(0xFE, "mysql_native_password", 0, "abcdefghij0123456789", 0)));
        conversation.client(packet(2, new byte[20]));
        conversation.server(err(3, 1045, "Access denied for user 'nobody'"));
        assertThat(conversation.context.recording.identities).hasSize(1);
        assertThat(conversation.state()).isEqualTo(IDLE);
        conversation.finish();
    }

    @ParameterizedTest
    @ValueSource(ints = {0x12, 0x13, 0x15, 0x1E, 0x20, 0xFE})
    void replicationAndUnknownCommandsLoseSyncOnceAndKeepRelaying(int command) {
        Conversation conversation = session(DEPRECATE);
        conversation.client(packet(0, payload(command, 1, 2, 3, 4)));
        conversation.server(packet(1, payload(0x00, 0, 0, 2, 0, 0, 0)));
        conversation.client(query("select 1"));
        conversation.server(concat(columnCount(1, 1), columnDefinition(2, "1")));
        assertThat(conversation.context.recording.lostSync).hasSize(1);
        assertThat(conversation.state()).isEqualTo(SessionState.UNKNOWN);
        assertThat(conversation.toUpstream()).endsWith(query("select 1"));
        assertThat(conversation.toClient()).hasSize(11 + 5 + columnDefinition(2, "1").length);
        conversation.finish();
    }

    @Test
    void randomServerBytesLoseSyncButNeverThrowOrLeak() {
        Random random = new Random(7);
        for (int round = 0; round < 1000; round++) {
            Conversation conversation = session(round % 2 == 0 ? DEPRECATE : CLASSIC);
            conversation.client(query("select 1"));
            byte[] garbage = new byte[random.nextInt(300)];
            random.nextBytes(garbage);
            ByteArrayOutputStream relayed = new ByteArrayOutputStream();
            for (int i = 0; i < garbage.length; i += 37) {
                conversation.server(java.util.Arrays.copyOfRange(garbage, i, Math.min(garbage.length, i + 37)));
                conversation.client(query("select 2"));
                relayed.writeBytes(conversation.toClient());
            }
            assertThat(relayed.toByteArray()).isEqualTo(garbage);
            assertThat(conversation.context.recording.lostSync.size()).isLessThanOrEqualTo(1);
            conversation.finish();
        }
    }

    @Test
    void randomClientBytesAreRelayedUnchangedAndNeverThrowOrLeak() {
        Random random = new Random(8);
        for (int round = 0; round < 1000; round++) {
            Conversation conversation = session(DEPRECATE);
            byte[] garbage = new byte[random.nextInt(400)];
            random.nextBytes(garbage);
            ByteArrayOutputStream relayed = new ByteArrayOutputStream();
            for (int i = 0; i < garbage.length; i += 23) {
                conversation.client(java.util.Arrays.copyOfRange(garbage, i, Math.min(garbage.length, i + 23)));
                relayed.writeBytes(conversation.toUpstream());
            }
            List<String> violations = conversation.context.recording.violations;
            if (violations.isEmpty() && relayed.size() > 0) {
                assertThat(garbage).startsWith(relayed.toByteArray());
            }
            assertThat(conversation.context.recording.lostSync.size()).isLessThanOrEqualTo(1);
            conversation.finish();
        }
    }
}
