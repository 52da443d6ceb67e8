package io.connguard.app.faults;

import io.connguard.app.guard.GuardTarget;
import io.connguard.app.guard.PostgresTarget;

import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.Optional;

import static org.assertj.core.api.Assertions.assertThat;

/** The fault scenarios' view of PostgreSQL: pgjdbc, pg_terminate_backend, and the start-up packet's bytes. */
final class PostgresFaults implements FaultTarget {

    private static final int PROTOCOL_3_0 = 196608;

    private final PostgresTarget guard = new PostgresTarget();

    @Override
    public GuardTarget guard() {
        return guard;
    }

    @Override
    public void ensureLockTable(String table) throws SQLException {
        try (Connection c = guard.database().connectDirect(); Statement s = c.createStatement()) {
            s.execute("CREATE TABLE IF NOT EXISTS " + table + " (id int PRIMARY KEY, v int NOT NULL)");
            s.execute("INSERT INTO " + table + " SELECT g, 0 FROM generate_series(1, 3) g ON CONFLICT DO NOTHING");
            s.execute("GRANT ALL ON TABLE " + table + " TO PUBLIC");
        }
    }

    @Override
    public long backendId(Connection connection) throws SQLException {
        try (Statement s = connection.createStatement(); ResultSet rs = s.executeQuery("SELECT pg_backend_pid()")) {
            rs.next();
            return rs.getLong(1);
        }
    }

    @Override
    public void terminateBackend(long id) throws SQLException {
        try (Connection c = guard.database().connectDirect(); Statement s = c.createStatement();
             ResultSet rs = s.executeQuery("SELECT pg_terminate_backend(" + id + ")")) {
            rs.next();
            assertThat(rs.getBoolean(1)).as("backend %s was there to terminate", id).isTrue();
        }
    }

    @Override
    public void assertUpstreamUnavailable(SQLException e) {
        assertThat(e.getSQLState()).as("SQLState of %s", e).isEqualTo("08006");
        assertThat(e.getMessage()).contains("connguard could not connect to the database server");
    }

    @Override
    public void assertTerminatedByServer(SQLException e) {
        // The server's own FATAL 57P01, relayed: "terminating connection due to administrator command".
        assertThat(e.getSQLState()).as("SQLState of %s", e).isEqualTo("57P01");
    }

    @Override
    public void readGreeting(InputStream in) {
        // The PostgreSQL client speaks first.
    }

    @Override
    public byte[] handshakeHeader(int payload) {
        return ByteBuffer.allocate(8).putInt(payload + 4).putInt(PROTOCOL_3_0).array();
    }

    @Override
    public byte[] handshake(String user) {
        ByteArrayOutputStream body = new ByteArrayOutputStream();
        for (String s : new String[] {"user", user, "database", guard.database().database()}) {
            body.writeBytes(s.getBytes(StandardCharsets.UTF_8));
            body.write(0);
        }
        body.write(0);
        byte[] params = body.toByteArray();
        return ByteBuffer.allocate(8 + params.length).putInt(8 + params.length).putInt(PROTOCOL_3_0).put(params).array();
    }

    /** An ErrorResponse ('E', length, fields of a type byte and a C string, a final 0), with its code and message. */
    @Override
    public boolean toldBeforeHandshake() {
        return false;
    }

    @Override
    public Optional<String> protocolError(byte[] reply) {
        ByteBuffer in = ByteBuffer.wrap(reply);
        while (in.remaining() >= 5) {
            byte type = in.get();
            int length = in.getInt();
            if (length < 4 || length - 4 > in.remaining()) {
                return Optional.empty();
            }
            byte[] body = new byte[length - 4];
            in.get(body);
            if (type == 'E') {
                String code = "";
                String message = "";
                int i = 0;
                while (i < body.length && body[i] != 0) {
                    char field = (char) body[i];
                    int end = i + 1;
                    while (end < body.length && body[end] != 0) {
                        end++;
                    }
                    String value = new String(body, i + 1, end - i - 1, StandardCharsets.UTF_8);
                    if (field == 'C') {
                        code = value;
                    } else if (field == 'M') {
                        message = value;
                    }
                    i = end + 1;
                }
                return Optional.of(code + " " + message);
            }
        }
        return Optional.empty();
    }
}
