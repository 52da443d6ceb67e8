package io.connguard.mysql;

import io.connguard.core.api.ClientIdentity;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;

import static io.connguard.mysql.Packets.concat;
import static io.connguard.mysql.Packets.packet;
import static io.connguard.mysql.Packets.payload;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * A transaction-mode server connection at the byte level: its login asks for session-state tracking and turns
 * it on before it is ready, its reset turns it on again, {@link MySqlStateReplay} writes what makes it hold a
 * client's state and reads the answers, and {@link MySqlSignal} turns an ERR into the SIGNAL that repeats it.
 */
class MySqlTransactionServerTest {

    private static final long UNTRACKED_CLIENT = Conversation.CONNECTOR_J_CAPS & ~MySqlCapabilities.CLIENT_SESSION_TRACK;
    private final MySqlServerConnectionTest.Context context = new MySqlServerConnectionTest.Context();

    @AfterEach
    void released() {
        context.alloc.assertAllReleased();
    }

    private MySqlServerConnection loggedIn() {
        context.transactions = true;
        MySqlServerConnection c = new MySqlServerConnection(context, new ClientIdentity("cg_my_tx", "test", "app"),
                "secret".toCharArray(), new MySqlServerConnection.Client() {
                    @Override
                    public long capabilities() {
                        return UNTRACKED_CLIENT;
                    }

                    @Override
                    public int collation() {
                        return 45;
                    }

                    @Override
                    public byte[] attributes() {
                        return new byte[0];
                    }

                    @Override
                    public int nextSequenceId() {
                        return 2;
                    }
                });
        c.onServerBytes(context.wrap(Conversation.serverGreetingPacket(4711)));
        byte[] response = context.takeToServer();
        long capabilities = (response[4] & 0xFFL) | (response[5] & 0xFFL) << 8 | (response[6] & 0xFFL) << 16
                | (response[7] & 0xFFL) << 24;
        assertThat(capabilities & MySqlCapabilities.CLIENT_SESSION_TRACK).as("asked though the client did not").isNotZero();
        c.onServerBytes(context.wrap(Packets.ok(2, 0x0002)));
        assertThat(context.reports).as("not ready before tracking is on").isEmpty();
        assertThat(context.takeToServer()).isEqualTo(Packets.query(MySqlSessionState.ENABLE_TRACKING));
        c.onServerBytes(context.wrap(Packets.ok(1, 0x0002)));
        assertThat(context.reports).containsExactly("loggedIn true");
        context.reports.clear();
        return c;
    }

    @Test
    void theLoginTurnsTrackingOnAndItsClientsAreThoseThatFitATrackedLogin() {
        MySqlServerConnection c = loggedIn();
        assertThat(c.fits(UNTRACKED_CLIENT)).as("every client of a transaction-mode pool shares tracked logins").isTrue();
        assertThat(c.fits(Conversation.CONNECTOR_J_CAPS)).isTrue();
        assertThat(c.state().variables()).isEmpty();
        c.close();
    }

    @Test
    void aFullResetTurnsTrackingOnAgainAndForgetsTheStateAndStatements() {
        MySqlServerConnection c = loggedIn();
        c.state().apply(new MySqlSessionChanges(java.util.Map.of("time_zone", "+05:00"), null, false, null, null));
        c.statements().put(new MySqlServerStatements.Text("SELECT 1".getBytes(StandardCharsets.UTF_8)), 3, 0, 1);
        c.reset(false);
        assertThat(context.reports).containsExactly("resetDone");
        assertThat(c.collation()).as("a reset without COM_RESET_CONNECTION keeps what is known").isEqualTo(45);
        context.reports.clear();
        c.reset(true);
        // MariaDB 10.11's greeting: its COM_RESET_CONNECTION restores the login's character set, so no SET of it
        assertThat(context.takeToServer()).isEqualTo(concat(packet(0, payload(0x1F)),
                Packets.query(MySqlSessionState.ENABLE_TRACKING), packet(0, payload(0x02, "test"))));
        c.onServerBytes(context.wrap(concat(Packets.ok(1, 2), Packets.ok(1, 2))));
        assertThat(context.reports).isEmpty();
        c.onServerBytes(context.wrap(Packets.ok(1, 2)));
        assertThat(context.reports).containsExactly("resetDone");
        assertThat(c.state().variables()).isEmpty();
        assertThat(c.statements().preparedCount()).isZero();
        c.close();
    }

