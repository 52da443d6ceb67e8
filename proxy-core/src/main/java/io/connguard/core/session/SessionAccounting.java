package io.connguard.core.session;

import io.connguard.core.admission.ClientKey;
import io.connguard.core.admission.ClientPolicy;
import io.connguard.core.api.ClientIdentity;
import io.connguard.core.api.SessionState;
import io.connguard.core.config.Durations;
import io.connguard.core.config.Limits;
import io.connguard.core.metrics.ClientSeries;
import io.connguard.core.metrics.CloseReason;
import io.connguard.core.session.Session.Phase;
import io.connguard.core.timers.LeakWatch;
import io.connguard.core.timers.LoopDeadlines;
import io.connguard.core.timers.SessionTimers;
import org.slf4j.event.Level;


/**
 * What an admitted {@link Session} is counted and watched for: the state the protocol reports (its client's
 * per-loop state counts and the {@link SessionTimers}), leak suspicion through the client key's
 * {@link LeakWatch}, and the key and limits in force when the client's identity or the policy changes
 * (a reload), so that its slot, queue place, series and leak candidacy move to the new key together.
 *
 * <p>Owns the state-count shard, the session timers, the leak watch and the leak flags, and whether the
 * server has seen a successful login. The reported state itself ({@code state}, {@code inTransaction},
 * {@code stateSince}) is the session's, which the pool and the views read too. Runs on the session's event
 * loop; {@link #refresh} and {@link #underPressure} hop onto it.
 */
final class SessionAccounting {

    private final Session s;
    private ClientSeries.Shard counts; // this loop's share of series' state counts, from connect() on
    private SessionTimers timers;
    private boolean authenticated;
    private boolean leakSuspect;
    /** Idle past leakDetectionThreshold and registered with {@link #leaks}, waiting for a sign of pressure. */
    private boolean leakCandidate;
    /** The leak watch of this session's client key (from its admission ticket). */
    private LeakWatch leaks;

    SessionAccounting(Session session) {
        this.s = session;
    }

    /** The leak watch of the session's client key, from its admission ticket (or held, in transaction mode). */
    void watchLeaks(LeakWatch watch) {
        leaks = watch;
    }

    /** Whether the server has seen the client log in (the first report other than ACTIVE says so). */
    boolean authenticated() {
        return authenticated;
    }

    boolean leakSuspect() {
        return leakSuspect;
    }

    // ------------------------------------------------------------------ from admission to close

    /** Admitted (CONNECTING): the session counts in its client's state counts and its timers run. */
    void startCounting(long now) {
        counts = s.series.shard();
        counts.enter(s.state, false);
        timers = new SessionTimers(LoopDeadlines.of(s.loop()), s, now, s.limits, s.identity.replication());
    }

    /** The session closes: its timers stop. */
    void stopTimers() {
        if (timers != null) {
            timers.stop();
        }
    }

    /** An admitted session (CONNECTING or CONNECTED) closes: it leaves the counts, closed for {@code reason}. */
    void closed(CloseReason reason) {
        counts.leave(s.state, s.inTransaction);
        if (leakSuspect) {
            s.series.leakSuspectDelta(-1);
        }
        if (leakCandidate) {
            leakCandidate = false;
            leaks.remove(s);
        }
        if (reason != null) {
            s.series.closed(reason);
        }
    }

    // ------------------------------------------------------------------ reported state and leaks

    /** The protocol reports the session's state (SessionContext#stateChanged); CONNECTED sessions only. */
    void stateChanged(SessionState reported) {
        if (s.phase != Phase.CONNECTED || s.state == SessionState.UNKNOWN) {
            return;
        }
        long now = System.nanoTime();
        if (!authenticated && reported != SessionState.ACTIVE) {
            authenticated = true;
            s.listener.earlyDropsInARow().set(0); // the server saw a successful login: its host error count is reset
            s.cancelHandshakeTimer();
        }
        boolean tx = switch (reported) {
            case IDLE -> false;
            case IDLE_IN_TRANSACTION -> true;
            case ACTIVE, UNKNOWN -> s.inTransaction;
        };
        if (reported != s.state || tx != s.inTransaction) {
            counts.change(s.state, s.inTransaction, reported, tx);
        }
        if (reported != s.state || reported != SessionState.ACTIVE) {
            s.stateSince = now;
        }
        if (reported == SessionState.ACTIVE && leakSuspect) {
            leakSuspect = false;
            s.series.leakSuspectDelta(-1);
            s.debug("leak suspect in use again");
        }
        if (reported == SessionState.ACTIVE && leakCandidate) {
            leakCandidate = false;
            leaks.remove(s);
        }
        boolean busier = reported == SessionState.ACTIVE && s.state != SessionState.ACTIVE;
        s.state = reported;
        s.inTransaction = tx;
        timers.state(reported, now);
        if (busier && leaks.watching()) {
            checkAllBusy();
        }
    }

