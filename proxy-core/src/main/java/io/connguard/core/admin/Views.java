package io.connguard.core.admin;

import io.connguard.core.admission.Admission.ClientCounts;
import io.connguard.core.admission.ClientKey;
import io.connguard.core.api.SessionState;
import io.connguard.core.config.Durations;
import io.connguard.core.config.Limits;
import io.connguard.core.server.Listener;
import io.connguard.core.session.SessionSnapshot;

import java.time.Duration;
import java.time.Instant;
import java.time.temporal.ChronoUnit;
import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** The JSON bodies of {@code GET /sessions} and {@code GET /clients}; field names are part of the contract. */
final class Views {

    private Views() {
    }

    static String sessions(List<SessionSnapshot> sessions) {
        Json json = new Json().beginArray();
        for (SessionSnapshot s : sessions) {
            json.beginObject()
                    .field("id", s.id())
                    .field("listener", s.listener())
                    .field("user", s.user())
                    .field("database", s.database())
                    .field("application", s.application())
                    .field("address", s.address())
                    .field("state", s.state())
                    .field("stateSince", time(s.stateSince()))
                    .field("openedAt", time(s.openedAt()))
                    .field("inTransaction", s.inTransaction())
                    .field("leakSuspect", s.leakSuspect())
                    .field("lastStatement", s.lastStatement())
                    .field("bytesIn", s.bytesIn())
                    .field("bytesOut", s.bytesOut());
            if (s.pooled()) {
                json.name("serverConnection");
                if (s.serverConnection() == null) {
                    json.nullValue();
                } else {
                    json.value(s.serverConnection());
                }
                json.name("pinReason");
                if (s.pinReason() == null) {
                    json.nullValue();
                } else {
                    json.value(s.pinReason());
                }
            }
            json.endObject();
        }
        return json.endArray().toString();
    }

    /** One entry per pool of every pooled listener. */
    static String pools(List<io.connguard.core.pool.PoolSnapshot> pools) {
        Json json = new Json().beginArray();
        for (io.connguard.core.pool.PoolSnapshot p : pools) {
            json.beginObject()
                    .field("listener", p.listener())
                    .field("user", p.user())
                    .field("database", p.database());
            json.name("serverConnections").beginObject()
                    .field("active", p.active())
                    .field("idle", p.idle())
                    .field("pinned", p.pinned())
                    .endObject();
            json.field("waiting", p.waiting());
            json.name("pins").beginObject();
            p.pins().forEach((reason, n) -> json.field(reason, n));
            json.endObject();
            json.endObject();
        }
        return json.endArray().toString();
    }

    /** Fleet leases per client: held by this process, and live in the whole fleet (absent: store away). */
    record FleetCounts(Map<ClientKey, Integer> here, Map<ClientKey, Integer> fleet) {
    }

    /** One row per client key that has sessions or waiters now. */
    static String clients(List<Listener> listeners, List<SessionSnapshot> sessions) {
        return clients(listeners, sessions, null);
    }

    /** As above; with fleet budgets on, each row also tells the leases held here and in the fleet. */
    static String clients(List<Listener> listeners, List<SessionSnapshot> sessions, FleetCounts fleet) {
        Map<ClientKey, Row> rows = new LinkedHashMap<>();
        for (Listener listener : listeners) {
            for (ClientCounts counts : listener.admission().clients()) {
                Row row = rows.computeIfAbsent(counts.key(), Row::new);
                row.queued = counts.waiting();
                row.probation = counts.probation();
                row.limits = counts.limits();
            }
        }
        for (SessionSnapshot s : sessions) {
            Row row = rows.computeIfAbsent(s.key(), Row::new);
            row.states.merge(state(s.state()), 1, Integer::sum);
            if (s.leakSuspect()) {
                row.leakSuspects++;
            }
        }
        Json json = new Json().beginArray();
        for (Row row : rows.values()) {
            ClientKey key = row.key;
            int total = row.states.values().stream().mapToInt(Integer::intValue).sum();
            json.beginObject()
                    .field("listener", key.listener())
                    .field("user", key.user())
                    .field("database", key.database())
                    .field("application", key.application())
                    .field("address", key.address())
                    .name("connections").beginObject();
            for (SessionState state : SessionState.values()) {
                json.field(state.label(), row.states.getOrDefault(state, 0));
            }
            json.endObject()
                    .field("total", total)
                    .field("queued", row.queued)
                    .field("probation", row.probation)
                    .field("leakSuspects", row.leakSuspects);
            Limits limits = row.limits;
            json.name("maxConnections");
            if (limits == null || limits.maxConnections() == 0) {
                json.nullValue();
            } else {
                json.value(limits.maxConnections());
            }
            json.name("fleetMaxConnections");
            if (limits == null || limits.fleetMaxConnections() == 0) {
                json.nullValue();
            } else {
                json.value(limits.fleetMaxConnections());
            }
            if (fleet != null) {
                json.name("fleetLeases").beginObject()
                        .field("here", fleet.here().getOrDefault(key, 0))
                        .name("fleet");
                Integer inFleet = fleet.fleet().get(key);
                if (inFleet == null) {
                    json.nullValue();
                } else {
                    json.value(inFleet);
                }
                json.endObject();
            }
            json.name("limits");
            if (limits == null) {
                json.nullValue();
            } else {
                json.beginObject()
                        .field("maxConnections", limits.maxConnections())
                        .field("queueTimeout", duration(limits.queueTimeout()))
                        .field("maxQueued", limits.maxQueued())
                        .field("idleInTransactionTimeout", duration(limits.idleInTransactionTimeout()))
                        .field("idleTimeout", duration(limits.idleTimeout()))
                        .field("leakDetectionThreshold", duration(limits.leakDetectionThreshold()))
                        .field("maxSessionLifetime", duration(limits.maxSessionLifetime()))
                        .field("fleetMaxConnections", limits.fleetMaxConnections())
                        .endObject();
            }
            json.endObject();
        }
        return json.endArray().toString();
    }

    private static final class Row {
        final ClientKey key;
        final Map<SessionState, Integer> states = new EnumMap<>(SessionState.class);
        int queued;
        int probation;
        int leakSuspects;
        Limits limits;

        Row(ClientKey key) {
            this.key = key;
        }
    }

    private static SessionState state(String label) {
        for (SessionState state : SessionState.values()) {
            if (state.label().equals(label)) {
                return state;
            }
        }
        return SessionState.UNKNOWN;
    }

    private static String time(Instant instant) {
        return instant.truncatedTo(ChronoUnit.MILLIS).toString();
    }

    /** Durations as ISO-8601 would be unfriendly here; the configuration's own form is used: 5s, 10m, 0. */
    private static String duration(Duration d) {
        return Durations.format(d);
    }
}
