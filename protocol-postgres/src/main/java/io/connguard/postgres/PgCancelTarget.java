package io.connguard.postgres;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;

/**
 * A {@link PgSession}'s place in the cancel routes ({@link PgCancelRouter}): the backend key its client
 * was given, registered from its BackendKeyData until the session closes, and, on pooled listeners, the
 * key of the server connection a cancel with it reaches now (in transaction mode, none between
 * transactions). Other event loops' cancel requests read that key ({@link #cancelServerKey}), hence the
 * release/acquire access. The session's base class rather than an object it holds, so that a session
 * carries no extra object for it.
 */
abstract class PgCancelTarget implements PgCancelRouter.Target {

    private static final VarHandle CANCEL_TO;

    static {
        try {
            CANCEL_TO = MethodHandles.lookup().findVarHandle(PgCancelTarget.class, "cancelTo", PgBackendKey.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    /** The routes of every session of the module; a CancelRequest is forwarded through it too. */
    final PgCancelRouter router;
    private PgBackendKey backendKey;
    /** The server's key a cancel with {@link #backendKey} is sent with, or null; written through {@link #CANCEL_TO}. */
    @SuppressWarnings("unused") // through CANCEL_TO
    private PgBackendKey cancelTo;

    PgCancelTarget(PgCancelRouter router) {
        this.router = router;
    }

    /**
     * The client was given {@code key} (a BackendKeyData): cancels with it come to this session from now on
     * and go to the backend of {@code serverKey} (null: the client's key is the server's, or no server
     * connection is lent).
     */
    final void routeCancels(PgBackendKey key, PgBackendKey serverKey) {
        if (backendKey != null) {
            router.remove(backendKey, this);
        }
        backendKey = key;
        cancelTo(serverKey);
        router.register(key, this);
    }

    /** Pooled listeners: cancels with the client's key now reach the backend of {@code serverKey} (null: none). */
    final void cancelTo(PgBackendKey serverKey) {
        CANCEL_TO.setRelease(this, serverKey);
    }

    /** Any thread. */
    @Override
    public final PgBackendKey cancelServerKey() {
        return (PgBackendKey) CANCEL_TO.getAcquire(this);
    }

    /** The session ends: its client's key routes nowhere any more. */
    final void removeCancelRoute() {
        if (backendKey != null) {
            router.remove(backendKey, this);
            backendKey = null;
        }
    }
}
