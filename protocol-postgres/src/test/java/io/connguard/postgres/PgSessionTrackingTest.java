package io.connguard.postgres;

import io.connguard.core.testing.LeakGuard;
import org.junit.jupiter.api.extension.ExtendWith;
import io.connguard.core.api.ProxyError;
import io.connguard.core.api.SessionState;
import io.netty.buffer.ByteBuf;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Random;

import static io.connguard.core.api.SessionState.ACTIVE;
import static io.connguard.core.api.SessionState.IDLE;
import static io.connguard.core.api.SessionState.IDLE_IN_TRANSACTION;
import static io.connguard.core.api.SessionState.UNKNOWN;
import static io.connguard.postgres.PgMessages.bind;
import static io.connguard.postgres.PgMessages.commandComplete;
import static io.connguard.postgres.PgMessages.concat;
import static io.connguard.postgres.PgMessages.copyData;
import static io.connguard.postgres.PgMessages.copyDone;
import static io.connguard.postgres.PgMessages.copyInResponse;
import static io.connguard.postgres.PgMessages.copyOutResponse;
import static io.connguard.postgres.PgMessages.execute;
import static io.connguard.postgres.PgMessages.extended;
import static io.connguard.postgres.PgMessages.flush;
import static io.connguard.postgres.PgMessages.int32;
import static io.connguard.postgres.PgMessages.message;
import static io.connguard.postgres.PgMessages.notice;
import static io.connguard.postgres.PgMessages.notification;
import static io.connguard.postgres.PgMessages.parameterStatus;
import static io.connguard.postgres.PgMessages.parse;
import static io.connguard.postgres.PgMessages.query;
import static io.connguard.postgres.PgMessages.readyForQuery;
import static io.connguard.postgres.PgMessages.startup;
import static io.connguard.postgres.PgMessages.sync;
import static io.connguard.postgres.PgMessages.terminate;
import static org.assertj.core.api.Assertions.assertThat;

/** Hand-built sequences for what the tracker must decide, and what it must survive. */
@ExtendWith(LeakGuard.class)
class PgSessionTrackingTest {

    private static PgTestContext loggedIn() {
        PgTestContext context = new PgTestContext(new PgModule());
        context.client(startup("user", "u", "database", "d"));
        context.server(PgMessages.loginOk(100, PgMessages.key(4, 9)));
        assertThat(context.recording.states).containsExactly(IDLE);
        return context;
    }

    private static List<SessionState> states(PgTestContext context) {
        return context.recording.states;
    }

    @Test
    void nothingIsReportedBeforeTheFirstReadyForQuery() {
        PgTestContext context = new PgTestContext(new PgModule());
        context.client(startup("user", "u"));
        context.server(message('R', int32(5), new byte[] {1, 2, 3, 4}));   // AuthenticationMD5Password
        context.client(message('p', PgMessages.cstring("md5abc")));
        context.server(PgMessages.authenticationOk());
        assertThat(states(context)).isEmpty();
        assertThat(context.session.upstreamGoodbye()).as("no Terminate to a server still authenticating").isNull();
        context.server(concat(parameterStatus("a", "b"), PgMessages.backendKeyData(1, PgMessages.key(4, 1)),
                readyForQuery('I')));
        assertThat(states(context)).containsExactly(IDLE);
        context.closeAndCheckBuffers();
    }

    @Test
    void aPipelinedBatchWithSeveralSyncsStaysActiveUntilItsLastReadyForQuery() {
        PgTestContext context = loggedIn();
        context.client(concat(extended("BEGIN"), extended("UPDATE t SET a = 1"), extended("SELECT 1")));
        assertThat(states(context)).containsExactly(IDLE, ACTIVE);
        context.server(concat(commandComplete("BEGIN"), readyForQuery('T')));
        context.server(concat(commandComplete("UPDATE 1"), readyForQuery('T')));
        assertThat(states(context)).as("two of three answered").containsExactly(IDLE, ACTIVE);
        context.server(concat(commandComplete("SELECT 1"), readyForQuery('T')));
        assertThat(states(context)).containsExactly(IDLE, ACTIVE, IDLE_IN_TRANSACTION);
        context.closeAndCheckBuffers();
    }

