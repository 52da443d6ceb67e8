package io.connguard.mysql;

import io.connguard.core.api.SessionState;
import io.connguard.core.testing.LeakGuard;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.ByteArrayOutputStream;
import java.util.ArrayList;
import java.util.List;

import static io.connguard.core.api.SessionState.ACTIVE;
import static io.connguard.core.api.SessionState.IDLE;
import static io.connguard.core.api.SessionState.IDLE_IN_TRANSACTION;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * Replays the command phase of conversations captured from MariaDB 10.11 and the {@code mariadb} client
 * through a session, each chunk split at every offset and also fed byte by byte: the bytes must come
 * out unchanged on the other side, the states must be the same however the bytes were cut, and every
 * buffer must be released.
 */
@ExtendWith(LeakGuard.class)
class MySqlFixtureReplayTest {

    /** Chunks of a fixture after its handshake (greeting, response, any auth exchange, OK). */
    private static List<Packets.Chunk> commandPhase(String fixture) {
        List<Packets.Chunk> chunks = Packets.fixture(fixture);
        for (int i = 1; i < chunks.size(); i++) {
            if (!chunks.get(i).fromClient() && chunks.get(i).bytes()[4] == 0) {
                return chunks.subList(i + 1, chunks.size());
            }
        }
        throw new IllegalArgumentException(fixture + " has no authentication OK");
    }

    private record Outcome(byte[] toUpstream, byte[] toClient, List<SessionState> states, List<String> lostSync) {
    }

    /** Feeds every chunk cut at {@code cut} (0 = whole; -1 = byte by byte). */
    private static Outcome replay(String fixture, int cut) {
        Conversation conversation = new Conversation(Conversation.moduleWithGreeting(),
                Conversation.listener(io.connguard.core.api.ListenerInfo.UpstreamTlsMode.DISABLE))
                .authenticate(Conversation.LIBMARIADB_CAPS);
        conversation.context.recording.states.clear();
        ByteArrayOutputStream upstream = new ByteArrayOutputStream();
        ByteArrayOutputStream client = new ByteArrayOutputStream();
        for (Packets.Chunk chunk : commandPhase(fixture)) {
            byte[] bytes = chunk.bytes();
            List<int[]> pieces = new ArrayList<>();
            if (cut < 0) {
                for (int i = 0; i < bytes.length; i++) {
                    pieces.add(new int[] {i, i + 1});
                }
            } else if (cut > 0 && cut < bytes.length) {
                pieces.add(new int[] {0, cut});
                pieces.add(new int[] {cut, bytes.length});
            } else {
                pieces.add(new int[] {0, bytes.length});
            }
            for (int[] piece : pieces) {
                if (chunk.fromClient()) {
                    conversation.session.onClientBytes(conversation.context.wrap(bytes, piece[0], piece[1]));
                } else {
                    conversation.session.onUpstreamBytes(conversation.context.wrap(bytes, piece[0], piece[1]));
                }
            }
            upstream.writeBytes(conversation.toUpstream());
            client.writeBytes(conversation.toClient());
        }
        Outcome outcome = new Outcome(upstream.toByteArray(), client.toByteArray(),
                List.copyOf(conversation.context.recording.states), List.copyOf(conversation.context.recording.lostSync));
        assertThat(conversation.context.recording.violations).isEmpty();
        conversation.finish();
        return outcome;
    }

    @ParameterizedTest
    @ValueSource(strings = {"mariadb-select-transaction", "mariadb-procedure-two-results", "mariadb-multi-statements-error",
            "mariadb-load-data-local", "mariadb-admin-ping-status", "mariadb-ed25519", "sysbench-point-select",
            "sysbench-read-only"})
    void relaysUnchangedAndTracksTheSameStatesHoweverTheBytesAreCut(String fixture) {
        ByteArrayOutputStream clientSent = new ByteArrayOutputStream();
        ByteArrayOutputStream serverSent = new ByteArrayOutputStream();
        int longest = 0;
        for (Packets.Chunk chunk : commandPhase(fixture)) {
            (chunk.fromClient() ? clientSent : serverSent).writeBytes(chunk.bytes());
            longest = Math.max(longest, chunk.bytes().length);
        }
        Outcome whole = replay(fixture, 0);
        assertThat(whole.toUpstream()).isEqualTo(clientSent.toByteArray());
        assertThat(whole.toClient()).isEqualTo(serverSent.toByteArray());
        assertThat(whole.lostSync()).isEmpty();
        assertThat(whole.states()).last().isIn(IDLE, IDLE_IN_TRANSACTION);
        for (int cut = -1; cut < longest; cut++) {
            Outcome split = replay(fixture, cut);
            assertThat(split.toUpstream()).as("cut at %d", cut).isEqualTo(whole.toUpstream());
            assertThat(split.toClient()).as("cut at %d", cut).isEqualTo(whole.toClient());
            assertThat(split.states()).as("cut at %d", cut).isEqualTo(whole.states());
            assertThat(split.lostSync()).as("cut at %d", cut).isEmpty();
        }
    }

    @org.junit.jupiter.api.Test
    void transactionStateFollowsTheServerStatusFlags() {
        // select; start transaction; insert; select; rollback; quit
        assertThat(replay("mariadb-select-transaction", 0).states()).containsExactly(
                ACTIVE, IDLE, ACTIVE, IDLE_IN_TRANSACTION, ACTIVE, IDLE_IN_TRANSACTION, ACTIVE, IDLE_IN_TRANSACTION,
                ACTIVE, IDLE);
    }

    @org.junit.jupiter.api.Test
    void aProcedureWithTwoResultSetsStaysActiveUntilItsFinalOk() {
        assertThat(replay("mariadb-procedure-two-results", 0).states()).containsExactly(ACTIVE, IDLE);
    }

    @org.junit.jupiter.api.Test
    void localInfileWithAProgressPacketEndsAtTheOkAfterTheFile() {
        assertThat(replay("mariadb-load-data-local", 0).states()).containsExactly(ACTIVE, IDLE, ACTIVE, IDLE);
    }
}
