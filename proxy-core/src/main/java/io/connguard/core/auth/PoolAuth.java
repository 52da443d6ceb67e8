package io.connguard.core.auth;

import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;

/**
 * How the clients of one pool (listener, user, database) are verified when server connections are
 * shared ({@code auth.mode: passthrough}). Protocol-neutral: the protocol asks the client for its
 * password and logs in to the database; this class decides when either is needed and remembers what the
 * database answered. Confined to the pool's event loop.
 *
 * <ul>
 *   <li>Until a server login of this pool has succeeded, every client is verified by a fresh server login
 *       with what it presented: the database decides, connguard asks the client for a password only when
 *       the database asked one.</li>
 *   <li>The database asked none (trust): later clients are asked none either.</li>
 *   <li>It asked one: later clients are asked theirs; one that matches the password the database last
 *       accepted is admitted at once; any other is verified by a fresh server login (so a changed password
 *       works, and a wrong one gets the database's own error).</li>
 *   <li>A server login with the remembered password that fails forgets it.</li>
 *   <li>With {@code auth.usersFile}, a listed user's password comes from the file: clients are checked
 *       against it and server logins use it.</li>
 * </ul>
 */
public final class PoolAuth {

    /** What the database asks of this pool's user, as far as connguard knows. */
    public enum Need { UNKNOWN, NONE, PASSWORD }

    /** What to do with a client's password. */
    public enum Verdict {
        /** Matches what the database (or the users file) accepted: admit without a server login. */
        ACCEPTED,
        /** Wrong for the users file: refuse (28P01 in PostgreSQL). */
        REJECTED,
        /** Unknown here: verify it with a fresh server login. */
        VERIFY_WITH_SERVER
    }

    private final UsersDirectory users;
    private final String user;
    private final RememberedPassword remembered = new RememberedPassword();
    private Need need = Need.UNKNOWN;

    public PoolAuth(UsersDirectory users, String user) {
        this.users = users;
        this.user = user;
    }

    /** Whether a client must be asked for its password before it gets a server connection. */
    public boolean askClient() {
        return filePassword() != null || need == Need.PASSWORD;
    }

    /** Whether a new client must be verified by a server login of its own (nothing is known yet). */
    public boolean unknown() {
        return filePassword() == null && need == Need.UNKNOWN;
    }

    public Need need() {
        return need;
    }

    /** Judges the password a client presented. */
    public Verdict check(char[] password) {
        String file = filePassword();
        if (file != null) {
            byte[] given = new String(password).getBytes(StandardCharsets.UTF_8);
            return MessageDigest.isEqual(given, file.getBytes(StandardCharsets.UTF_8)) ? Verdict.ACCEPTED : Verdict.REJECTED;
        }
        return need == Need.PASSWORD && remembered.matches(password) ? Verdict.ACCEPTED : Verdict.VERIFY_WITH_SERVER;
    }

    /**
     * The password server logins of this pool use: the users file's, else {@code client}'s own (the
     * client whose request opens the connection), which may be null under trust.
     */
    public char[] serverPassword(char[] client) {
        String file = filePassword();
        return file != null ? file.toCharArray() : client;
    }

    /** A server login succeeded; {@code asked}: the database asked for {@code password}. */
    public void loginSucceeded(boolean asked, char[] password) {
        if (!asked) {
            need = Need.NONE;
            remembered.forget();
        } else {
            need = Need.PASSWORD;
            if (password != null && filePassword() == null) {
                remembered.remember(password);
            }
        }
    }

    /** A server login with {@code password} was refused for its credentials: it is forgotten if remembered. */
    public void loginRefused(char[] password) {
        if (password != null && remembered.matches(password)) {
            remembered.forget();
        }
    }

    private String filePassword() {
        return users == null ? null : users.password(user);
    }
}
