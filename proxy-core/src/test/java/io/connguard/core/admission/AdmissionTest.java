package io.connguard.core.admission;

import io.connguard.core.admission.Admission.Decision;
import io.connguard.core.admission.Admission.Rejection;
import io.connguard.core.admission.Admission.Ticket;
import io.connguard.core.config.Limits;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import static org.assertj.core.api.Assertions.assertThat;

class AdmissionTest {

    private static final ClientKey APP = new ClientKey("l", "app", "db", "", "");
    private static final ClientKey OTHER = new ClientKey("l", "other", "db", "", "");

    private static Limits cap(int max) {
        return new Limits(max, Duration.ofSeconds(5), 100, Duration.ZERO, Duration.ZERO, Duration.ZERO, Duration.ZERO);
    }

    /** A waiter that records what it was told; grants run synchronously (direct executor). */
    private static final class Waiter implements Admission.Grantee {
        final List<String> events = new ArrayList<>();
        final Ticket ticket;

        Waiter(ClientKey key, Limits limits) {
            ticket = new Ticket(key, limits, Runnable::run, this);
        }

        @Override
        public void admitted() {
            events.add("admitted");
        }

        @Override
        public void rejected(Rejection why) {
            events.add("rejected " + why);
        }
    }

    @Test
    void admitsUpToTheClientCapThenQueuesInArrivalOrder() {
        Admission admission = new Admission(0);
        List<Waiter> waiters = new ArrayList<>();
        for (int i = 0; i < 5; i++) {
            Waiter w = new Waiter(APP, cap(2));
            waiters.add(w);
            assertThat(admission.request(w.ticket)).isEqualTo(i < 2 ? Decision.ADMITTED : Decision.QUEUED);
        }
        assertThat(admission.waiting()).isEqualTo(3);
        admission.release(waiters.get(0).ticket);
        assertThat(waiters.get(2).events).containsExactly("admitted");
        assertThat(waiters.get(3).events).isEmpty();
        admission.release(waiters.get(1).ticket);
        assertThat(waiters.get(3).events).containsExactly("admitted");
        assertThat(waiters.get(4).events).isEmpty();
        assertThat(admission.admitted()).isEqualTo(2);
    }

    @Test
    void anotherClientIsNotBlockedByAFullOne() {
        Admission admission = new Admission(0);
        assertThat(admission.request(new Waiter(APP, cap(1)).ticket)).isEqualTo(Decision.ADMITTED);
        assertThat(admission.request(new Waiter(APP, cap(1)).ticket)).isEqualTo(Decision.QUEUED);
        assertThat(admission.request(new Waiter(OTHER, cap(1)).ticket)).isEqualTo(Decision.ADMITTED);
    }

    @Test
    void releaseIsIdempotentSoAPermitIsReturnedExactlyOnce() {
        Admission admission = new Admission(0);
        Waiter first = new Waiter(APP, cap(1));
        admission.request(first.ticket);
        Waiter second = new Waiter(APP, cap(1));
        admission.request(second.ticket);
        assertThat(admission.release(first.ticket)).isTrue();
        assertThat(admission.release(first.ticket)).isFalse();
        assertThat(admission.release(first.ticket)).isFalse();
        assertThat(admission.admitted()).isEqualTo(1);
        assertThat(second.events).containsExactly("admitted");
        Waiter third = new Waiter(APP, cap(1));
        assertThat(admission.request(third.ticket)).isEqualTo(Decision.QUEUED);
    }

    @Test
    void expiryRejectsAWaiterThatGotNoSlotAndIgnoresOneThatDid() {
        Admission admission = new Admission(0);
        Waiter holder = new Waiter(APP, cap(1));
        admission.request(holder.ticket);
        Waiter late = new Waiter(APP, cap(1));
        admission.request(late.ticket);
        assertThat(admission.expire(late.ticket)).isEqualTo(Rejection.QUEUE_TIMEOUT);
        assertThat(admission.waiting()).isZero();
        Waiter lucky = new Waiter(APP, cap(1));
        admission.request(lucky.ticket);
        admission.release(holder.ticket);
        assertThat(lucky.events).containsExactly("admitted");
        assertThat(admission.expire(lucky.ticket)).isNull();
    }

