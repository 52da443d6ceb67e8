package io.connguard.app.guard;

/** Churn against MariaDB / MySQL through MySQL Connector/J. */
class MySqlChurnIT extends ChurnScenario {
    MySqlChurnIT() {
        super(new MySqlTarget());
    }
}