    @Test
    void extendedMessagesWhoseSyncHasNotArrivedKeepTheSessionActive() {
        PgTestContext context = loggedIn();
        context.client(concat(extended("SELECT 1"), parse("", "SELECT 2"), bind()));
        context.server(readyForQuery('I'));
        assertThat(states(context)).containsExactly(IDLE, ACTIVE);
        context.client(concat(execute(), sync()));
        context.server(readyForQuery('I'));
        assertThat(states(context)).containsExactly(IDLE, ACTIVE, IDLE);
        context.closeAndCheckBuffers();
    }

    @Test
    void aFlushAloneIsNotARequest() {
        PgTestContext context = loggedIn();
        context.client(flush());
        assertThat(states(context)).containsExactly(IDLE);
        context.closeAndCheckBuffers();
    }

    @Test
    void asynchronousServerMessagesAreNotClientActivity() {
        PgTestContext context = loggedIn();
        context.client(query("BEGIN"));
        context.server(readyForQuery('T'));
        context.server(concat(notice("checkpoint"), notification(7, "jobs", "ready"),
                parameterStatus("application_name", "x")));
        assertThat(states(context)).containsExactly(IDLE, ACTIVE, IDLE_IN_TRANSACTION);
        context.closeAndCheckBuffers();
    }

    @Test
    void aStalledCopyInIsActive() {
        PgTestContext context = loggedIn();
        context.client(query("COPY t FROM STDIN"));
        context.server(copyInResponse());
        context.client(copyData("1\n"));
        context.server(notice("still here"));
        assertThat(states(context)).containsExactly(IDLE, ACTIVE);
        context.client(copyDone());
        context.server(concat(commandComplete("COPY 1"), readyForQuery('I')));
        assertThat(states(context)).containsExactly(IDLE, ACTIVE, IDLE);
        context.closeAndCheckBuffers();
    }

    @Test
    void anExtendedCopyInWhoseFirstSyncTheServerIgnoresEndsIdle() {
        PgTestContext context = loggedIn();
        context.client(extended("COPY t FROM STDIN"));
        context.server(concat(message('1'), message('2'), copyInResponse()));
        context.client(concat(copyData("1\n"), copyDone(), sync()));
        context.server(concat(commandComplete("COPY 1"), readyForQuery('I')));
        assertThat(states(context)).containsExactly(IDLE, ACTIVE, IDLE);
        context.closeAndCheckBuffers();
    }

    @Test
    void aCopyOutIsActiveUntilItsReadyForQuery() {
        PgTestContext context = loggedIn();
        context.client(query("COPY t TO STDOUT"));
        context.server(concat(copyOutResponse(), copyData("1\n"), copyDone(), commandComplete("COPY 1")));
        assertThat(states(context)).containsExactly(IDLE, ACTIVE);
        context.server(readyForQuery('I'));
        assertThat(states(context)).containsExactly(IDLE, ACTIVE, IDLE);
        context.closeAndCheckBuffers();
    }

    @Test
    void aReadyForQueryNobodyAskedForMakesTheSessionUnknownOnce() {
        PgTestContext context = loggedIn();
        context.server(readyForQuery('I'));
        context.server(readyForQuery('I'));
        context.client(query("SELECT 1"));
        assertThat(states(context)).containsExactly(IDLE, UNKNOWN);
        assertThat(context.recording.lostSync).containsExactly("ReadyForQuery without a pending request");
        context.closeAndCheckBuffers();
    }

    @Test
    void unknownMessageTypesAreRelayedAndMakeTheSessionUnknown() {
        PgTestContext context = loggedIn();
        byte[] odd = message('z', new byte[] {1, 2, 3});
        context.client(odd);
        assertThat(context.recording.takeToUpstream()).endsWith(odd);
        context.server(message('?'));
        assertThat(context.recording.lostSync).containsExactly("unknown frontend message type 0x7a");
        assertThat(states(context)).containsExactly(IDLE, UNKNOWN);
        context.closeAndCheckBuffers();
    }

    @Test
    void aBadTransactionStatusIsNotUnderstood() {
        PgTestContext context = loggedIn();
        context.client(query("SELECT 1"));
        context.server(readyForQuery('X'));
        assertThat(context.recording.lostSync).singleElement().asString().contains("transaction status 0x58");
        context.closeAndCheckBuffers();
    }