    @Test
    void queueFullAndZeroQueueTimeoutRejectAtOnce() {
        Admission admission = new Admission(0);
        Limits oneWaiter = new Limits(1, Duration.ofSeconds(5), 1, Duration.ZERO, Duration.ZERO, Duration.ZERO,
                Duration.ZERO);
        admission.request(new Waiter(APP, oneWaiter).ticket);
        assertThat(admission.request(new Waiter(APP, oneWaiter).ticket)).isEqualTo(Decision.QUEUED);
        Waiter full = new Waiter(APP, oneWaiter);
        assertThat(admission.request(full.ticket)).isEqualTo(Decision.REJECTED);
        assertThat(full.ticket.rejection()).isEqualTo(Rejection.QUEUE_FULL);
        Limits noWait = new Limits(1, Duration.ZERO, 100, Duration.ZERO, Duration.ZERO, Duration.ZERO, Duration.ZERO);
        Waiter impatient = new Waiter(APP, noWait);
        assertThat(admission.request(impatient.ticket)).isEqualTo(Decision.REJECTED);
        assertThat(impatient.ticket.rejection()).isEqualTo(Rejection.QUEUE_TIMEOUT);
    }

    @Test
    void listenerCapQueuesAcrossClientsAndNamesItselfOnTimeout() {
        Admission admission = new Admission(2);
        admission.request(new Waiter(APP, cap(10)).ticket);
        Waiter other = new Waiter(OTHER, cap(10));
        admission.request(other.ticket);
        Waiter third = new Waiter(new ClientKey("l", "third", "", "", ""), cap(10));
        assertThat(admission.request(third.ticket)).isEqualTo(Decision.QUEUED);
        assertThat(admission.expire(third.ticket)).isEqualTo(Rejection.LISTENER_CAP);
        Waiter fourth = new Waiter(new ClientKey("l", "fourth", "", "", ""), cap(10));
        admission.request(fourth.ticket);
        admission.release(other.ticket);
        assertThat(fourth.events).containsExactly("admitted");
    }

    @Test
    void aWaiterWhoseClientLeftLeavesTheQueueAtOnce() {
        Admission admission = new Admission(0);
        Waiter holder = new Waiter(APP, cap(1));
        admission.request(holder.ticket);
        Waiter gone = new Waiter(APP, cap(1));
        admission.request(gone.ticket);
        Waiter next = new Waiter(APP, cap(1));
        admission.request(next.ticket);
        assertThat(admission.release(gone.ticket)).isFalse();
        assertThat(admission.waiting()).isEqualTo(1);
        admission.release(holder.ticket);
        assertThat(gone.events).isEmpty();
        assertThat(next.events).containsExactly("admitted");
    }

