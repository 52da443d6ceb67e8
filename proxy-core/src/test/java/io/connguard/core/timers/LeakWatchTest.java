package io.connguard.core.timers;

import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;

import static org.assertj.core.api.Assertions.assertThat;

/** When an idle session becomes a leak suspect: only with a sign that its client needs more connections. */
class LeakWatchTest {

    private final AtomicLong clock = new AtomicLong(1_000);
    private final LeakWatch watch = new LeakWatch(clock::get);

    private static final class Recorder implements LeakWatch.Candidate {
        final List<String> told = new ArrayList<>();

        @Override
        public void underPressure(String why) {
            told.add(why);
        }
    }

    @Test
    void aCandidateIsToldOfPressureUntilItIsRemoved() {
        Recorder idle = new Recorder();
        assertThat(watch.add(idle, 500)).isNull();
        assertThat(watch.watching()).isTrue();
        watch.pressure("all busy");
        assertThat(idle.told).containsExactly("all busy");
        watch.remove(idle);
        assertThat(watch.watching()).isFalse();
        watch.pressure("again");
        assertThat(idle.told).containsExactly("all busy");
    }

    @Test
    void aQueueDuringTheIdlePeriodCountsLaterButOneBeforeItDoesNot() {
        clock.set(2_000);
        watch.queued("waited at its cap");
        Recorder idleSinceBefore = new Recorder();
        assertThat(watch.add(idleSinceBefore, 1_500)).as("idle since 1500, queued at 2000").isEqualTo("waited at its cap");
        assertThat(watch.watching()).as("a suspect at once is not a candidate").isFalse();
        Recorder idleSinceAfter = new Recorder();
        assertThat(watch.add(idleSinceAfter, 2_500)).as("idle since 2500: the queue came before").isNull();
        assertThat(idleSinceAfter.told).isEmpty();
    }

    @Test
    void growthAndBusySignsWithoutCandidatesAreForgotten() {
        watch.pressure("grew");
        Recorder later = new Recorder();
        assertThat(watch.add(later, 0)).isNull();
        assertThat(later.told).isEmpty();
    }
}
