package io.connguard.app.guard;

/** Churn against PostgreSQL through pgjdbc. */
class PostgresChurnIT extends ChurnScenario {
    PostgresChurnIT() {
        super(new PostgresTarget());
    }
}
