package io.connguard.core.admin;

import io.netty.channel.DefaultEventLoop;
import io.netty.util.concurrent.EventExecutor;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/**
 * The heartbeat judgement on a fake clock: the test moves time, the loops stamp it, so the outcome
 * does not depend on how fast this machine runs the loops.
 */
class LoopHeartbeatsTest {

    private static final long STALE = TimeUnit.MILLISECONDS.toNanos(LoopHeartbeats.STALE_MILLIS);

    private final AtomicLong clock = new AtomicLong();

    @Test
    void aLoopBlockedBeyondTheLimitIsReportedAndRecoversWhenItRunsAgain() throws Exception {
        DefaultEventLoop blocked = new DefaultEventLoop();
        DefaultEventLoop healthy = new DefaultEventLoop();
        List<EventExecutor> loops = List.of(blocked, healthy);
        CountDownLatch release = new CountDownLatch(1);
        CountDownLatch started = new CountDownLatch(1);
        try (LoopHeartbeats heartbeats = new LoopHeartbeats(loops, clock::get)) {
            assertThat(heartbeats.allResponding()).isTrue();
            blocked.execute(() -> {
                started.countDown();
                try {
                    release.await(30, TimeUnit.SECONDS); // a handler that blocks its loop
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            });
            assertThat(started.await(10, TimeUnit.SECONDS)).isTrue();

            clock.set(STALE);
            await().atMost(10, TimeUnit.SECONDS).until(() -> heartbeats.lastBeat(1) == STALE);
            assertThat(heartbeats.allResponding()).as("behind by exactly the limit is still alive").isTrue();

            clock.set(STALE + 1);
            await().atMost(10, TimeUnit.SECONDS).until(() -> heartbeats.lastBeat(1) == STALE + 1);
            assertThat(heartbeats.lastBeat(0)).as("the blocked loop stamped nothing since").isZero();
            assertThat(heartbeats.allResponding()).as("a loop silent beyond the limit").isFalse();

            release.countDown();
            await().atMost(10, TimeUnit.SECONDS).until(heartbeats::allResponding);
        } finally {
            release.countDown();
            blocked.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
            healthy.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
        }
    }
}
