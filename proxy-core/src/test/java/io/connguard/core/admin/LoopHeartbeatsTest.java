package io.connguard.core.admin;

import io.netty.channel.DefaultEventLoopGroup;
import org.junit.jupiter.api.Test;

import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

class LoopHeartbeatsTest {

    @Test
    void aBlockedLoopIsReportedAfterASecondAndRecoversWhenItRunsAgain() throws Exception {
        DefaultEventLoopGroup loops = new DefaultEventLoopGroup(2);
        try (LoopHeartbeats heartbeats = new LoopHeartbeats(loops)) {
            assertThat(heartbeats.allResponding()).isTrue();
            CountDownLatch release = new CountDownLatch(1);
            loops.next().execute(() -> {
                try {
                    release.await(10, TimeUnit.SECONDS); // a handler that blocks its loop
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            });
            Thread.sleep(LoopHeartbeats.STALE_MILLIS / 2);
            assertThat(heartbeats.allResponding()).as("blocked for half the limit").isTrue();
            await().atMost(3, TimeUnit.SECONDS).until(() -> !heartbeats.allResponding());
            release.countDown();
            await().atMost(2, TimeUnit.SECONDS).until(heartbeats::allResponding);
        } finally {
            loops.shutdownGracefully(0, 1, TimeUnit.SECONDS).syncUninterruptibly();
        }
    }
}