    /**
     * Another session of this client idles past its leak threshold: if this one just made every connection
     * of the client but that one busy, the client needs more connections than it uses.
     */
    private void checkAllBusy() {
        if (s.series.shared()) {
            return; // counted together with other clients: the counts say nothing about this one
        }
        int open = s.series.open();
        if (open >= 2 && s.series.active() >= open - 1) {
            leaks.pressure("all " + (open - 1) + " other connections of the same client were busy at once");
        }
    }

    /** The leak timer fired: idle past leakDetectionThreshold (SessionTimers.Actions#leakSuspected). */
    void leakSuspected(long idleNanos) {
        if (s.phase != Phase.CONNECTED || leakSuspect || leakCandidate) {
            return;
        }
        String why = leaks.add(s, s.stateSince);
        if (why != null) {
            suspect(why);
        } else {
            leakCandidate = true;
            s.debug("idle beyond leakDetectionThreshold; a leak suspect if its client needs more connections");
        }
    }

    /** The client key's leak watch saw a sign that the client needs more connections. Call from any thread. */
    void underPressure(String why) {
        s.loop().execute(() -> {
            if (leakCandidate && s.phase == Phase.CONNECTED) {
                leakCandidate = false;
                leaks.remove(s);
                suspect(why);
            }
        });
    }

    /** Flags this idle session as a leak suspect, once per idle period, with the sign of need that made it one. */
    private void suspect(String why) {
        if (leakSuspect) {
            return;
        }
        leakSuspect = true;
        s.series.leakSuspectDelta(1);
        long now = System.nanoTime();
        // The session, address and client are the line's fields; the message does not repeat them.
        String idle = Durations.measured(now - s.stateSince);
        String age = Durations.measured(now - s.openedNanos);
        String last = s.lastStatement();
        String statement = last.isEmpty() ? "(none)" : last;
        s.log().at(Level.WARN).addKeyValue("reason", "leak_suspect")
                .addKeyValue("idle", idle)
                .addKeyValue("age", age)
                .addKeyValue("lastStatement", statement)
                .addKeyValue("evidence", why)
                .log("connection leak suspected: idle for {} (open {}) while {}; last statement: {}",
                        idle, age, why, statement);
    }

    // ------------------------------------------------------------------ identity and policy changes

    /** The client named itself anew on a connected session (a MySQL COM_CHANGE_USER, say). */
    void rekey(ClientIdentity who) {
        s.identity = who;
        applyPolicy();
        s.log().info("client identity changed; accounting moved to the new client");
    }

    /**
     * Re-reads the client key and the limits in force from the current policy (after a reload, which may
     * have changed {@code clients.identity} as well as limits). Call from any thread.
     */
    /** Re-reads the client key and limits from the policy in force (after a reload). Call from any thread. */
    void refresh() {
        s.loop().execute(() -> {
            if (s.identity == null || s.phase == Phase.CLOSED) {
                return;
            }
            ClientKey before = s.key;
            applyPolicy();
            if (!s.key.equals(before)) {
                s.log().info("client key changed with the reloaded clients.identity; accounting moved to the new client");
            }
        });
    }

    /**
     * Applies the policy in force to this session's identity: new limits, and when the key changed, its
     * admission slot (or place in the queue), metric series and leak candidacy move to the new key, so old
     * and new keys never each get a full cap.
     */
    private void applyPolicy() {
        ClientPolicy policy = s.services.policy();
        String address = s.address();
        ClientKey newKey = policy.key(s.listener.name(), s.identity, address);
        Limits newLimits = policy.limits(s.listener.name(), s.identity, address);
        s.limits = newLimits;
        if (timers != null) {
            timers.limits(newLimits, System.nanoTime());
        }
        if (newKey.equals(s.key)) {
            if (s.ticket != null) {
                s.listener.admission().update(s.ticket, newLimits);
            }
        } else {
            if (s.ticket != null) {
                s.listener.admission().rekey(s.ticket, newKey, newLimits);
            }
            if (s.admission.clientCounted()) {
                s.listener.clientConnections().move(s.key, newKey);
            }
            ClientSeries next = s.services.metrics().acquire(newKey);
            if (counts != null) {
                counts.leave(s.state, s.inTransaction);
                counts = next.shard();
                counts.enter(s.state, s.inTransaction);
            }
            if ((s.phase == Phase.QUEUED || s.lease != null) && s.admission.countedQueued()) {
                s.series.queuedDelta(-1);
                next.queuedDelta(1);
            }
            if (leakSuspect) {
                s.series.leakSuspectDelta(-1);
                next.leakSuspectDelta(1);
            }
            s.services.metrics().release(s.series);
            s.series = next;
            ClientKey oldKey = s.key;
            s.key = newKey;
            LeakWatch before = leaks;
            if (s.lease != null && s.admission.clientCounted()) {
                leaks = s.listener.admission().hold(newKey, newLimits);
                s.listener.admission().unhold(oldKey);
            } else {
                leaks = s.ticket.leaks();
            }
            if (leakCandidate && leaks != before) {
                before.remove(s);
                String why = leaks.add(s, s.stateSince);
                if (why != null) {
                    leakCandidate = false;
                    suspect(why);
                }
            }
        }
        s.series.maxConnections(newLimits.maxConnections());
    }
}
