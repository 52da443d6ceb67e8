package io.connguard.app.faults;

import io.connguard.app.guard.GuardTarget;
import io.connguard.app.guard.MySqlTarget;

import java.io.EOFException;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.Optional;

import static org.assertj.core.api.Assertions.assertThat;

/** The fault scenarios' view of MySQL / MariaDB: Connector/J, KILL, and the handshake packets' bytes. */
final class MySqlFaults implements FaultTarget {

    private final MySqlTarget guard = new MySqlTarget();

    @Override
    public GuardTarget guard() {
        return guard;
    }

    @Override
    public boolean opensUpstreamBeforeHandshake() {
        return true;
    }

    @Override
    public void ensureLockTable(String table) throws SQLException {
        try (Connection c = guard.database().connectDirect(); Statement s = c.createStatement()) {
            s.execute("CREATE TABLE IF NOT EXISTS " + table + " (id int PRIMARY KEY, v int NOT NULL) ENGINE=InnoDB");
            s.execute("INSERT IGNORE INTO " + table + " VALUES (1, 0), (2, 0), (3, 0)");
        }
    }

    @Override
    public long backendId(Connection connection) throws SQLException {
        try (Statement s = connection.createStatement(); ResultSet rs = s.executeQuery("SELECT CONNECTION_ID()")) {
            rs.next();
            return rs.getLong(1);
        }
    }

    @Override
    public void terminateBackend(long id) throws SQLException {
        try (Connection c = guard.database().connectDirect(); Statement s = c.createStatement()) {
            s.execute("KILL " + id);
        }
    }

    @Override
    public void assertUpstreamUnavailable(SQLException e) {
        assertThat(e.getErrorCode()).as("error code of %s", e).isEqualTo(1218);
        assertThat(e.getSQLState()).as("SQLSTATE of %s", e).startsWith("08");
        assertThat(e.getMessage()).contains("connguard could not connect to the database server");
    }

    @Override
    public void assertTerminatedByServer(SQLException e) {
        // MariaDB answers the killed connection's statement with ERR 1927 (70100) "Connection was killed";
        // Connector/J may instead see the connection end first and report a communications failure (08S01).
        assertThat(e.getErrorCode() == 1927 || "08S01".equals(e.getSQLState()))
                .as("code %s, SQLState %s of %s", e.getErrorCode(), e.getSQLState(), e).isTrue();
    }

    @Override
    public void readGreeting(InputStream in) throws IOException {
        byte[] header = in.readNBytes(4);
        if (header.length < 4) {
            throw new EOFException("no greeting");
        }
        int length = (header[0] & 0xFF) | (header[1] & 0xFF) << 8 | (header[2] & 0xFF) << 16;
        if (in.readNBytes(length).length < length) {
            throw new EOFException("greeting cut short");
        }
    }

    @Override
    public byte[] handshakeHeader(int payload) {
        return new byte[] {(byte) payload, (byte) (payload >> 8), (byte) (payload >> 16), 1};
    }

    @Override
    public byte[] handshake(String user) {
        // No auth data: the proxy switches authentication anyway.
        return MySqlClientPackets.packet(1, MySqlClientPackets.handshakeResponse(user, guard.database().database(),
                new byte[0], null));
    }

    /** The first ERR packet (0xFF, error code, '#', SQLSTATE, message) in the bytes after the greeting. */
    @Override
    public boolean toldBeforeHandshake() {
        return true;
    }

    @Override
    public Optional<String> protocolError(byte[] reply) {
        int i = 0;
        while (i + 4 <= reply.length) {
            int length = (reply[i] & 0xFF) | (reply[i + 1] & 0xFF) << 8 | (reply[i + 2] & 0xFF) << 16;
            int body = i + 4;
            if (body + length > reply.length) {
                return Optional.empty();
            }
            if (length >= 3 && (reply[body] & 0xFF) == 0xFF) {
                int code = (reply[body + 1] & 0xFF) | (reply[body + 2] & 0xFF) << 8;
                String rest = new String(reply, body + 3, length - 3, StandardCharsets.UTF_8);
                String state = rest.startsWith("#") ? rest.substring(1, 6) + " " : "";
                String message = rest.startsWith("#") ? rest.substring(6) : rest;
                return Optional.of(code + " " + state + message);
            }
            i = body + length;
        }
        return Optional.empty();
    }
}
