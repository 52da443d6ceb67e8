package io.connguard.app.guard;

/** The guard scenarios against PostgreSQL through pgjdbc. */
class PostgresGuardIT extends GuardScenarios {
    PostgresGuardIT() {
        super(new PostgresTarget());
    }
}