    @Test
    void anUnframeableClientStreamStopsEnforcementAndNoTerminateIsInserted() {
        PgTestContext context = loggedIn();
        context.client(new byte[] {'Q', 0, 0, 0, 1, 'x', 'y'});
        assertThat(context.recording.lostSync).singleElement().asString().startsWith("client stream: invalid message length 1");
        assertThat(context.session.upstreamGoodbye()).isNull();
        context.closeAndCheckBuffers();
    }

    @Test
    void errorsAreOnlyInsertedBetweenServerMessages() {
        PgTestContext context = loggedIn();
        ProxyError kill = new ProxyError(ProxyError.Kind.IDLE_IN_TRANSACTION_TIMEOUT,
                "terminating connection due to idle-in-transaction timeout", "idleInTransactionTimeout is 60s");
        context.client(query("SELECT repeat('x', 100)"));
        byte[] row = message('D', PgMessages.int16(1), int32(100), new byte[100]);
        context.server(java.util.Arrays.copyOf(row, 50));
        assertThat(context.session.clientError(kill)).as("mid DataRow").isNull();
        context.server(java.util.Arrays.copyOfRange(row, 50, row.length));
        ByteBuf error = context.session.clientError(kill);
        assertThat(error).isNotNull();
        assertThat(PgErrorParser.fields(io.netty.buffer.ByteBufUtil.getBytes(error))).containsEntry('C', "25P03")
                .containsEntry('D', "idleInTransactionTimeout is 60s");
        error.release();
        context.closeAndCheckBuffers();
    }

    @Test
    void terminateGoesUpstreamOnlyBetweenClientMessagesAndOnlyOnce() {
        PgTestContext context = loggedIn();
        ByteBuf goodbye = context.session.upstreamGoodbye();
        assertThat(io.netty.buffer.ByteBufUtil.getBytes(goodbye)).isEqualTo(terminate());
        goodbye.release();
        byte[] q = query("SELECT 1");
        context.client(java.util.Arrays.copyOf(q, 7));
        assertThat(context.session.upstreamGoodbye()).as("mid Query").isNull();
        assertThat(context.session.clientSaidGoodbye()).as("mid Query: the proxy must end the stream").isFalse();
        context.client(java.util.Arrays.copyOfRange(q, 7, q.length));
        context.client(terminate());
        assertThat(context.session.upstreamGoodbye()).as("the client said goodbye itself").isNull();
        assertThat(context.session.clientSaidGoodbye()).as("the server closes by itself").isTrue();
        context.closeAndCheckBuffers();
    }

    @Test
    void theLastStatementIsFingerprintedAndBounded() {
        PgTestContext context = loggedIn();
        assertThat(context.session.lastStatement()).isEmpty();
        context.client(query("SELECT * FROM accounts WHERE owner = 'alice' AND balance > 1000"));
        assertThat(context.session.lastStatement()).isEqualTo("SELECT * FROM accounts WHERE owner = ? AND balance > ?");
        context.client(parse("S_12", "UPDATE accounts SET balance = $1 WHERE id = 42"));
        assertThat(context.session.lastStatement()).isEqualTo("UPDATE accounts SET balance = $1 WHERE id = ?");
        String huge = "SELECT '" + "x".repeat(1 << 20) + "'";
        byte[] message = query(huge);
        for (int at = 0; at < message.length; at += 65536) {
            context.client(java.util.Arrays.copyOfRange(message, at, Math.min(message.length, at + 65536)));
        }
        assertThat(context.session.lastStatement()).isEqualTo("SELECT ?");
        context.client(query("SELECT " + "a, ".repeat(300) + "b"));
        assertThat(context.session.lastStatement()).hasSizeLessThanOrEqualTo(PgStatementCapture.CAPACITY);
        context.closeAndCheckBuffers();
    }

    @Test
    void aGigabyteRowStreamsThroughWithoutAnyAllocation() {
        PgTestContext context = loggedIn();
        context.client(query("SELECT big FROM t"));
        int allocationsBefore = context.sessionAlloc.allocations();
        long size = 1L << 30;
        context.server(concat(new byte[] {'D'}, int32((int) (size + 4))));
        byte[] chunk = new byte[1 << 20];
        for (long sent = 0; sent < size; sent += chunk.length) {
            context.server(chunk);
            context.recording.takeToClient();
        }
        context.server(concat(commandComplete("SELECT 1"), readyForQuery('I')));
        assertThat(context.sessionAlloc.allocations()).isEqualTo(allocationsBefore);
        assertThat(states(context)).containsExactly(IDLE, ACTIVE, IDLE);
        context.closeAndCheckBuffers();
    }

