package io.connguard.postgres;

import io.connguard.core.testing.LeakGuard;
import org.junit.jupiter.api.extension.ExtendWith;
import io.connguard.core.api.ClientIdentity;
import io.connguard.core.api.SessionState;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;

import static io.connguard.core.api.SessionState.ACTIVE;
import static io.connguard.core.api.SessionState.IDLE;
import static io.connguard.core.api.SessionState.IDLE_IN_TRANSACTION;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * Real conversations recorded between psql / pgbench / raw clients and PostgreSQL 15, replayed through a
 * session: every byte must come out unchanged on the other side, and the reported states must be the
 * ones the conversation shows, however the bytes are cut.
 */
@ExtendWith(LeakGuard.class)
class PgSessionReplayTest {

    private static List<SessionState> idleThenQueries(int queries) {
        List<SessionState> states = new ArrayList<>(List.of(IDLE));
        for (int i = 0; i < queries; i++) {
            states.add(ACTIVE);
            states.add(IDLE);
        }
        return states;
    }

    static Stream<Arguments> conversations() {
        SessionState a = ACTIVE;
        SessionState i = IDLE;
        SessionState t = IDLE_IN_TRANSACTION;
        return Stream.of(
                Arguments.of("psql-simple", idleThenQueries(1), "SELECT ? AS one, ? AS two"),
                // BEGIN; SELECT 1; SELECT 1/0 (failed transaction: status E); ROLLBACK; BEGIN; SELECT 2; COMMIT
                Arguments.of("psql-transaction", List.of(i, a, t, a, t, a, t, a, i, a, t, a, t, a, i), "COMMIT"),
                Arguments.of("psql-copy", idleThenQueries(4), "COPY ( SELECT * FROM cg_pg_fixture ) TO STDOUT"),
                Arguments.of("psql-notify", idleThenQueries(4), "SET application_name = ?;"),
                Arguments.of("scram", idleThenQueries(1), "SELECT current_user"),
                Arguments.of("md5", idleThenQueries(1), "SELECT current_user"),
                Arguments.of("wrong-password", List.of(), ""),
                Arguments.of("pgbench-simple", idleThenQueries(6), "SELECT ?;"),
                Arguments.of("pgbench-extended", idleThenQueries(6), "SELECT $1;"),
                Arguments.of("pgbench-prepared", idleThenQueries(8), "SELECT $1;"),
                Arguments.of("pgbench-pipeline", idleThenQueries(3), "SELECT ?;"),
                // three batches in one write (the second fails), then BEGIN + SELECT left open, then COMMIT
                Arguments.of("pipelined-syncs", List.of(i, a, i, a, t, a, i), "COMMIT"),
                // extended COPY FROM STDIN (its first Sync ignored by the server), COPY TO, a failed COPY
                Arguments.of("extended-copy", idleThenQueries(4), "COPY cg_pg_fixture_copy FROM STDIN"),
                Arguments.of("function-call", List.of(i, a, t, a, t, a, i), "ROLLBACK"),
                Arguments.of("replication", idleThenQueries(2), "START_REPLICATION PHYSICAL ?/"));
    }

    private static PgTestContext replay(PgTrace trace) {
        PgTestContext context = new PgTestContext(new PgModule());
        context.replay(trace);
        return context;
    }

    private static void assertFaithful(PgTestContext context, PgTrace trace, List<SessionState> states) {
        assertThat(context.recording.takeToUpstream()).as("client bytes relayed").isEqualTo(trace.stream(true));
        assertThat(context.recording.takeToClient()).as("server bytes relayed").isEqualTo(trace.stream(false));
        assertThat(context.recording.states).as("states").isEqualTo(states);
        assertThat(context.recording.lostSync).isEmpty();
        assertThat(context.recording.violations).isEmpty();
        // The start-up names the client; a SET application_name (psql-notify renames itself) re-keys it.
        boolean renames = new String(trace.stream(true), java.nio.charset.StandardCharsets.ISO_8859_1)
                .contains("SET application_name");
        List<String> applications = context.recording.identities.stream().map(ClientIdentity::application).toList();
        if (renames) {
            assertThat(applications).containsExactly("fixture", "renamed");
        } else {
            assertThat(applications).hasSize(1);
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("conversations")
    void relaysEveryByteAndReportsTheConversationsStates(String name, List<SessionState> states, String statement) {
        PgTrace trace = PgTrace.load(name);
        PgTestContext context = replay(trace);
        assertFaithful(context, trace, states);
        if (statement.endsWith("/")) {
            // The LSN's hex digits are core's fingerprint business; the statement is recognisable.
            assertThat(context.session.lastStatement()).startsWith(statement);
        } else {
            assertThat(context.session.lastStatement()).isEqualTo(statement);
        }
        context.closeAndCheckBuffers();
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("conversations")
    void theSameWhereverTheConversationIsCut(String name, List<SessionState> states) {
        PgTrace trace = PgTrace.load(name);
        for (int offset = 1; offset < trace.totalBytes(); offset++) {
            PgTestContext context = replay(trace.splitAt(offset));
            assertFaithful(context, trace, states);
            context.closeAndCheckBuffers();
        }
        for (int size : new int[] {1, 2, 3, 5, 7, 64}) {
            PgTestContext context = replay(trace.rechunked(size));
            assertFaithful(context, trace, states);
            context.closeAndCheckBuffers();
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("conversations")
    void theIdentityComesFromTheStartupMessage(String name) {
        PgTestContext context = replay(PgTrace.load(name));
        ClientIdentity identity = context.recording.identities.get(0);
        assertThat(identity.database()).isEqualTo("test");
        assertThat(identity.replication()).isEqualTo(name.equals("replication"));
        if (name.startsWith("psql")) {
            assertThat(identity.application()).isEqualTo("fixture");
            assertThat(identity.user()).isEqualTo("postgres");
        }
        context.closeAndCheckBuffers();
    }
}
