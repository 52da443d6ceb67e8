package io.connguard.app.faults;

import io.connguard.app.guard.GuardTarget;

import java.io.IOException;
import java.io.InputStream;
import java.sql.Connection;
import java.sql.SQLException;
import java.util.Optional;

/**
 * What the fault scenarios need beyond {@link GuardTarget}: how the database names a backend and ends
 * it, a lock table, how the driver reports the proxy's connect failure, and the first bytes of the
 * protocol for the scenarios that speak raw bytes. One implementation per protocol.
 */
interface FaultTarget {

    /**
     * Whether the proxy opens the upstream connection as a client connects, before its handshake (MySQL,
     * while the listener is under its cap: the client is greeted with the server's own greeting). Such an
     * upstream is closed unauthenticated when the client never finishes its handshake.
     */
    default boolean opensUpstreamBeforeHandshake() {
        return false;
    }


    /** Drivers, URLs, server-side connection counts and lock waits, shared with the guard scenarios. */
    GuardTarget guard();

    /** Creates {@code table(id int primary key, v int)} with rows 1..3 (idempotent), usable by every test user. */
    void ensureLockTable(String table) throws SQLException;

    /** The server's id of the backend behind {@code connection} (PostgreSQL pid, MySQL thread id). */
    long backendId(Connection connection) throws SQLException;

    /** Ends that backend from a direct connection, as an operator would ({@code pg_terminate_backend}, {@code KILL}). */
    void terminateBackend(long id) throws SQLException;

    /** Asserts that {@code e} is the driver's report of the proxy's "the database cannot be reached" (08006 / 1218 08S01). */
    void assertUpstreamUnavailable(SQLException e);

    /** Asserts that {@code e} is how the driver reports its backend being ended by the server. */
    void assertTerminatedByServer(SQLException e);

    /** Reads what the server says before the client speaks (MySQL: the greeting); PostgreSQL: nothing. */
    void readGreeting(InputStream in) throws IOException;

    /** The first handshake packet's header, announcing {@code payload} bytes of body (PostgreSQL: incl. the version word). */
    byte[] handshakeHeader(int payload);

    /** A complete, valid first handshake packet for {@code user}, for clients that feed it slowly. */
    byte[] handshake(String user);

    /**
     * Whether a client that has not finished its first handshake packet is told why it is closed: MySQL
     * clients get an ERR packet; PostgreSQL clients get nothing, as the server sends nothing to a client
     * whose start-up packet is too long, incomplete or late.
     */
    boolean toldBeforeHandshake();

    /** The protocol-violation error in the bytes the proxy sent (e.g. "08P01 ..." / "1047 08S01 ..."), if any. */
    Optional<String> protocolError(byte[] reply);
}
