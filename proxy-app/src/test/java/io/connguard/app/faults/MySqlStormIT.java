package io.connguard.app.faults;

import io.connguard.app.guard.GuardTarget;
import io.connguard.core.testing.RealDatabases;

/** The storm against MariaDB, with raw protocol clients (mysql_native_password, answered auth switches). */
class MySqlStormIT extends StormScenario {
    MySqlStormIT() {
        super(new MySqlFaults(), new MySqlStormDialect(RealDatabases.mysql().database(), GuardTarget.PASSWORD));
    }
}
