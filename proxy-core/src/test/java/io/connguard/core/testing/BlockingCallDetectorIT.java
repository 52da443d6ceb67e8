package io.connguard.core.testing;

import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.nio.NioIoHandler;
import io.netty.util.concurrent.Future;
import org.junit.jupiter.api.Test;
import reactor.blockhound.BlockingOperationError;

import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;

/** The integration tests' blocking-call detector is installed and catches a sleep on an event loop. */
class BlockingCallDetectorIT {

    @Test
    void aSleepOnAnEventLoopIsDetected() throws Exception {
        assertThat(BlockingCallDetector.active())
                .as("failsafe runs with -Dconnguard.blockhound=true (parent pom's it.argLine)").isTrue();
        EventLoopGroup group = new MultiThreadIoEventLoopGroup(1, NioIoHandler.newFactory());
        try {
            Future<?> blocked = group.submit(() -> {
                Thread.sleep(1);
                return null;
            }).await();
            assertThat(blocked.cause()).isInstanceOf(BlockingOperationError.class);
            List<Throwable> detections = BlockingCallDetector.takeDetections();
            assertThat(detections).hasSize(1);
            assertThat(detections.get(0)).hasMessageContaining("java.lang.Thread.sleep");
            Future<?> sleepsElsewhere = group.next().submit(() -> { }).await();
            assertThat(sleepsElsewhere.isSuccess()).as("the loop survives").isTrue();
        } finally {
            group.shutdownGracefully(0, 1, TimeUnit.SECONDS).await(5, TimeUnit.SECONDS);
        }
    }
}