    @Test
    void randomGarbageInEitherDirectionIsRelayedAndAtMostLosesSync() {
        Random random = new Random(2024);
        for (int round = 0; round < 500; round++) {
            PgTestContext context = loggedIn();
            for (int step = 0; step < 10; step++) {
                byte[] garbage = new byte[random.nextInt(40)];
                random.nextBytes(garbage);
                if (random.nextBoolean()) {
                    context.client(garbage);
                } else {
                    context.server(garbage);
                }
            }
            assertThat(context.recording.violations).isEmpty();
            assertThat(context.recording.lostSync).hasSizeLessThanOrEqualTo(1);
            ByteBuf error = context.session.clientError(new ProxyError(ProxyError.Kind.ADMIN_KILL, "killed", ""));
            if (error != null) {
                error.release();
            }
            ByteBuf goodbye = context.session.upstreamGoodbye();
            if (goodbye != null) {
                goodbye.release();
            }
            context.closeAndCheckBuffers();
        }
    }

    @Test
    void randomGarbageFromTheFirstByteEndsInAViolationAClosedSessionOrAnIdentityNeverAnException() {
        Random random = new Random(99);
        for (int round = 0; round < 2000; round++) {
            PgTestContext context = new PgTestContext(new PgModule());
            byte[] garbage = new byte[random.nextInt(300)];
            random.nextBytes(garbage);
            if (round % 2 == 0 && garbage.length > 8) {
                System.arraycopy(int32(Math.min(garbage.length, 8 + random.nextInt(40))), 0, garbage, 0, 4);
                System.arraycopy(int32(PgMessages.PROTOCOL_3_0), 0, garbage, 4, 4);
            }
            for (int at = 0; at < garbage.length; ) {
                int n = 1 + random.nextInt(garbage.length - at);
                context.client(java.util.Arrays.copyOfRange(garbage, at, at + n));
                at += n;
            }
            assertThat(context.recording.violations.size() + context.recording.identities.size()).isLessThanOrEqualTo(1);
            context.closeAndCheckBuffers();
        }
    }

    @Test
    void anApplicationNameTheServerReportsAfterStartUpReKeysTheSessionHoweverTheBytesAreCut() {
        byte[] reports = concat(commandComplete("SET"), parameterStatus("application_names", "not it"),
                parameterStatus("application_name", "orders-api"), parameterStatus("TimeZone", "UTC"),
                readyForQuery('I'));
        for (int cut = 0; cut <= reports.length; cut++) {
            PgTestContext context = loggedIn();
            assertThat(context.recording.identities).hasSize(1);
            context.client(query("SET application_name = 'orders-api'"));
            context.server(java.util.Arrays.copyOfRange(reports, 0, cut));
            context.server(java.util.Arrays.copyOfRange(reports, cut, reports.length));
            assertThat(context.recording.identities).as("cut at %d", cut).hasSize(2);
            assertThat(context.recording.identities.get(1).application()).isEqualTo("orders-api");
            assertThat(context.recording.identities.get(1).user()).isEqualTo("u");
            assertThat(context.recording.identities.get(1).database()).isEqualTo("d");
            assertThat(states(context)).containsExactly(IDLE, ACTIVE, IDLE);
            context.closeAndCheckBuffers();
        }
    }

    @Test
    void theStartUpReportOfTheSameApplicationNameChangesNothingAndALongOneIsReadUpToTheServersLimit() {
        PgTestContext context = new PgTestContext(new PgModule());
        context.client(startup("user", "u", "database", "d", "application_name", "web"));
        context.server(concat(PgMessages.authenticationOk(), parameterStatus("application_name", "web"),
                PgMessages.backendKeyData(7, PgMessages.key(4, 2)), readyForQuery('I')));
        assertThat(context.recording.identities).extracting(identity -> identity.application()).containsExactly("web");
        String long63 = "a".repeat(63);
        context.client(query("SET application_name = '" + long63 + "'"));
        context.server(concat(commandComplete("SET"), parameterStatus("application_name", long63), readyForQuery('I')));
        assertThat(context.recording.identities).extracting(identity -> identity.application())
                .containsExactly("web", long63);
        context.closeAndCheckBuffers();
    }
}
