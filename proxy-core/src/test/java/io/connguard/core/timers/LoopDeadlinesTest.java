package io.connguard.core.timers;

import io.connguard.core.api.SessionState;
import io.connguard.core.config.Limits;
import io.connguard.core.timers.SessionTimers.Expiry;
import io.netty.channel.embedded.EmbeddedChannel;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Many sessions' timers on one event loop's deadlines, driven by an embedded loop whose time the test
 * moves: each check fires at its own deadline, not before, in any order of arming, moving and stopping.
 */
class LoopDeadlinesTest {

    private static final long S = 1_000_000_000L;

    private final EmbeddedChannel channel = new EmbeddedChannel();
    private long now = 1_000 * S;
    private final LoopDeadlines deadlines = new LoopDeadlines(channel.eventLoop(), () -> now);
    private final List<String> fired = new ArrayList<>();

    @AfterEach
    void close() {
        channel.finishAndReleaseAll();
    }

    private void advance(long nanos) {
        now += nanos;
        channel.advanceTimeBy(nanos, TimeUnit.NANOSECONDS);
        channel.runScheduledPendingTasks();
    }

    private static Limits idleInTransaction(long seconds) {
        return new Limits(0, Duration.ZERO, 0, Duration.ofSeconds(seconds), Duration.ZERO, Duration.ZERO,
                Duration.ZERO);
    }

    private SessionTimers session(String name, long idleInTransactionSeconds) {
        SessionTimers timers = new SessionTimers(deadlines, new SessionTimers.Actions() {
            @Override
            public void expired(Expiry expiry) {
                fired.add(name);
            }

            @Override
            public void leakSuspected(long idleNanos) {
                fired.add(name + " leak");
            }
        }, now, idleInTransaction(idleInTransactionSeconds), false);
        timers.state(SessionState.IDLE_IN_TRANSACTION, now);
        return timers;
    }

    @Test
    void everyCheckFiresAtItsOwnDeadlineWhateverTheOrderTheyWereArmedIn() {
        channel.freezeTime();
        Random random = new Random(17);
        List<Integer> seconds = new ArrayList<>();
        for (int i = 0; i < 500; i++) {
            int s = 1 + random.nextInt(200);
            seconds.add(s);
            session(Integer.toString(i), s);
        }
        assertThat(deadlines.pending()).isEqualTo(500);
        for (int t = 1; t <= 200; t++) {
            advance(S - 1);
            int second = t;
            long dueBefore = seconds.stream().filter(s -> s < second).count();
            assertThat(fired).as("fired before %ss", t).hasSize((int) dueBefore);
            advance(1);
            long due = seconds.stream().filter(s -> s <= second).count();
            assertThat(fired).as("fired at %ss", t).hasSize((int) due);
        }
        assertThat(deadlines.pending()).isZero();
        for (int i = 0; i < 500; i++) {
            assertThat(seconds.get(Integer.parseInt(fired.get(i)))).as("order").isGreaterThanOrEqualTo(
                    i == 0 ? 0 : seconds.get(Integer.parseInt(fired.get(i - 1))));
        }
    }

    @Test
    void aStoppedSessionLeavesTheHeapAndNeverFires() {
        channel.freezeTime();
        List<SessionTimers> sessions = new ArrayList<>();
        for (int i = 0; i < 100; i++) {
            sessions.add(session(Integer.toString(i), 10 + i));
        }
        for (int i = 0; i < 100; i += 2) {
            sessions.get(i).stop();
        }
        assertThat(deadlines.pending()).isEqualTo(50);
        advance(200 * S);
        assertThat(fired).hasSize(50).allSatisfy(name -> assertThat(Integer.parseInt(name) % 2).isEqualTo(1));
        assertThat(deadlines.pending()).isZero();
    }

    @Test
    void aDeadlineMovedEarlierFiresThenAndTheOthersKeepTheirs() {
        channel.freezeTime();
        SessionTimers late = session("late", 100);
        session("middle", 50);
        late.limits(idleInTransaction(5), now);
        advance(5 * S);
        assertThat(fired).containsExactly("late");
        advance(44 * S);
        assertThat(fired).containsExactly("late");
        advance(1 * S);
        assertThat(fired).containsExactly("late", "middle");
    }

    @Test
    void aSessionBusyWhenItsCheckFiresIsCheckedAgainAtItsNewDeadline() {
        channel.freezeTime();
        SessionTimers timers = session("s", 10);
        advance(8 * S);
        timers.state(SessionState.ACTIVE, now);
        timers.state(SessionState.IDLE_IN_TRANSACTION, now); // the deadline moves later: the heap is not touched
        advance(2 * S);
        assertThat(fired).as("the first check finds it was busy in between").isEmpty();
        assertThat(deadlines.pending()).as("re-armed").isEqualTo(1);
        advance(8 * S - 1);
        assertThat(fired).isEmpty();
        advance(1);
        assertThat(fired).containsExactly("s");
    }
}
