package io.connguard.mysql;

import io.connguard.core.api.ListenerInfo;
import io.connguard.core.api.ProxyError;
import io.connguard.core.testing.FuzzAllocator;
import io.connguard.core.testing.FuzzSession;
import io.connguard.core.testing.LeakGuard;
import io.netty.buffer.ByteBuf;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

import static io.connguard.mysql.Packets.columnCount;
import static io.connguard.mysql.Packets.columnDefinition;
import static io.connguard.mysql.Packets.concat;
import static io.connguard.mysql.Packets.packet;
import static io.connguard.mysql.Packets.payload;
import static io.connguard.mysql.Packets.query;
import static org.assertj.core.api.Assertions.assertThat;

/** What the session sends when core ends it: the ERR packet to the client, COM_QUIT upstream, the last statement. */
@ExtendWith(LeakGuard.class)
class MySqlSessionErrorsTest {

    private static Conversation session(long capabilities) {
        return new Conversation(Conversation.moduleWithGreeting(), Conversation.listener(ListenerInfo.UpstreamTlsMode.DISABLE))
                .authenticate(capabilities);
    }

    private static final ProxyError IDLE_IN_TX = new ProxyError(ProxyError.Kind.IDLE_IN_TRANSACTION_TIMEOUT,
            "terminating connection due to idle-in-transaction timeout", "");

    @Test
    void anIdleSessionGetsTheErrAsTheAnswerToItsNextCommand() {
        Conversation conversation = session(Conversation.CONNECTOR_J_CAPS);
        conversation.client(query("begin"));
        conversation.server(Packets.ok(1, 0x0003));
        assertThat(MySqlHandshakeTest.bytes(conversation.session.clientError(IDLE_IN_TX))).isEqualTo(packet(1, payload(
                0xFF, 0xBF, 0x0F, "#HY000", "terminating connection due to idle-in-transaction timeout")));
        assertThat(MySqlHandshakeTest.bytes(conversation.session.upstreamGoodbye())).isEqualTo(packet(0, payload(0x01)));
        conversation.finish();
    }

    @Test
    void everyEventHasItsCode() {
        int[][] expected = {{1040}, {4031}, {4031}, {4031}, {1927}, {1927}, {1053}, {1047}, {1218}, {3159}, {1045}};
        ProxyError.Kind[] kinds = ProxyError.Kind.values();
        for (int i = 0; i < kinds.length; i++) {
            assertThat(MySqlErrorWriter.codeFor(new ProxyError(kinds[i], "m", "")).code()).as(kinds[i].name()).isEqualTo(expected[i][0]);
        }
        assertThat(MySqlErrorWriter.codeFor(new ProxyError(ProxyError.Kind.TOO_MANY_CONNECTIONS, "m", "", true)))
                .isEqualTo(new MySqlErrorWriter.Code(1226, "42000"));
    }

    @Test
    void withoutProtocol41TheErrHasNoSqlState() {
        Conversation conversation = session(Conversation.LIBMARIADB_CAPS);
        ByteBuf err = MySqlErrorWriter.write(conversation.context.alloc(), IDLE_IN_TX, 1, false);
        assertThat(MySqlHandshakeTest.bytes(err)).doesNotContain((byte) '#');
        conversation.finish();
    }

    @Test
    void midResponseTheErrContinuesTheSequenceAtAPacketBoundaryAndNothingIsSentInsideAPacket() {
        Conversation conversation = session(Conversation.CONNECTOR_J_CAPS);
        conversation.client(query("select a from t"));
        byte[] definition = columnDefinition(2, "a");
        conversation.server(concat(columnCount(1, 1), java.util.Arrays.copyOf(definition, 10)));
        assertThat(conversation.session.clientError(IDLE_IN_TX)).as("inside a packet").isNull();
        conversation.server(java.util.Arrays.copyOfRange(definition, 10, definition.length));
        byte[] err = MySqlHandshakeTest.bytes(conversation.session.clientError(IDLE_IN_TX));
        assertThat(err[3]).as("after packet 2").isEqualTo((byte) 3);
        assertThat(MySqlHandshakeTest.bytes(conversation.session.upstreamGoodbye())).isEqualTo(packet(0, payload(0x01)));
        conversation.finish();
    }