    @Test
    void aReplayWritesWhatDiffersAndRecordsItOnlyWhenEveryAnswerIsOk() {
        MySqlServerConnection c = loggedIn();
        c.state().apply(new MySqlSessionChanges(java.util.Map.of("sql_mode", "ANSI_QUOTES", "time_zone", "+01:00"),
                null, false, null, null));
        MySqlSessionState client = new MySqlSessionState("test");
        client.apply(new MySqlSessionChanges(java.util.Map.of("time_zone", "+05:00"), "other", false, null, null));
        ByteBuf out = context.alloc.heapBuffer();
        MySqlStateReplay replay = MySqlStateReplay.write(out, client, c, 45);
        byte[] written = new byte[out.readableBytes()];
        out.readBytes(written).release();
        String text = new String(written, StandardCharsets.UTF_8);
        assertThat(text).contains("SET SESSION ").contains("sql_mode = DEFAULT").contains("time_zone = '+05:00'")
                .doesNotContain("character_set");
        assertThat(written).endsWith(packet(0, payload(0x02, "other")));
        assertThat(replay.answer(Unpooled.wrappedBuffer(Packets.ok(1, 2)), client)).isFalse();
        assertThat(replay.answer(Unpooled.wrappedBuffer(Packets.ok(1, 2)), client)).isTrue();
        assertThat(replay.takeError()).isNull();
        assertThat(c.state().variables()).containsExactly(java.util.Map.entry("time_zone", "+05:00"));
        assertThat(c.state().schema()).isEqualTo("other");
        ByteBuf again = context.alloc.heapBuffer();
        assertThat(MySqlStateReplay.write(again, client, c, 45)).as("it matches now: nothing to send").isNull();
        assertThat(again.isReadable()).isFalse();
        again.release();

        MySqlSessionState other = new MySqlSessionState("test");
        ByteBuf back = context.alloc.heapBuffer();
        MySqlStateReplay failing = MySqlStateReplay.write(back, other, c, 33);
        back.release();
        assertThat(failing.answer(Unpooled.wrappedBuffer(Packets.err(1, 1115, "Unknown character set")), other)).isFalse();
        assertThat(failing.answer(Unpooled.wrappedBuffer(Packets.ok(1, 2)), other)).isFalse();
        assertThat(failing.answer(Unpooled.wrappedBuffer(Packets.ok(1, 2)), other)).isTrue();
        ByteBuf error = failing.takeError();
        assertThat(error.getUnsignedShortLE(MySqlWire.HEADER_SIZE + 1)).isEqualTo(1115);
        assertThat(c.collation()).as("not known after a failed replay").isEqualTo(-1);
        ByteBuf signal = MySqlSignal.of(context.alloc, error);
        assertThat(signal.toString(MySqlWire.HEADER_SIZE + 1, signal.readableBytes() - MySqlWire.HEADER_SIZE - 1,
                StandardCharsets.UTF_8)).startsWith("SIGNAL SQLSTATE '").contains("SET MYSQL_ERRNO = 1115, MESSAGE_TEXT = ")
                .contains("Unknown character set");
        signal.release();
        c.close();
    }

    @Test
    void aSignalRepeatsCodeStateAndMessageAndNeverAWarningClass() {
        ByteBuf err = Unpooled.wrappedBuffer(packet(1, payload(0xFF, 1243 & 0xFF, 1243 >> 8, "#HY000",
                "Unknown prepared statement handler (7) given to it's \"x\"")));
        ByteBuf signal = MySqlSignal.of(context.alloc, err);
        String sql = signal.toString(MySqlWire.HEADER_SIZE + 1, signal.readableBytes() - MySqlWire.HEADER_SIZE - 1,
                StandardCharsets.UTF_8);
        assertThat((int) signal.getUnsignedByte(MySqlWire.HEADER_SIZE)).isEqualTo(MySqlCommand.COM_QUERY);
        assertThat(sql).startsWith("SIGNAL SQLSTATE 'HY000' SET MYSQL_ERRNO = 1243, MESSAGE_TEXT = X'");
        signal.release();
        ByteBuf warning = MySqlSignal.of(context.alloc, 1000, "01000", "a warning class would not be an error");
        assertThat(warning.toString(StandardCharsets.UTF_8)).contains("SQLSTATE 'HY000'");
        warning.release();
    }
}
