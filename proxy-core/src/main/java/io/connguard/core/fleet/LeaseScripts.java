package io.connguard.core.fleet;

/**
 * The Lua scripts that keep leases in Redis, each run atomically by the server. Per budget key there are
 * three sorted sets under the fleet's hash tag ({@code connguard:{name}:KEY:...}, so a Redis Cluster keeps a
 * fleet on one slot): {@code leases} (lease id → expiry), {@code queue} (waiting id → arrival number from the
 * fleet's {@code seq} counter) and {@code waiters} (waiting id → expiry). Times are the server's clock
 * ({@code TIME}) unless a test passes its own, so replicas never compare their own clocks.
 *
 * <p>Fairness: a lease is granted only to a holder that is among the first {@code free} places of the queue
 * (or, when it is not queued, only if fewer than {@code free} are queued), so a replica that asks again at
 * once cannot overtake replicas that were waiting longer. A dead replica's queue places expire like its leases.
 */
final class LeaseScripts {

    private LeaseScripts() {
    }

    /** Reads the clock: ARGV[n] in milliseconds, or the server's time when it is 0. */
    private static final String NOW = """
            local function now_ms(arg)
              local n = tonumber(arg)
              if n and n > 0 then return n end
              local t = redis.call('TIME')
              return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
            end
            local function expire_old(leases, queue, waiters, now)
              redis.call('ZREMRANGEBYSCORE', leases, '-inf', now)
              local gone = redis.call('ZRANGEBYSCORE', waiters, '-inf', now)
              for _, id in ipairs(gone) do redis.call('ZREM', queue, id) end
              redis.call('ZREMRANGEBYSCORE', waiters, '-inf', now)
            end
            local function keep(ttl, a, b, c)
              redis.call('PEXPIRE', a, ttl * 2); redis.call('PEXPIRE', b, ttl * 2); redis.call('PEXPIRE', c, ttl * 2)
            end
            """;

    /**
     * KEYS: leases, queue, waiters, seq. ARGV: id, cap, ttl ms, now ms (0 = server time).
     * Returns {granted 1|0, live leases after, ms until the first live lease expires (-1: none)}.
     */
    static final String ACQUIRE = NOW + """
            local leases, queue, waiters, seq = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
            local id, cap, ttl = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
            local now = now_ms(ARGV[4])
            expire_old(leases, queue, waiters, now)
            local live = redis.call('ZCARD', leases)
            if redis.call('ZSCORE', leases, id) then
              redis.call('ZADD', leases, now + ttl, id)
              keep(ttl, leases, queue, waiters)
              return {1, live, -1}
            end
            local free = cap - live
            if free > 0 then
              local ahead = redis.call('ZRANK', queue, id)
              if not ahead then ahead = redis.call('ZCARD', queue) end
              if ahead < free then
                redis.call('ZADD', leases, now + ttl, id)
                redis.call('ZREM', queue, id)
                redis.call('ZREM', waiters, id)
                keep(ttl, leases, queue, waiters)
                return {1, live + 1, -1}
              end
            end
            if not redis.call('ZSCORE', queue, id) then
              redis.call('ZADD', queue, redis.call('INCR', seq), id)
            end
            redis.call('ZADD', waiters, now + ttl, id)
            keep(ttl, leases, queue, waiters)
            local first = redis.call('ZRANGE', leases, 0, 0, 'WITHSCORES')
            local wait = -1
            if first[2] then wait = math.max(0, tonumber(first[2]) - now) end
            return {0, live, wait}
            """;

    /**
     * KEYS: leases, queue, waiters. ARGV: id, channel, key. Publishes the key when something was freed and
     * someone waits for it. Returns 1 when a lease was removed.
     */
    static final String RELEASE = """
            local leases, queue, waiters = KEYS[1], KEYS[2], KEYS[3]
            local id = ARGV[1]
            local lease = redis.call('ZREM', leases, id)
            local place = redis.call('ZREM', queue, id)
            redis.call('ZREM', waiters, id)
            if lease + place > 0 and redis.call('ZCARD', queue) > 0 then
              redis.call('PUBLISH', ARGV[2], ARGV[3])
            end
            return lease
            """;

    /**
     * KEYS: seq, then leases, queue, waiters for each key. ARGV: ttl ms, now ms (0 = server time), then for
     * each key: the number of leases, the lease ids, the number of queue places, the waiting ids.
     * Returns how many leases and places were registered again because the server no longer had them.
     */
    static final String RENEW = NOW + """
            local ttl = tonumber(ARGV[1])
            local now = now_ms(ARGV[2])
            local seq = KEYS[1]
            local i = 3
            local again = 0
            for k = 2, #KEYS, 3 do
              local leases, queue, waiters = KEYS[k], KEYS[k + 1], KEYS[k + 2]
              local n = tonumber(ARGV[i]); i = i + 1
              for _ = 1, n do
                again = again + redis.call('ZADD', leases, now + ttl, ARGV[i])
                i = i + 1
              end
              local m = tonumber(ARGV[i]); i = i + 1
              for _ = 1, m do
                if not redis.call('ZSCORE', queue, ARGV[i]) then
                  redis.call('ZADD', queue, redis.call('INCR', seq), ARGV[i])
                  again = again + 1
                end
                redis.call('ZADD', waiters, now + ttl, ARGV[i])
                i = i + 1
              end
              keep(ttl, leases, queue, waiters)
            end
            return again
            """;

    /** KEYS: the leases set of each key. ARGV: now ms (0 = server time). Returns the live count of each. */
    static final String COUNT = NOW + """
            local now = now_ms(ARGV[1])
            local out = {}
            for k = 1, #KEYS do out[k] = redis.call('ZCOUNT', KEYS[k], '(' .. now, '+inf') end
            return out
            """;
}
