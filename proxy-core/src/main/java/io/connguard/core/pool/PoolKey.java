package io.connguard.core.pool;

/** What a pool is for: a listener, and the user and database its server connections are logged in as. */
public record PoolKey(String listener, String user, String database) {

    // Written out rather than generated: every pooled login looks its pool up, and the generated methods go
    // through method handles without checking identity first.
    @Override
    public boolean equals(Object o) {
        if (this == o) {
            return true;
        }
        return o instanceof PoolKey k && listener.equals(k.listener) && user.equals(k.user)
                && database.equals(k.database);
    }

    @Override
    public int hashCode() {
        return (listener.hashCode() * 31 + user.hashCode()) * 31 + database.hashCode();
    }
}
