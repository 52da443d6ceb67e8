package io.connguard.core.pool;

/** What a pool is for: a listener, and the user and database its server connections are logged in as. */
public record PoolKey(String listener, String user, String database) {
}
