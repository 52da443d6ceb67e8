package io.connguard.core.session;

import java.util.Arrays;

/**
 * Transaction mode ({@code pool.mode: transaction}): where one client session is in borrowing a server
 * connection for its next transaction. The session holds a server connection only while the client is
 * inside a transaction or has a request in flight; the protocol reports when it needs one
 * ({@code serverWanted}) and when the one it holds stands idle ({@code serverIdle}). Each borrow takes an
 * admission ticket (the client's cap, the queue, fleet leases) and a checkout from the pool; each return
 * gives both back. The client's password is kept for the session's life (cleared at its end) when the
 * database asked for one: a later borrow may have to open a new server connection with it.
 *
 * <p>Confined to the session's event loop, like the session.
 */
final class TransactionLease {

    private enum Step { NONE, ADMISSION, QUEUED, CHECKOUT }

    private Step step = Step.NONE;
    private char[] password;
    /** The server connection is to be given back at the end of the current read batch; with a reset. */
    private boolean releasePending;
    private boolean releaseReset;

    /** No borrow under way (the session may or may not hold a server connection). */
    boolean idle() {
        return step == Step.NONE;
    }

    void admission() {
        step = Step.ADMISSION;
    }

    /** The ticket waits in the admission queue (or for a fleet lease). */
    void waiting() {
        step = Step.QUEUED;
    }

    boolean queued() {
        return step == Step.QUEUED;
    }

    void checkout() {
        step = Step.CHECKOUT;
    }

    /** A server connection was lent: true when it answers this borrow's checkout. */
    boolean lent() {
        if (step != Step.CHECKOUT) {
            return false;
        }
        step = Step.NONE;
        return true;
    }

    void stopWaiting() {
        step = Step.NONE;
    }

    boolean checkingOut() {
        return step == Step.CHECKOUT;
    }

    /** Keeps a copy of the client's password (null: none was asked) for later server logins. */
    void keepPassword(char[] given) {
        clearPassword();
        password = given == null ? null : given.clone();
    }

    char[] password() {
        return password;
    }

    void releaseLater(boolean reset) {
        releasePending = true;
        releaseReset |= reset;
    }

    /** Whether a release is pending, and then with a reset; clears it. */
    boolean takeRelease() {
        boolean pending = releasePending;
        releasePending = false;
        return pending;
    }

    boolean takeReset() {
        boolean reset = releaseReset;
        releaseReset = false;
        return reset;
    }

    void close() {
        step = Step.NONE;
        releasePending = false;
        clearPassword();
    }

    private void clearPassword() {
        if (password != null) {
            Arrays.fill(password, '\0');
            password = null;
        }
    }
}
