package io.connguard.core.timers;

import io.connguard.core.api.SessionState;
import io.connguard.core.config.Limits;
import io.connguard.core.timers.SessionTimers.Expiry;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.PriorityQueue;

import static org.assertj.core.api.Assertions.assertThat;

/** The session timers against a hand-driven clock and scheduler: no sleeps, exact deadlines. */
class SessionTimersTest {

    private static final long S = 1_000_000_000L;

    /** A clock and a scheduler the test advances by hand. */
    private static final class FakeTime implements SessionTimers.Scheduler {
        long now;
        final PriorityQueue<SessionTimers> tasks = new PriorityQueue<>((a, b) -> Long.compare(a.scheduledAt(), b.scheduledAt()));
        int scheduled;

        @Override
        public void schedule(SessionTimers timers, long deadline) {
            scheduled++;
            assertThat(deadline).isEqualTo(timers.scheduledAt());
            tasks.remove(timers);
            tasks.add(timers);
        }

        @Override
        public void cancel(SessionTimers timers) {
            tasks.remove(timers);
        }

        void advance(long nanos) {
            long until = now + nanos;
            while (!tasks.isEmpty() && tasks.peek().scheduledAt() <= until) {
                SessionTimers t = tasks.poll();
                now = Math.max(now, t.scheduledAt());
                t.fire(now);
            }
            now = until;
        }
    }

    private static final class Recorder implements SessionTimers.Actions {
        final List<String> events = new ArrayList<>();

        @Override
        public void expired(Expiry expiry) {
            events.add(expiry.name());
        }

        @Override
        public void leakSuspected(long idleNanos) {
            events.add("LEAK after " + idleNanos / S + "s");
        }
    }

    private static Limits limits(long iitSeconds, long idleSeconds, long leakSeconds, long lifetimeSeconds) {
        return new Limits(0, Duration.ZERO, 0, Duration.ofSeconds(iitSeconds), Duration.ofSeconds(idleSeconds),
                Duration.ofSeconds(leakSeconds), Duration.ofSeconds(lifetimeSeconds));
    }

    private final FakeTime time = new FakeTime();
    private final Recorder actions = new Recorder();

    private SessionTimers timers(Limits limits) {
        return new SessionTimers(time, actions, time.now, limits, false);
    }

    @Test
    void idleInTransactionFiresAfterItsTimeoutAndNotBefore() {
        SessionTimers timers = timers(limits(60, 0, 0, 0));
        timers.state(SessionState.IDLE_IN_TRANSACTION, time.now);
        time.advance(59 * S);
        assertThat(actions.events).isEmpty();
        time.advance(1 * S);
        assertThat(actions.events).containsExactly("IDLE_IN_TRANSACTION");
    }

    @Test
    void activityRestartsTheClockAndNothingFiresWhileActive() {
        SessionTimers timers = timers(limits(60, 0, 0, 0));
        timers.state(SessionState.IDLE_IN_TRANSACTION, time.now);
        time.advance(50 * S);
        timers.state(SessionState.ACTIVE, time.now);
        time.advance(600 * S);
        assertThat(actions.events).as("a long query inside the transaction is not idle").isEmpty();
        timers.state(SessionState.IDLE_IN_TRANSACTION, time.now);
        time.advance(59 * S);
        assertThat(actions.events).isEmpty();
        time.advance(1 * S);
        assertThat(actions.events).containsExactly("IDLE_IN_TRANSACTION");
    }

    @Test
    void idleTimeoutAndLeakDetectionOutsideATransaction() {
        SessionTimers timers = timers(limits(60, 300, 120, 0));
        timers.state(SessionState.IDLE, time.now);
        time.advance(120 * S);
        assertThat(actions.events).containsExactly("LEAK after 120s");
        time.advance(179 * S);
        assertThat(actions.events).containsExactly("LEAK after 120s");
        time.advance(1 * S);
        assertThat(actions.events).containsExactly("LEAK after 120s", "IDLE");
    }

    @Test
    void leakIsReportedOncePerIdlePeriodAndAgainAfterUse() {
        SessionTimers timers = timers(limits(0, 0, 10, 0));
        timers.state(SessionState.IDLE, time.now);
        time.advance(100 * S);
        assertThat(actions.events).containsExactly("LEAK after 10s");
        timers.state(SessionState.ACTIVE, time.now);
        timers.state(SessionState.IDLE, time.now);
        time.advance(10 * S);
        assertThat(actions.events).containsExactly("LEAK after 10s", "LEAK after 10s");
    }

    @Test
    void lifetimeEndsASessionOnlyOnceItIsIdleOutsideATransaction() {
        SessionTimers timers = timers(limits(0, 0, 0, 100));
        timers.state(SessionState.IDLE_IN_TRANSACTION, time.now);
        time.advance(150 * S);
        assertThat(actions.events).isEmpty();
        timers.state(SessionState.ACTIVE, time.now);
        time.advance(10 * S);
        assertThat(actions.events).isEmpty();
        timers.state(SessionState.IDLE, time.now);
        time.advance(0);
        assertThat(actions.events).containsExactly("LIFETIME");
    }

    @Test
    void zeroLimitsScheduleNothing() {
        SessionTimers timers = timers(limits(0, 0, 0, 0));
        for (int i = 0; i < 100; i++) {
            timers.state(SessionState.IDLE, time.now);
            timers.state(SessionState.ACTIVE, time.now);
            timers.state(SessionState.IDLE_IN_TRANSACTION, time.now);
        }
        time.advance(1_000_000 * S);
        assertThat(time.scheduled).isZero();
        assertThat(actions.events).isEmpty();
    }

    @Test
    void autocommitTrafficSchedulesNothingPerQuery() {
        SessionTimers timers = timers(limits(60, 0, 600, 0));
        timers.state(SessionState.IDLE, time.now);
        int before = time.scheduled;
        for (int i = 0; i < 10_000; i++) {
            timers.state(SessionState.ACTIVE, time.now);
            time.advance(1_000_000);
            timers.state(SessionState.IDLE, time.now);
            time.advance(1_000_000);
        }
        assertThat(time.scheduled - before).as("checks scheduled for 10,000 queries").isLessThanOrEqualTo(1);
        assertThat(actions.events).isEmpty();
    }

    @Test
    void exemptSessionsAndUnknownStateAreNeverKilled() {
        SessionTimers replication = new SessionTimers(time, actions, time.now, limits(1, 1, 1, 1), true);
        replication.state(SessionState.IDLE, time.now);
        SessionTimers lost = timers(limits(1, 1, 1, 1));
        lost.state(SessionState.UNKNOWN, time.now);
        time.advance(3600 * S);
        assertThat(actions.events).isEmpty();
    }

    @Test
    void reloadedLimitsApplyToTheRunningIdlePeriod() {
        SessionTimers timers = timers(limits(600, 0, 0, 0));
        timers.state(SessionState.IDLE_IN_TRANSACTION, time.now);
        time.advance(30 * S);
        timers.limits(limits(20, 0, 0, 0), time.now);
        time.advance(0);
        assertThat(actions.events).containsExactly("IDLE_IN_TRANSACTION");
    }

    @Test
    void stopCancelsEverything() {
        SessionTimers timers = timers(limits(10, 10, 10, 10));
        timers.state(SessionState.IDLE, time.now);
        timers.stop();
        time.advance(3600 * S);
        assertThat(actions.events).isEmpty();
        assertThat(time.tasks).isEmpty();
    }
}
