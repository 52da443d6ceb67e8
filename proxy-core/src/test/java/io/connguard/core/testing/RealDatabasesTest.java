package io.connguard.core.testing;

import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;

class RealDatabasesTest {

    @Test
    void environmentUrlsCarryHostPortDatabaseAndCredentials() {
        Database pg = RealDatabases.fromUrl(Database.Kind.POSTGRES,
                "jdbc:postgresql://db.example:6543/orders?user=app&password=p%40ss", "CONNGUARD_IT_POSTGRES");
        assertThat(pg).isEqualTo(new Database(Database.Kind.POSTGRES, "db.example", 6543, "app", "p@ss", "orders",
                "CONNGUARD_IT_POSTGRES"));
        assertThat(pg.jdbcUrl("127.0.0.1", 6432)).isEqualTo("jdbc:postgresql://127.0.0.1:6432/orders");
        Database my = RealDatabases.fromUrl(Database.Kind.MYSQL, "jdbc:mysql://10.0.0.5/shop", "CONNGUARD_IT_MYSQL");
        assertThat(my.port()).isEqualTo(3306);
        assertThat(my.user()).isEqualTo("root");
        assertThat(my.hostPort()).isEqualTo("10.0.0.5:3306");
    }
}
