package io.connguard.app.faults;

import io.connguard.core.testing.RealDatabases;

/** The storm against PostgreSQL, with raw protocol clients (trust authentication for the storm user). */
class PostgresStormIT extends StormScenario {
    PostgresStormIT() {
        super(new PostgresFaults(), new PostgresStormDialect(RealDatabases.postgres().database()));
    }
}
