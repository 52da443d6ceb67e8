package io.connguard.core.api;

import java.util.Objects;

/**
 * Who a client says it is in its handshake. Missing fields are the empty string.
 *
 * @param user        the database user
 * @param database    the database (PostgreSQL defaults it to the user; MySQL may leave it empty)
 * @param application PostgreSQL {@code application_name}, MySQL {@code program_name}
 * @param replication a replication connection: counted, never killed for idleness
 */
public record ClientIdentity(String user, String database, String application, boolean replication) {

    public ClientIdentity {
        user = Objects.requireNonNullElse(user, "");
        database = Objects.requireNonNullElse(database, "");
        application = Objects.requireNonNullElse(application, "");
    }

    public ClientIdentity(String user, String database, String application) {
        this(user, database, application, false);
    }
}
