package io.connguard.app.faults;

/** The fault scenarios against PostgreSQL through pgjdbc. */
class PostgresFaultIT extends FaultScenarios {
    PostgresFaultIT() {
        super(new PostgresFaults());
    }
}
