package io.connguard.core.session;

import io.connguard.core.admission.Admission;
import io.connguard.core.api.ClientIdentity;
import io.connguard.core.api.ProxyError;
import io.connguard.core.api.SessionState;
import io.connguard.core.auth.PoolAuth;
import io.connguard.core.metrics.CloseReason;
import io.connguard.core.pool.ServerConnection;
import io.connguard.core.pool.ServerPool;
import io.connguard.core.session.Session.Phase;
import io.netty.buffer.ByteBuf;
import io.netty.util.ReferenceCountUtil;
import org.slf4j.event.Level;

/**
 * A {@link Session} on a pooled listener: the client's {@link ServerPool}, the password checks before and
 * during a server login, borrowing a {@link ServerConnection} (once for the session, or per transaction
 * with the session's {@link TransactionLease}) and giving it back, reset or closed.
 *
 * <p>Owns the pool, the lent server connection, the client's password until it is used, and the server's
 * own refusal. The session's upstream channel is the lent connection's channel while one is lent. Runs on
 * the session's event loop; the pool calls back through the session (the {@code Lessee}).
 */
final class ServerBorrowing {

    private final Session s;
    /** The client's pool, the server connection lent to it, the password it gave. */
    private ServerPool pool;
    private ServerConnection server;
    private char[] password;
    /** The client's password must be verified by a server login of its own. */
    private boolean freshLogin;
    /** Asked the client for its password before admission. */
    private boolean awaitingPassword;
    /** A fresh login paused until the client gives its password. */
    private ServerConnection loginWaiting;
    /** The server's own refusal, sent to the client instead of a packet of connguard's. */
    private ByteBuf serverRefusal;

    ServerBorrowing(Session session) {
        this.s = session;
    }

    /** Whether the session is on a pooled listener and has been given its pool (from identification on). */
    boolean pooled() {
        return pool != null;
    }

    /** Whether a server connection is lent to the session now. */
    boolean lending() {
        return server != null;
    }

    /** The id of the server connection lent now, or null. */
    Long serverId() {
        return server == null ? null : server.id();
    }

    // ------------------------------------------------------------------ before admission

    /**
     * Picks the identified client's pool. Returns true when the client must first give its password
     * (auth.usersFile checks it before admission; {@link #passwordGiven} goes on).
     */
    boolean choosePool(ClientIdentity who) {
        pool = s.listener.pools().pool(who);
        if (pool.auth().askClient()) {
            awaitingPassword = true;
            s.closing().armHandshakeTimer();
            s.protocol.requestPassword();
            return true;
        }
        freshLogin = pool.auth().unknown();
        return false;
    }

    /** The client gave its password: for a login waiting for it, or for the check before admission. */
    void passwordGiven(char[] given) {
        if (s.phase == Phase.CLOSED) {
            java.util.Arrays.fill(given, '\0');
            return;
        }
        if (loginWaiting != null) {
            ServerConnection c = loginWaiting;
            loginWaiting = null;
            if (s.lease != null && s.lease.password() == null) {
                s.lease.keepPassword(given); // a later borrow may have to log in again, with no one to ask
            }
            c.password(given);
            java.util.Arrays.fill(given, '\0');
            return;
        }
        if (!awaitingPassword) {
            java.util.Arrays.fill(given, '\0');
            return;
        }
        awaitingPassword = false;
        s.cancelHandshakeTimer();
        PoolAuth.Verdict verdict = pool.auth().check(given);
        if (verdict == PoolAuth.Verdict.REJECTED) {
            java.util.Arrays.fill(given, '\0');
            s.log().at(Level.INFO).addKeyValue("reason", "authentication").log("password refused (auth.usersFile)");
            s.close(null, new ProxyError(ProxyError.Kind.AUTHENTICATION_FAILED,
                    "password authentication failed for user \"" + s.identity.user() + "\"", ""));
            return;
        }
        password = given;
        freshLogin = verdict == PoolAuth.Verdict.VERIFY_WITH_SERVER;
        s.admission.takeTicket();
    }

    /**
     * The client proved, without giving it, the password the pool's server logins already use (MySQL's
     * scramble answer checked against the verifier a login kept): it is admitted like a verified client.
     */
    void passwordProven() {
        if (s.phase == Phase.CLOSED) {
            return;
        }
        if (!awaitingPassword) {
            if (loginWaiting != null) {
                // A login asked for it: a client that queued before the pool knew a password is served by a
                // fresh login. A proof cannot log in; asked again, the protocol asks the client itself.
                s.protocol.requestPassword();
            }
            return;
        }
        awaitingPassword = false;
        s.cancelHandshakeTimer();
        freshLogin = false;
        s.admission.takeTicket();
    }

    // ------------------------------------------------------------------ borrowing

    /** Admitted: asks the pool for a server connection, with the password the client gave (then wiped). */
    void checkout() {
        char[] given = password;
        password = null;
        if (s.lease != null) {
            s.lease.keepPassword(given);
        }
        pool.checkout(s, s.identity, given, freshLogin, s.limits.queueTimeout().toNanos());
        if (given != null) {
            java.util.Arrays.fill(given, '\0');
        }
    }

    /** Transaction mode: admitted for the next transaction, asks the pool for a server connection. */
    void checkoutForLease() {
        s.lease.checkout();
        char[] given = s.lease.password();
        pool.checkout(s, s.identity, given != null ? given : pool.transactionPassword(), false,
                s.limits.queueTimeout().toNanos());
    }

