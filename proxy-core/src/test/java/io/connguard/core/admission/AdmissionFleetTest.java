package io.connguard.core.admission;

import io.connguard.core.admission.Admission.Decision;
import io.connguard.core.admission.Admission.Rejection;
import io.connguard.core.admission.Admission.Ticket;
import io.connguard.core.config.Limits;
import org.junit.jupiter.api.Test;

import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Consumer;

import static org.assertj.core.api.Assertions.assertThat;

/** Admission with a fleet cap: a ticket is granted when it holds both its local permit and a fleet lease. */
class AdmissionFleetTest {

    private static final ClientKey APP = new ClientKey("l", "app", "db", "", "");
    private static final ClientKey OTHER = new ClientKey("l", "other", "db", "", "");

    private static Limits limits(int local, int fleet) {
        return new Limits(local, Duration.ofSeconds(5), 100, Duration.ZERO, Duration.ZERO, Duration.ZERO, Duration.ZERO,
                fleet, 0);
    }

    /** A gate whose answers the test gives, in its own time. */
    private static final class Gate implements FleetGate {
        boolean up = true;
        int ids;
        final Map<String, Consumer<Answer>> asked = new LinkedHashMap<>();
        final List<String> askedIds = new ArrayList<>();
        final List<String> held = new ArrayList<>();
        final List<String> released = new ArrayList<>();

        @Override
        public boolean enabled() {
            return true;
        }

        @Override
        public boolean enforcing() {
            return up;
        }

        @Override
        public String newLeaseId() {
            return "lease-" + ++ids;
        }

        @Override
        public void acquire(Admission admission, ClientKey key, String id, int cap, Consumer<Answer> answer) {
            askedIds.add(id);
            if (!up) {
                answer.accept(Answer.UNAVAILABLE);
                return;
            }
            asked.put(id, answer);
        }

        @Override
        public void hold(Admission admission, ClientKey key, String id, int cap) {
            held.add(id);
        }

        @Override
        public void release(ClientKey key, String id) {
            released.add(id);
        }

        void answer(String id, Answer answer) {
            Consumer<Answer> waiting = asked.remove(id);
            assertThat(waiting).as("a request for %s", id).isNotNull();
            waiting.accept(answer);
        }
    }

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

