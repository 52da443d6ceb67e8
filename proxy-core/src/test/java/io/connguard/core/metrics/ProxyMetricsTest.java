package io.connguard.core.metrics;

import io.connguard.core.admission.ClientKey;
import io.connguard.core.testing.PrometheusScrape;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.concurrent.atomic.AtomicLong;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * How long a client key's series outlive its last session (the grace period, on an injected clock), how
 * that stays bounded by maxTrackedClients, and the listener's rejection counters, which never go away.
 */
class ProxyMetricsTest {

    private static final long SCRAPE_INTERVAL = Duration.ofSeconds(30).toNanos();

    private final AtomicLong clock = new AtomicLong(Duration.ofHours(1).toNanos());
    private final ProxyMetrics metrics = new ProxyMetrics(2, clock::get);

    @AfterEach
    void close() {
        metrics.close();
    }

    private static ClientKey key(String application) {
        return new ClientKey("pg", "app", "orders", application, "");
    }

    private static String application(ClientSeries series) {
        return series.tags().stream().filter(tag -> tag.getKey().equals(MeterNames.TAG_APPLICATION))
                .findFirst().orElseThrow().getValue();
    }

    private PrometheusScrape scrape() {
        return PrometheusScrape.parse(metrics.scrape());
    }

    private static double rejected(PrometheusScrape scrape, String application) {
        return scrape.value("connguard_client_admissions_total", "application", application,
                "outcome", "rejected_listener_cap");
    }

    /** What a session rejected at the listener cap does to its key's series: acquire, count, release. */
    private void rejectOnce(String application) {
        ClientSeries series = metrics.acquire(key(application));
        series.admission(Outcome.REJECTED_LISTENER_CAP);
        metrics.listener("pg").rejected(Outcome.REJECTED_LISTENER_CAP);
        metrics.release(series);
    }

    @Test
    void aRejectedClientsSeriesKeepItsFinalValuesThroughEveryScrapeOfTheGracePeriod() {
        rejectOnce("batch");
        int scrapes = 0;
        for (long waited = 0; waited < ProxyMetrics.SERIES_GRACE.toNanos(); waited += SCRAPE_INTERVAL) {
            assertThat(rejected(scrape(), "batch")).as("scrape %d, %d s after the rejection", scrapes,
                    Duration.ofNanos(waited).toSeconds()).isEqualTo(1);
            scrapes++;
            clock.addAndGet(SCRAPE_INTERVAL);
        }
        assertThat(scrapes).isEqualTo(10);
        PrometheusScrape after = scrape();
        assertThat(after.series("connguard_client_admissions_total", "application", "batch")).isEmpty();
        assertThat(after.series("connguard_client_connections", "application", "batch")).isEmpty();
        assertThat(metrics.clientSeries()).isZero();
    }

    @Test
    void gaugesStayAtTheirFinalValuesToo() {
        ClientSeries series = metrics.acquire(key("web"));
        series.maxConnections(20);
        series.queuedDelta(1);
        series.queuedDelta(-1);
        metrics.release(series);
        clock.addAndGet(ProxyMetrics.SERIES_GRACE.toNanos() - 1);
        PrometheusScrape scrape = scrape();
        assertThat(scrape.value("connguard_client_max_connections", "application", "web")).isEqualTo(20);
        assertThat(scrape.series("connguard_client_queued", "application", "web")).singleElement()
                .satisfies(sample -> assertThat(sample.value()).isZero());
    }

    @Test
    void aKeyThatComesBackWithinTheGracePeriodContinuesItsCounters() {
        rejectOnce("batch");
        clock.addAndGet(ProxyMetrics.SERIES_GRACE.toNanos() - SCRAPE_INTERVAL);
        scrape();
        rejectOnce("batch");
        clock.addAndGet(ProxyMetrics.SERIES_GRACE.toNanos() - SCRAPE_INTERVAL);
        assertThat(rejected(scrape(), "batch")).as("the grace period restarts at the last release").isEqualTo(2);
    }

    @Test
    void aSeriesInUseIsNeverRemoved() {
        ClientSeries held = metrics.acquire(key("web"));
        clock.addAndGet(ProxyMetrics.SERIES_GRACE.toNanos() * 3);
        scrape();
        assertThat(metrics.acquire(key("web"))).isSameAs(held);
    }

    @Test
    void keysInTheirGracePeriodCountTowardsMaxTrackedClientsUntilItEnds() {
        rejectOnce("a");
        rejectOnce("b");
        ClientSeries third = metrics.acquire(key("c"));
        assertThat(application(third)).isEqualTo(MeterNames.OTHER_CLIENTS);
        metrics.release(third);
        assertThat(metrics.clientSeries()).isEqualTo(3);

        // No scrape needed: a new key makes room by removing the series whose grace has ended.
        clock.addAndGet(ProxyMetrics.SERIES_GRACE.toNanos());
        ClientSeries fourth = metrics.acquire(key("d"));
        assertThat(application(fourth)).isEqualTo("d");
        assertThat(metrics.clientSeries()).isEqualTo(2); // d, and the _other bucket until the next scrape
    }

    @Test
    void listenerRejectionsStartAtZeroForEveryReasonAndNeverDisappear() {
        metrics.listener("pg");
        PrometheusScrape fresh = scrape();
        for (String reason : new String[] {"queue_timeout", "queue_full", "listener_cap", "draining"}) {
            assertThat(fresh.series("connguard_listener_rejections_total", "listener", "pg", "reason", reason))
                    .as(reason).singleElement().satisfies(sample -> assertThat(sample.value()).isZero());
        }
        assertThat(fresh.type("connguard_listener_rejections_total")).isEqualTo("counter");

        rejectOnce("batch");
        clock.addAndGet(ProxyMetrics.SERIES_GRACE.toNanos() * 10);
        scrape();
        PrometheusScrape later = scrape();
        assertThat(later.series("connguard_client_admissions_total")).isEmpty();
        assertThat(later.value("connguard_listener_rejections_total", "listener", "pg", "reason", "listener_cap"))
                .isEqualTo(1);
        assertThat(later.sum("connguard_listener_rejections_total")).isEqualTo(1);
    }

    @Test
    void onlyRejectionsHaveAListenerReason() {
        assertThat(Outcome.REJECTED_QUEUE_FULL.reason()).isEqualTo("queue_full");
        assertThat(Outcome.ADMITTED.rejection()).isFalse();
        assertThat(Outcome.QUEUED.rejection()).isFalse();
    }
}
