package io.connguard.core.fleet;

import io.connguard.core.config.FleetConfig;
import io.lettuce.core.RedisClient;
import io.lettuce.core.pubsub.RedisPubSubAdapter;
import io.lettuce.core.pubsub.StatefulRedisPubSubConnection;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.net.URI;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The lease scripts on the real Redis (127.0.0.1:6379, shared: each test uses a fleet name of its own), on
 * a clock the test passes to the scripts instead of the server's, so expiry is shown without waiting.
 */
class LeaseScriptsIT {

    private static final long TTL = 60_000;
    private static final String KEY = "pg/app/db//";

    private String name;
    private RedisFleetStore store;

    @BeforeEach
    void connect() {
        name = "scripts-" + UUID.randomUUID().toString().substring(0, 8);
        store = new RedisFleetStore(new FleetConfig(URI.create("redis://127.0.0.1:6379/0"), name,
                Duration.ofMillis(TTL), ""), Duration.ofSeconds(2));
        assertThat(store.connect(Duration.ofSeconds(10)))
                .as("Redis on 127.0.0.1:6379 (start it: redis-server --daemonize yes)").isTrue();
    }

    @AfterEach
    void close() throws Exception {
        RedisClient client = RedisClient.create("redis://127.0.0.1:6379/0");
        try (var c = client.connect()) {
            List<String> keys = c.sync().keys("connguard:{" + name + "}:*");
            if (!keys.isEmpty()) {
                c.sync().del(keys.toArray(String[]::new));
            }
        } finally {
            client.shutdown();
        }
        store.close();
    }

    private boolean acquire(String id, int cap, long now) throws Exception {
        return store.acquire(KEY, id, cap, TTL, now).toCompletableFuture().get(5, TimeUnit.SECONDS).granted();
    }

    private int live(long now) throws Exception {
        return store.count(List.of(KEY), now).toCompletableFuture().get(5, TimeUnit.SECONDS).get(KEY);
    }

    private void release(String id) throws Exception {
        store.release(KEY, id).toCompletableFuture().get(5, TimeUnit.SECONDS);
    }

    private int renew(Map<String, FleetStore.Holders> holders, long now) throws Exception {
        return store.renew(holders, TTL, now).toCompletableFuture().get(5, TimeUnit.SECONDS);
    }

    @Test
    void grantsUpToTheCapThenServesWaitersInArrivalOrder() throws Exception {
        long now = 1_000;
        assertThat(acquire("a", 2, now)).isTrue();
        assertThat(acquire("b", 2, now)).isTrue();
        assertThat(acquire("c", 2, now)).isFalse();
        assertThat(acquire("d", 2, now)).isFalse();
        assertThat(live(now)).isEqualTo(2);
        release("a");
        assertThat(acquire("d", 2, now)).as("d is behind c: one lease free, one waiter ahead").isFalse();
        assertThat(acquire("c", 2, now)).isTrue();
        assertThat(acquire("d", 2, now)).isFalse();
        assertThat(acquire("c", 2, now)).as("asking again for a held lease keeps it").isTrue();
        assertThat(live(now)).isEqualTo(2);
    }

    @Test
    void aQueuedAnswerSaysWhenTheFirstLiveLeaseExpires() throws Exception {
        assertThat(acquire("a", 1, 1_000)).isTrue();
        FleetStore.Acquired queued = store.acquire(KEY, "b", 1, TTL, 2_000).toCompletableFuture().get(5, TimeUnit.SECONDS);
        assertThat(queued.granted()).isFalse();
        assertThat(queued.nextExpiryMillis()).isEqualTo(1_000 + TTL - 2_000);
    }

    @Test
    void aReplicaThatAsksAgainAtOnceCannotOvertakeOneThatWaitsLonger() throws Exception {
        long now = 1_000;
        assertThat(acquire("x-1", 1, now)).isTrue();
        assertThat(acquire("y-1", 1, now)).as("replica y waits").isFalse();
        release("x-1");
        assertThat(acquire("x-2", 1, now)).as("replica x, quicker to ask again, queues behind y").isFalse();
        assertThat(acquire("y-1", 1, now)).isTrue();
    }

    @Test
    void aLeaseExpiresLeaseTtlAfterItsLastRenewal() throws Exception {
        long start = 1_000;
        assertThat(acquire("a", 1, start)).isTrue();
        assertThat(acquire("b", 1, start + TTL - 1)).isFalse();
        assertThat(renew(Map.of(KEY, new FleetStore.Holders(List.of("a"), List.of())), start + TTL / 3)).isZero();
        assertThat(acquire("b", 1, start + TTL + 1)).as("renewed, so still live").isFalse();
        assertThat(live(start + TTL / 3 + TTL - 1)).isEqualTo(1);
        assertThat(live(start + TTL / 3 + TTL)).as("expired: nobody renewed it").isZero();
        assertThat(acquire("b", 1, start + TTL / 3 + TTL + 1)).isTrue();
    }

    @Test
    void theQueuePlaceOfADeadReplicaExpiresToo() throws Exception {
        long start = 1_000;
        assertThat(acquire("holder", 1, start)).isTrue();
        assertThat(acquire("dead", 1, start)).isFalse();
        assertThat(acquire("alive", 1, start + 10)).isFalse();
        // The holder keeps renewing; "alive" too; "dead" never does again.
        long later = start + TTL / 2;
        renew(Map.of(KEY, new FleetStore.Holders(List.of(), List.of("alive"))), later);
        release("holder");
        assertThat(acquire("alive", 1, later)).as("the dead waiter is still ahead within its TTL").isFalse();
        assertThat(acquire("alive", 1, start + TTL + 1)).as("its place expired").isTrue();
    }

    @Test
    void renewalRegistersAgainWhatTheStoreLostWhateverTheCap() throws Exception {
        long now = 1_000;
        assertThat(acquire("a", 2, now)).isTrue();
        close();
        connect();
        // A fresh fleet name: as a Redis restarted without persistence, nothing of "a" is left.
        int again = renew(Map.of(KEY, new FleetStore.Holders(List.of("a", "b", "c"), List.of())), now);
        assertThat(again).isEqualTo(3);
        assertThat(live(now)).as("over the cap of 2, nobody is dropped").isEqualTo(3);
        assertThat(acquire("d", 2, now)).as("and nobody new gets in").isFalse();
    }

    @Test
    void aFreedLeaseIsAnnouncedWhenSomeoneWaits() throws Exception {
        RedisClient client = RedisClient.create("redis://127.0.0.1:6379/0");
        LinkedBlockingQueue<String> heard = new LinkedBlockingQueue<>();
        try (StatefulRedisPubSubConnection<String, String> sub = client.connectPubSub()) {
            sub.addListener(new RedisPubSubAdapter<>() {
                @Override
                public void message(String channel, String message) {
                    heard.add(channel + " " + message);
                }
            });
            sub.sync().subscribe("connguard:{" + name + "}:released");
            long now = 1_000;
            acquire("a", 1, now);
            release("a");
            acquire("b", 1, now);
            acquire("c", 1, now);
            assertThat(heard.poll(300, TimeUnit.MILLISECONDS)).as("nobody waited: nothing announced").isNull();
            release("b");
            assertThat(heard.poll(5, TimeUnit.SECONDS)).isEqualTo("connguard:{" + name + "}:released " + KEY);
        } finally {
            client.shutdown();
        }
    }
}