        @Override
        public void queued() {
            events.add("queued");
        }
    }

    @Test
    void aGrantedLeaseAdmitsAndReleasingTheTicketGivesItBack() {
        Gate gate = new Gate();
        Admission admission = new Admission(0, gate);
        Waiter w = new Waiter(APP, limits(10, 3));
        assertThat(admission.request(w.ticket)).isEqualTo(Decision.PENDING);
        assertThat(admission.admitted()).as("the local permit is held while the store answers").isEqualTo(1);
        gate.answer("lease-1", FleetGate.Answer.GRANTED);
        assertThat(w.events).containsExactly("admitted");
        assertThat(admission.holds(w.ticket)).isTrue();
        assertThat(admission.release(w.ticket)).isTrue();
        assertThat(gate.released).containsExactly("lease-1");
        assertThat(admission.admitted()).isZero();
    }

    @Test
    void overTheFleetCapAConnectionWaitsInTheLocalQueueAndAsksAgainOnlyWhenWoken() {
        Gate gate = new Gate();
        Admission admission = new Admission(0, gate);
        Waiter first = new Waiter(APP, limits(10, 1));
        Waiter second = new Waiter(APP, limits(10, 1));
        Waiter third = new Waiter(APP, limits(10, 1));
        admission.request(first.ticket);
        gate.answer("lease-1", FleetGate.Answer.GRANTED);
        assertThat(admission.request(second.ticket)).isEqualTo(Decision.PENDING);
        gate.answer("lease-2", FleetGate.Answer.QUEUED);
        assertThat(second.events).containsExactly("queued");
        assertThat(admission.waiting()).isEqualTo(1);
        assertThat(admission.admitted()).as("a queued connection gives its local permit back").isEqualTo(1);
        admission.request(third.ticket);
        gate.answer("lease-3", FleetGate.Answer.QUEUED);

        // A lease freed here goes back to the fleet; the key's waiters ask again only when the gate wakes them.
        admission.release(first.ticket);
        assertThat(gate.released).containsExactly("lease-1");
        assertThat(gate.asked).isEmpty();
        admission.fleetWake(APP);
        assertThat(gate.asked.keySet()).as("asked again in arrival order").containsExactly("lease-2", "lease-3");
        gate.answer("lease-2", FleetGate.Answer.GRANTED);
        gate.answer("lease-3", FleetGate.Answer.QUEUED);
        assertThat(second.events).containsExactly("queued", "admitted");
        assertThat(third.events).containsExactly("queued");
        assertThat(admission.waiting()).isEqualTo(1);
    }

    @Test
    void anotherClientIsNotHeldUpByAClientWaitingForItsFleetBudget() {
        Gate gate = new Gate();
        Admission admission = new Admission(1, gate);
        Waiter blocked = new Waiter(APP, limits(10, 1));
        admission.request(blocked.ticket);
        gate.answer("lease-1", FleetGate.Answer.QUEUED);
        Waiter other = new Waiter(OTHER, limits(10, 0));
        assertThat(admission.request(other.ticket)).as("the listener's only permit is free again")
                .isEqualTo(Decision.ADMITTED);
    }

    @Test
    void theLocalCapStillComesFirst() {
        Gate gate = new Gate();
        Admission admission = new Admission(0, gate);
        admission.request(new Waiter(APP, limits(1, 5)).ticket);
        gate.answer("lease-1", FleetGate.Answer.GRANTED);
        Waiter second = new Waiter(APP, limits(1, 5));
        assertThat(admission.request(second.ticket)).isEqualTo(Decision.QUEUED);
        assertThat(gate.asked).as("no lease is asked for a connection over its local cap").isEmpty();
        assertThat(admission.expire(second.ticket)).isEqualTo(Rejection.QUEUE_TIMEOUT);
    }

    @Test
    void withTheStoreAwayTheLocalCapsAloneDecideAndTheHoldersAreStillRecorded() {
        Gate gate = new Gate();
        Admission admission = new Admission(0, gate);
        admission.request(new Waiter(APP, limits(10, 1)).ticket);
        gate.answer("lease-1", FleetGate.Answer.GRANTED);
        Waiter queued = new Waiter(APP, limits(10, 1));
        admission.request(queued.ticket);
        gate.answer("lease-2", FleetGate.Answer.QUEUED);

        gate.up = false;
        admission.fleetWakeAll();
        assertThat(queued.events).as("a waiter held up only by the fleet is admitted by the local caps")
                .containsExactly("queued", "admitted");
        assertThat(gate.held).containsExactly("lease-2");
        Waiter fresh = new Waiter(APP, limits(10, 1));
        assertThat(admission.request(fresh.ticket)).isEqualTo(Decision.ADMITTED);
        assertThat(gate.held).containsExactly("lease-2", "lease-3");
        Waiter overLocal = new Waiter(APP, limits(3, 1));
        assertThat(admission.request(overLocal.ticket)).as("never no cap: the local one holds")
                .isEqualTo(Decision.QUEUED);
    }

    @Test
    void aStoreThatFailsToAnswerAdmitsOnTheLocalCaps() {
        Gate gate = new Gate();
        Admission admission = new Admission(0, gate);
        Waiter w = new Waiter(APP, limits(10, 1));
        admission.request(w.ticket);
        gate.answer("lease-1", FleetGate.Answer.UNAVAILABLE);
        assertThat(w.events).containsExactly("admitted");
    }

    @Test
    void aQueueTimeoutWhileTheStoreAnswersGivesThePermitBackAndTheLateLeaseToo() {
        Gate gate = new Gate();
        Admission admission = new Admission(0, gate);
        Waiter w = new Waiter(APP, limits(10, 1));
        admission.request(w.ticket);
        assertThat(admission.expire(w.ticket)).isEqualTo(Rejection.QUEUE_TIMEOUT);
        assertThat(admission.admitted()).isZero();
        gate.answer("lease-1", FleetGate.Answer.GRANTED);
        assertThat(w.events).isEmpty();
        assertThat(gate.released).containsExactly("lease-1");
    }

    @Test
    void aClientThatLeavesWhileWaitingGivesUpItsPlaceInTheFleetQueue() {
        Gate gate = new Gate();
        Admission admission = new Admission(0, gate);
        admission.request(new Waiter(APP, limits(10, 1)).ticket);
        gate.answer("lease-1", FleetGate.Answer.GRANTED);
        Waiter leaving = new Waiter(APP, limits(10, 1));
        admission.request(leaving.ticket);
        gate.answer("lease-2", FleetGate.Answer.QUEUED);
        assertThat(admission.release(leaving.ticket)).isFalse();
        assertThat(gate.released).containsExactly("lease-2");
        assertThat(admission.waiting()).isZero();
    }

    @Test
    void withNoQueueTimeoutAUsedUpFleetBudgetRejectsAtOnce() {
        Gate gate = new Gate();
        Admission admission = new Admission(0, gate);
        Limits noWait = new Limits(10, Duration.ZERO, 100, Duration.ZERO, Duration.ZERO, Duration.ZERO, Duration.ZERO, 1, 0);
        Waiter w = new Waiter(APP, noWait);
        assertThat(admission.request(w.ticket)).isEqualTo(Decision.PENDING);
        gate.answer("lease-1", FleetGate.Answer.QUEUED);
        assertThat(w.events).containsExactly("rejected QUEUE_TIMEOUT");
        assertThat(gate.released).containsExactly("lease-1");
        assertThat(admission.admitted()).isZero();
    }

    @Test
    void drainingRefusesAConnectionWhoseLeaseArrivesLate() {
        Gate gate = new Gate();
        Admission admission = new Admission(0, gate);
        Waiter w = new Waiter(APP, limits(10, 1));
        admission.request(w.ticket);
        admission.refuse();
        gate.answer("lease-1", FleetGate.Answer.GRANTED);
        assertThat(w.events).containsExactly("rejected DRAINING");
        assertThat(gate.released).containsExactly("lease-1");
    }

    @Test
    void aReloadThatGivesAClientAFleetCapCountsItsOpenConnections() {
        Gate gate = new Gate();
        Admission admission = new Admission(0, gate);
        Waiter w = new Waiter(APP, limits(10, 0));
        assertThat(admission.request(w.ticket)).isEqualTo(Decision.ADMITTED);
        admission.update(w.ticket, limits(10, 4));
        assertThat(gate.held).containsExactly("lease-1");
        admission.update(w.ticket, limits(10, 0));
        assertThat(gate.released).containsExactly("lease-1");
    }

    @Test
    void aConnectionReKeyedWhileItsLeaseIsAskedForAsksTheNewKeysBudgetAndDropsTheOld() {
        Gate gate = new Gate();
        Admission admission = new Admission(0, gate);
        Waiter w = new Waiter(APP, limits(10, 1));
        assertThat(admission.request(w.ticket)).isEqualTo(Decision.PENDING);
        admission.rekey(w.ticket, OTHER, limits(10, 2));
        assertThat(gate.released).containsExactly("lease-1");
        assertThat(gate.asked.keySet()).containsExactly("lease-1", "lease-2");
        gate.answer("lease-1", FleetGate.Answer.GRANTED);
        assertThat(w.events).as("the old key's answer is not this connection's any more").isEmpty();
        gate.answer("lease-2", FleetGate.Answer.GRANTED);
        assertThat(w.events).containsExactly("admitted");
        assertThat(admission.release(w.ticket)).isTrue();
        assertThat(gate.released).containsExactly("lease-1", "lease-2");
        assertThat(admission.admitted()).isZero();
    }
}
