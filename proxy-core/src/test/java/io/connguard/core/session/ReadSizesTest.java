package io.connguard.core.session;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.UnpooledByteBufAllocator;
import io.netty.channel.AdaptiveRecvByteBufAllocator;
import io.netty.channel.ChannelConfig;
import io.netty.channel.RecvByteBufAllocator;
import io.netty.channel.embedded.EmbeddedChannel;
import org.junit.jupiter.api.Test;

import java.util.Random;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * connguard's read sizes against Netty's AdaptiveRecvByteBufAllocator, fed the same reads as a channel's read
 * loop feeds them: the same guesses, buffers and decisions to read on, read after read.
 */
class ReadSizesTest {

    @Test
    void guessesAndDecisionsAreNettysForReadsOfEverySize() {
        for (boolean autoRead : new boolean[] {false, true}) {
            EmbeddedChannel channel = new EmbeddedChannel();
            ChannelConfig config = channel.config();
            config.setAutoRead(autoRead);
            RecvByteBufAllocator.ExtendedHandle ours = (RecvByteBufAllocator.ExtendedHandle) new ReadSizes(16).newHandle();
            RecvByteBufAllocator.ExtendedHandle netty = (RecvByteBufAllocator.ExtendedHandle)
                    new AdaptiveRecvByteBufAllocator().maxMessagesPerRead(16).newHandle();
            Random random = new Random(21);
            for (int batch = 0; batch < 5_000; batch++) {
                ours.reset(config);
                netty.reset(config);
                boolean more = true;
                while (more) {
                    assertThat(ours.guess()).as("guess in batch %d", batch).isEqualTo(netty.guess());
                    ByteBuf a = ours.allocate(UnpooledByteBufAllocator.DEFAULT);
                    ByteBuf b = netty.allocate(UnpooledByteBufAllocator.DEFAULT);
                    assertThat(a.capacity()).isEqualTo(b.capacity());
                    a.release();
                    b.release();
                    int asked = ours.guess();
                    ours.attemptedBytesRead(asked);
                    netty.attemptedBytesRead(asked);
                    // Phases of small and large reads, a full buffer often, sometimes nothing or the end (-1).
                    int read = switch (random.nextInt(8)) {
                        case 0 -> asked;
                        case 1 -> 0;
                        case 2 -> -1;
                        case 3 -> random.nextInt(asked + 1);
                        default -> Math.min(asked, (batch / 500 % 2 == 0 ? 40 : 40_000) + random.nextInt(64));
                    };
                    ours.lastBytesRead(read);
                    netty.lastBytesRead(read);
                    assertThat(ours.lastBytesRead()).isEqualTo(netty.lastBytesRead());
                    if (read > 0) {
                        ours.incMessagesRead(1);
                        netty.incMessagesRead(1);
                    }
                    more = netty.continueReading();
                    assertThat(ours.continueReading()).as("continue in batch %d", batch).isEqualTo(more);
                    boolean maybe = random.nextBoolean();
                    assertThat(ours.continueReading(() -> maybe)).isEqualTo(netty.continueReading(() -> maybe));
                    more &= read > 0;
                }
                ours.readComplete();
                netty.readComplete();
            }
            channel.finishAndReleaseAll();
        }
    }

    @Test
    void oneInstanceServesEveryChannelAndKeepsNettysDefaults() {
        ReadSizes sizes = (ReadSizes) UpstreamConnector.READ_SIZES;
        assertThat(sizes.maxMessagesPerRead()).isEqualTo(16);
        assertThat(sizes.newHandle()).isNotSameAs(sizes.newHandle());
        assertThat(sizes.newHandle().guess()).isEqualTo(2048);
        EmbeddedChannel channel = new EmbeddedChannel();
        channel.config().setRecvByteBufAllocator(sizes);
        assertThat(channel.config().getMaxMessagesPerRead()).isEqualTo(16);
        channel.finishAndReleaseAll();
    }
}