    /** The pool lends a server connection (Lessee#lent): the session is CONNECTED on it. */
    void lent(ServerConnection connection) {
        if (s.lease != null && s.phase == Phase.CONNECTED && server == null && s.lease.lent()) {
            lendNow(connection);
            return;
        }
        if (s.phase != Phase.CONNECTING) {
            pool.giveBack(connection, s.phase != Phase.CLOSED);
            return;
        }
        server = connection;
        s.upstream = connection.channel();
        s.phase = Phase.CONNECTED;
        s.closing().armHandshakeTimer();
        try {
            s.protocol.onServerLent(connection.protocol());
        } catch (RuntimeException e) {
            s.log().at(Level.WARN).setCause(e).log("protocol failed to take the server connection");
            s.close(CloseReason.PROTOCOL_ERROR, null);
            return;
        }
        s.flushDirty();
        if (s.upstream != null && s.client.isWritable()) {
            s.upstream.read();
        }
    }

    /** A server connection lent for the client's next transaction; the client's held bytes may go. */
    private void lendNow(ServerConnection connection) {
        server = connection;
        s.upstream = connection.channel();
        try {
            s.protocol.onServerLent(connection.protocol());
        } catch (RuntimeException e) {
            s.log().at(Level.WARN).setCause(e).log("protocol failed to take the server connection");
            s.close(CloseReason.PROTOCOL_ERROR, null);
            return;
        }
        s.flushDirty();
        if (s.phase == Phase.CONNECTED) {
            if (s.upstream != null && s.client.isWritable()) {
                s.upstream.read();
            }
            s.client.read();
        }
    }

    /** A fresh server login needs the client's password: the protocol asks the client for it. */
    void passwordNeeded(ServerConnection connection) {
        if (s.phase == Phase.CLOSED) {
            return;
        }
        loginWaiting = connection;
        s.protocol.requestPassword();
    }

    /** The database refused the login; its own error packet goes to the client. */
    void refused(ByteBuf clientError, String reason) {
        loginWaiting = null;
        if (s.phase == Phase.CLOSED) {
            ReferenceCountUtil.release(clientError);
            return;
        }
        serverRefusal = clientError;
        s.log().at(Level.INFO).addKeyValue("reason", "authentication").log("the database refused the login: {}", reason);
        s.close(CloseReason.UPSTREAM, new ProxyError(ProxyError.Kind.AUTHENTICATION_FAILED, reason, ""));
    }

    /** The server's refusal of the login, once, for the close to send instead of an error of connguard's. */
    ByteBuf takeRefusal() {
        ByteBuf refusal = serverRefusal;
        serverRefusal = null;
        return refusal;
    }

    /** The pool has no server connection to lend (full, or the database cannot be reached). */
    void unavailable(String reason, boolean poolFull) {
        loginWaiting = null;
        if (s.phase == Phase.CLOSED) {
            return;
        }
        s.log().at(poolFull ? Level.INFO : Level.WARN).addKeyValue("reason", poolFull ? "pool_full" : "upstream")
                .log("no server connection: {}", reason);
        s.close(CloseReason.UPSTREAM, poolFull
                ? new ProxyError(ProxyError.Kind.TOO_MANY_CONNECTIONS, "too many connections for client "
                + s.describeClient(), "connguard: " + reason, s.perUser())
                : new ProxyError(ProxyError.Kind.UPSTREAM_UNAVAILABLE, "connguard " + reason, ""));
    }

    /** The lent server connection closed under the session. */
    void serverClosed() {
        server = null;
        s.upstream = null;
        s.close(CloseReason.UPSTREAM, null);
    }

    /** The protocol pinned the session to its server connection (transaction mode): counted and shown. */
    void pinned(String reason) {
        if (s.series != null) {
            s.series.pinned(reason);
        }
        if (server != null) {
            pool.pinned(server, s.pinReason());
        }
    }

    // ------------------------------------------------------------------ giving back

    /** Transaction mode: the transaction ended; the server connection goes back now or after this read batch. */
    void serverIdle(boolean reset) {
        if (s.lease == null || server == null || s.phase != Phase.CONNECTED) {
            return;
        }
        if (s.reading) {
            s.lease.releaseLater(reset); // given back once this read batch is flushed
        } else {
            releaseServer(reset);
        }
    }

    /** Gives the server connection back to the pool (reset first when asked) and the ticket to admission. */
    void releaseServer(boolean reset) {
        if (server == null) {
            return;
        }
        s.flushDirty();
        ServerConnection c = server;
        server = null;
        s.upstream = null;
        pool.giveBack(c, true, reset);
        Admission.Ticket held = s.ticket;
        s.ticket = null;
        if (held != null) {
            s.listener.admission().release(held);
        }
    }

    /**
     * The session closes: the lent server connection goes back to its pool, to be reset and lent again when
     * the client left it idle at a clean boundary, else closed (the database rolls back what was open).
     * The admission slot is then given back at once: the connection is the pool's again.
     */
    void giveServerBack(Phase was) {
        if (password != null) {
            java.util.Arrays.fill(password, '\0');
            password = null;
        }
        loginWaiting = null;
        if (s.lease != null) {
            s.lease.close();
        }
        if (server == null) {
            if (was == Phase.CONNECTING || s.lease != null) {
                pool.cancel(s);
            }
            return;
        }
        boolean reusable = was == Phase.CONNECTED && s.state == SessionState.IDLE && !s.inTransaction;
        try {
            reusable = reusable && s.protocol.serverReusable();
        } catch (RuntimeException e) {
            reusable = false;
        }
        ServerConnection c = server;
        server = null;
        s.upstream = null;
        s.debug("server connection {} given back ({})", c.id(), reusable ? "reusable" : "closed: state "
                + s.state.label());
        if (s.lease != null) {
            boolean reset;
            try {
                reset = s.protocol.serverNeedsReset();
            } catch (RuntimeException e) {
                reset = true;
            }
            pool.giveBack(c, reusable, reset);
        } else {
            pool.giveBack(c, reusable);
        }
    }
}