    @Test
    void loweringACapNeverEvictsAndRaisingItAdmitsWaiters() {
        Admission admission = new Admission(0);
        List<Waiter> held = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            Waiter w = new Waiter(APP, cap(3));
            admission.request(w.ticket);
            held.add(w);
        }
        for (Waiter w : held) {
            admission.update(w.ticket, cap(1));
        }
        assertThat(admission.admitted()).isEqualTo(3);
        admission.release(held.get(0).ticket);
        Waiter waiting = new Waiter(APP, cap(1));
        assertThat(admission.request(waiting.ticket)).isEqualTo(Decision.QUEUED);
        admission.update(waiting.ticket, cap(4));
        assertThat(waiting.events).containsExactly("admitted");
    }

    @Test
    void rekeyMovesTheSlotToAnotherClient() {
        Admission admission = new Admission(0);
        Waiter a = new Waiter(APP, cap(1));
        admission.request(a.ticket);
        Waiter queued = new Waiter(APP, cap(1));
        admission.request(queued.ticket);
        admission.rekey(a.ticket, OTHER, cap(1));
        assertThat(queued.events).containsExactly("admitted");
        assertThat(admission.clients()).extracting(Admission.ClientCounts::key, Admission.ClientCounts::admitted)
                .containsExactlyInAnyOrder(org.assertj.core.groups.Tuple.tuple(APP, 1),
                        org.assertj.core.groups.Tuple.tuple(OTHER, 1));
    }

    @Test
    void refusingRejectsWaitersAndNewcomersAsDraining() {
        Admission admission = new Admission(0);
        admission.request(new Waiter(APP, cap(1)).ticket);
        Waiter waiting = new Waiter(APP, cap(1));
        admission.request(waiting.ticket);
        admission.refuse();
        assertThat(waiting.events).containsExactly("rejected DRAINING");
        Waiter late = new Waiter(OTHER, cap(1));
        assertThat(admission.request(late.ticket)).isEqualTo(Decision.REJECTED);
        assertThat(late.ticket.rejection()).isEqualTo(Rejection.DRAINING);
    }

    /**
     * Many threads request, wait (with timeouts) and release at random while a checker verifies the cap
     * is never exceeded; at the end every slot is back and nobody was forgotten in the queue.
     */
    @Test
    void underContentionTheCapHoldsNoWakeUpIsLostAndNoPermitLeaks() throws Exception {
        int cap = 5;
        Admission admission = new Admission(0);
        AtomicInteger inUse = new AtomicInteger();
        AtomicInteger maxSeen = new AtomicInteger();
        AtomicInteger served = new AtomicInteger();
        ConcurrentLinkedQueue<Throwable> failures = new ConcurrentLinkedQueue<>();
        int threads = 32;
        int rounds = 400;
        ExecutorService pool = Executors.newFixedThreadPool(threads);
        CountDownLatch done = new CountDownLatch(threads);
        for (int t = 0; t < threads; t++) {
            pool.execute(() -> {
                try {
                    for (int r = 0; r < rounds; r++) {
                        CountDownLatch granted = new CountDownLatch(1);
                        Ticket ticket = new Ticket(APP, cap(cap), Runnable::run, new Admission.Grantee() {
                            @Override
                            public void admitted() {
                                granted.countDown();
                            }

                            @Override
                            public void rejected(Rejection why) {
                                failures.add(new AssertionError("unexpected rejection " + why));
                            }
                        });
                        Decision decision = admission.request(ticket);
                        if (decision == Decision.QUEUED) {
                            if (!granted.await(ThreadLocalRandom.current().nextInt(1, 3), TimeUnit.MILLISECONDS)) {
                                if (admission.expire(ticket) != null) {
                                    continue;
                                }
                                granted.await();
                            }
                        }
                        int now = inUse.incrementAndGet();
                        maxSeen.accumulateAndGet(now, Math::max);
                        served.incrementAndGet();
                        if (ThreadLocalRandom.current().nextBoolean()) {
                            Thread.onSpinWait();
                        }
                        inUse.decrementAndGet();
                        admission.release(ticket);
                        if (ThreadLocalRandom.current().nextInt(10) == 0) {
                            admission.release(ticket);
                        }
                    }
                } catch (Throwable e) {
                    failures.add(e);
                } finally {
                    done.countDown();
                }
            });
        }
        assertThat(done.await(60, TimeUnit.SECONDS)).isTrue();
        pool.shutdownNow();
        assertThat(failures).isEmpty();
        assertThat(maxSeen.get()).isLessThanOrEqualTo(cap);
        assertThat(served.get()).isPositive();
        assertThat(admission.admitted()).isZero();
        assertThat(admission.waiting()).isZero();
        assertThat(admission.clients()).isEmpty();
        List<Waiter> fresh = new ArrayList<>();
        for (int i = 0; i < cap + 1; i++) {
            Waiter w = new Waiter(APP, cap(cap));
            fresh.add(w);
            assertThat(admission.request(w.ticket)).isEqualTo(i < cap ? Decision.ADMITTED : Decision.QUEUED);
        }
    }

    @Test
    void aWaiterReKeyedToAClientWithRoomIsAdmittedAndNoLongerCountsForItsOldKey() {
        Admission admission = new Admission(0);
        Waiter holder = new Waiter(APP, cap(1));
        Waiter waiter = new Waiter(APP, cap(1));
        assertThat(admission.request(holder.ticket)).isEqualTo(Decision.ADMITTED);
        assertThat(admission.request(waiter.ticket)).isEqualTo(Decision.QUEUED);
        admission.rekey(waiter.ticket, OTHER, cap(1));
        assertThat(waiter.events).containsExactly("admitted");
        assertThat(admission.clients()).extracting(Admission.ClientCounts::key, Admission.ClientCounts::admitted,
                        Admission.ClientCounts::waiting)
                .containsExactlyInAnyOrder(org.assertj.core.groups.Tuple.tuple(APP, 1, 0),
                        org.assertj.core.groups.Tuple.tuple(OTHER, 1, 0));
    }

    @Test
    void queueingAtACapTellsTheClientsLeakWatchAndSoDoesGrowthPastItsHighWaterMark() {
        Admission admission = new Admission(0);
        Waiter first = new Waiter(APP, cap(2));
        assertThat(admission.request(first.ticket)).isEqualTo(Decision.ADMITTED);
        List<String> told = new ArrayList<>();
        assertThat(first.ticket.leaks().add(told::add, 0)).isNull();
        assertThat(admission.request(new Waiter(APP, cap(2)).ticket)).isEqualTo(Decision.ADMITTED);
        assertThat(told).singleElement().asString().contains("more connections at once than before (2)");
        assertThat(admission.request(new Waiter(APP, cap(2)).ticket)).isEqualTo(Decision.QUEUED);
        assertThat(told).hasSize(2).last().asString().contains("had to wait at its cap");
    }

    // ------------------------------------------------------------------ reservations and probation

    private static int probation(Admission admission, ClientKey key) {
        return admission.clients().stream().filter(c -> c.key().equals(key)).mapToInt(Admission.ClientCounts::probation)
                .sum();
    }

    @Test
    void aReservationHoldsAListenerSlotAndBecomesTheTicketsWhenItsClientHasRoom() {
        Admission admission = new Admission(2);
        Admission.Reservation early = admission.reserve();
        assertThat(early).isNotNull();
        assertThat(admission.admitted()).isEqualTo(1);
        Waiter w = new Waiter(APP, cap(5));
        assertThat(admission.request(w.ticket, early, true)).isEqualTo(Decision.ADMITTED);
        assertThat(admission.admitted()).as("the reservation became the ticket's slot").isEqualTo(1);
        admission.release(early);
        assertThat(admission.admitted()).as("releasing a taken-over reservation is a no-op").isEqualTo(1);
        admission.release(w.ticket);
        assertThat(admission.admitted()).isZero();
    }

    @Test
    void noReservationAtTheListenerCapOrWhileDraining() {
        Admission admission = new Admission(1);
        Admission.Reservation first = admission.reserve();
        assertThat(admission.reserve()).as("the listener is at its cap").isNull();
        admission.release(first);
        admission.release(first);
        assertThat(admission.admitted()).isZero();
        admission.refuse();
        assertThat(admission.reserve()).isNull();
    }

    @Test
    void overItsCapOneConnectionPerClientMayGoOnProbationOnItsReservation() {
        Admission admission = new Admission(3);
        Waiter holder = new Waiter(APP, cap(1));
        assertThat(admission.request(holder.ticket)).isEqualTo(Decision.ADMITTED);
        Admission.Reservation r1 = admission.reserve();
        Waiter canceller = new Waiter(APP, cap(1));
        assertThat(admission.request(canceller.ticket, r1, true)).isEqualTo(Decision.PROBATION);
        assertThat(probation(admission, APP)).isEqualTo(1);
        assertThat(admission.admitted()).as("listener slots: holder + reservation").isEqualTo(2);
        Admission.Reservation r2 = admission.reserve();
        Waiter second = new Waiter(APP, cap(1));
        assertThat(admission.request(second.ticket, r2, true)).as("only one on probation per client key")
                .isEqualTo(Decision.QUEUED);
        admission.release(r2); // its early upstream closed
        assertThat(admission.admitted()).isEqualTo(2);
        admission.release(canceller.ticket); // the cancel ran, the connection ended
        admission.release(r1);
        assertThat(probation(admission, APP)).isZero();
        assertThat(admission.admitted()).isEqualTo(1);
        admission.release(holder.ticket);
        assertThat(second.events).containsExactly("admitted");
        assertThat(admission.admitted()).isEqualTo(1);
    }

    @Test
    void aConnectionOnProbationThatNeedsASlotWaitsOnItsReservationAndKeepsItsProbationPlace() {
        Admission admission = new Admission(2);
        Waiter holder = new Waiter(APP, cap(1));
        admission.request(holder.ticket);
        Admission.Reservation r = admission.reserve();
        Waiter late = new Waiter(APP, cap(1));
        assertThat(admission.request(late.ticket, r, true)).isEqualTo(Decision.PROBATION);
        assertThat(admission.requestAfterProbation(late.ticket)).isEqualTo(Decision.QUEUED);
        assertThat(admission.waiting()).isEqualTo(1);
        assertThat(probation(admission, APP)).as("still the client's one connection beyond its cap").isEqualTo(1);
        assertThat(admission.reserve()).as("the listener is full: holder + the waiter's reservation").isNull();
        admission.release(holder.ticket);
        assertThat(late.events).containsExactly("admitted");
        assertThat(admission.admitted()).as("admitted on its own reservation, no second listener slot").isEqualTo(1);
        assertThat(probation(admission, APP)).isZero();
        admission.release(r);
        assertThat(admission.admitted()).isEqualTo(1);
        admission.release(late.ticket);
        assertThat(admission.admitted()).isZero();
        assertThat(admission.clients()).isEmpty();
    }

    @Test
    void onProbationWithRoomAgainTheSlotIsGivenAtOnce() {
        Admission admission = new Admission(0);
        Waiter holder = new Waiter(APP, cap(1));
        admission.request(holder.ticket);
        Admission.Reservation r = admission.reserve();
        Waiter late = new Waiter(APP, cap(1));
        assertThat(admission.request(late.ticket, r, true)).isEqualTo(Decision.PROBATION);
        admission.release(holder.ticket);
        assertThat(admission.requestAfterProbation(late.ticket)).isEqualTo(Decision.ADMITTED);
        assertThat(admission.admitted()).isEqualTo(1);
        admission.release(late.ticket);
        admission.release(r);
        assertThat(admission.admitted()).isZero();
        assertThat(admission.clients()).isEmpty();
    }

    @Test
    void aProbationWaiterWhoseWaitEndsKeepsItsPlaceUntilReleased() {
        Admission admission = new Admission(0);
        Waiter holder = new Waiter(APP, cap(1));
        admission.request(holder.ticket);
        Admission.Reservation r = admission.reserve();
        Waiter late = new Waiter(APP, cap(1));
        admission.request(late.ticket, r, true);
        admission.requestAfterProbation(late.ticket);
        assertThat(admission.expire(late.ticket)).isEqualTo(Rejection.QUEUE_TIMEOUT);
        assertThat(probation(admission, APP)).as("its upstream is still closing").isEqualTo(1);
        admission.release(late.ticket);
        admission.release(r);
        assertThat(probation(admission, APP)).isZero();
        admission.release(holder.ticket);
        assertThat(admission.clients()).isEmpty();
        assertThat(admission.admitted()).isZero();
    }
}