    @Test
    void noGoodbyeWhileTheClientIsInsideACommand() {
        Conversation conversation = session(Conversation.CONNECTOR_J_CAPS);
        byte[] command = query("select '" + "a long statement ".repeat(300) + "'");
        conversation.client(java.util.Arrays.copyOf(command, 120));
        assertThat(conversation.toUpstream()).as("a long COM_QUERY streams through").hasSize(120);
        assertThat(conversation.session.upstreamGoodbye()).isNull();
        assertThat(conversation.session.clientSaidGoodbye()).as("mid-command: the proxy must end the stream").isFalse();
        conversation.client(java.util.Arrays.copyOfRange(command, 120, command.length));
        assertThat(conversation.session.upstreamGoodbye()).isNotNull().satisfies(ByteBuf::release);
        conversation.finish();
    }

    @Test
    void noSecondComQuitAfterTheClientsOwn() {
        Conversation conversation = session(Conversation.CONNECTOR_J_CAPS);
        conversation.client(packet(0, payload(0x01)));
        assertThat(conversation.toUpstream()).isEqualTo(packet(0, payload(0x01)));
        assertThat(conversation.session.upstreamGoodbye()).isNull();
        assertThat(conversation.session.clientSaidGoodbye()).as("the server closes by itself").isTrue();
        conversation.finish();
    }

    @Test
    void aShortCommandStillBeingReadWasNotForwardedSoTheGoodbyeMayGoFirst() {
        Conversation conversation = session(Conversation.CONNECTOR_J_CAPS);
        conversation.client(java.util.Arrays.copyOf(query("select 1"), 6));
        assertThat(conversation.toUpstream()).isEmpty();
        assertThat(MySqlHandshakeTest.bytes(conversation.session.upstreamGoodbye())).isEqualTo(packet(0, payload(0x01)));
        conversation.finish();
    }

    @Test
    void theLastStatementIsFingerprintedFromABoundedPrefix() {
        Conversation conversation = session(Conversation.CONNECTOR_J_CAPS);
        assertThat(conversation.session.lastStatement()).isEmpty();
        conversation.client(query("SELECT * FROM orders WHERE id = 42 AND note = 'secret'"));
        assertThat(conversation.session.lastStatement()).isEqualTo("SELECT * FROM orders WHERE id = ? AND note = ?");
        conversation.server(Packets.ok(1, 2));
        conversation.client(Packets.command(MySqlCommand.COM_STMT_PREPARE, "UPDATE t SET v = ? WHERE k = 'x" + "y".repeat(100_000) + "'"));
        assertThat(conversation.session.lastStatement()).isEqualTo("UPDATE t SET v = ? WHERE k = ?");
        conversation.finish();
    }

    /**
     * Found by MySqlFuzzTest: core closes the session inside the violation a malformed COM_CHANGE_USER
     * reports, and the scanner went on through the rest of the read, holding a split header in a buffer
     * nobody would release.
     */
    @Test
    void aMalformedChangeUserFollowedByAPartOfTheNextHeaderLeavesNoBufferBehind() {
        FuzzSession fuzz = new FuzzSession(Conversation.moduleWithGreeting(),
                Conversation.listener(ListenerInfo.UpstreamTlsMode.DISABLE), new FuzzAllocator(64 * 1024));
        Conversation.authenticate(fuzz, Conversation.LIBMARIADB_CAPS);
        fuzz.client(concat(packet(0, payload(MySqlCommand.COM_CHANGE_USER, "SELECT")), new byte[] {1, 0, 0}));
        assertThat(fuzz.violations).singleElement().asString().startsWith("malformed COM_CHANGE_USER");
        fuzz.finish(); // every buffer released
    }
}
