package io.connguard.app.guard;

/** The guard scenarios against MariaDB / MySQL through MySQL Connector/J. */
class MySqlGuardIT extends GuardScenarios {
    MySqlGuardIT() {
        super(new MySqlTarget());
    }
}
