package io.connguard.postgres;

import io.connguard.core.api.ProtocolModule;
import io.connguard.core.api.ProtocolSession;
import io.connguard.core.api.SessionContext;

import java.util.List;

/**
 * The PostgreSQL wire protocol for connguard ({@code protocol: postgres}), found through
 * {@link java.util.ServiceLoader}. One instance serves every PostgreSQL listener of a running proxy; the
 * only state its sessions share is the cancel-key routing table.
 *
 * @see <a href="https://www.postgresql.org/docs/current/protocol.html">Frontend/Backend Protocol</a>
 */
public final class PgModule implements ProtocolModule {

    private final PgCancelRouter cancelRouter = new PgCancelRouter();

    @Override
    public String id() {
        return "postgres";
    }

    @Override
    public ProtocolSession newSession(SessionContext context) {
        return new PgSession(context, cancelRouter);
    }

    @Override
    public boolean terminatesClientTls() {
        return true;
    }

    /** Direct TLS ({@code sslnegotiation=direct}) must ask for this ALPN name, as PostgreSQL 17 requires. */
    @Override
    public List<String> tlsApplicationProtocols() {
        return List.of(PgClientEncryption.ALPN);
    }

    /** Session pooling, and transaction pooling ({@link PgTransactionMode}). */
    @Override
    public java.util.Set<String> poolModes() {
        return java.util.Set.of("session", "transaction");
    }

    @Override
    public io.connguard.core.api.ServerConnectionProtocol newServerConnection(
            io.connguard.core.api.ServerConnectionContext context, io.connguard.core.api.ClientIdentity who,
            char[] password) {
        return new PgServerConnection(context, who, password);
    }

    /** The routes to live backends, for tests: one per session that has received its BackendKeyData. */
    int cancelRoutes() {
        return cancelRouter.size();
    }
}
