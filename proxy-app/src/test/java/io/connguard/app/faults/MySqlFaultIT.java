package io.connguard.app.faults;

/** The fault scenarios against MariaDB / MySQL through MySQL Connector/J. */
class MySqlFaultIT extends FaultScenarios {
    MySqlFaultIT() {
        super(new MySqlFaults());
    }
}
