package io.connguard.mysql;

import io.connguard.core.testing.TestProxy;
import io.connguard.core.testing.LeakGuard;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.Test;

import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.Statement;

import static org.assertj.core.api.Assertions.assertThat;

@ExtendWith(LeakGuard.class)
class MySqlSmokeIT {

    @Test
    void bothDriversQueryThroughTheProxy() throws Exception {
        try (TestProxy proxy = MySqlIt.proxy()) {
            try (Connection c = MySqlIt.connect(MySqlIt.mysqlUrl(proxy, "sslMode=DISABLED"), MySqlIt.NATIVE_USER, MySqlIt.NATIVE_PASSWORD);
                 Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT CURRENT_USER(), 1 + 1")) {
                assertThat(rs.next()).isTrue();
                assertThat(rs.getString(1)).startsWith(MySqlIt.NATIVE_USER + "@");
                assertThat(rs.getInt(2)).isEqualTo(2);
            }
            try (Connection c = MySqlIt.connect(MySqlIt.mariadbUrl(proxy, ""), MySqlIt.NATIVE_USER, MySqlIt.NATIVE_PASSWORD);
                 Statement s = c.createStatement(); ResultSet rs = s.executeQuery("SELECT CURRENT_USER(), 1 + 1")) {
                assertThat(rs.next()).isTrue();
                assertThat(rs.getInt(2)).isEqualTo(2);
            }
        }
    }
}
