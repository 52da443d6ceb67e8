package io.connguard.core.admission;

import io.connguard.core.api.ClientIdentity;
import io.connguard.core.config.ClientsConfig.IdentityField;
import io.netty.util.concurrent.FastThreadLocal;

import java.util.List;
import java.util.Objects;

/**
 * A client as caps and metrics see it: the listener plus the identity fields that
 * {@code clients.identity} names; the other fields are empty.
 */
public record ClientKey(String listener, String user, String database, String application, String address) {

    private static final FastThreadLocal<ClientKey> LAST = new FastThreadLocal<>();

    /**
     * The key of a client; the same instance as the previous call's on this thread when equal, as for the
     * clients of one application's pool on an event loop: one key for them instead of 32 bytes each.
     */
    public static ClientKey of(String listener, ClientIdentity identity, String address, List<IdentityField> fields) {
        String user = fields.contains(IdentityField.USER) ? identity.user() : "";
        String database = fields.contains(IdentityField.DATABASE) ? identity.database() : "";
        String application = fields.contains(IdentityField.APPLICATION) ? identity.application() : "";
        String at = fields.contains(IdentityField.ADDRESS) ? address : "";
        ClientKey last = LAST.getIfExists();
        if (last != null && Objects.equals(last.listener, listener) && Objects.equals(last.user, user)
                && Objects.equals(last.database, database) && Objects.equals(last.application, application)
                && Objects.equals(last.address, at)) {
            return last;
        }
        ClientKey key = new ClientKey(listener, user, database, application, at);
        LAST.set(key);
        return key;
    }

    // Written out rather than generated: admission looks a key up at every transaction of a pooled session, and
    // the generated methods go through method handles without checking identity first.
    @Override
    public boolean equals(Object o) {
        if (this == o) {
            return true;
        }
        return o instanceof ClientKey k && listener.equals(k.listener) && user.equals(k.user)
                && database.equals(k.database) && application.equals(k.application) && address.equals(k.address);
    }

    @Override
    public int hashCode() {
        int h = listener.hashCode();
        h = 31 * h + user.hashCode();
        h = 31 * h + database.hashCode();
        h = 31 * h + application.hashCode();
        return 31 * h + address.hashCode();
    }

    /** How messages and logs name the client: {@code user=app database=orders application=web}. */
    public String describe(List<IdentityField> fields) {
        StringBuilder out = new StringBuilder();
        for (IdentityField field : fields) {
            if (out.length() > 0) {
                out.append(' ');
            }
            out.append(field.key()).append('=').append(switch (field) {
                case USER -> user;
                case DATABASE -> database;
                case APPLICATION -> application;
                case ADDRESS -> address;
            });
        }
        return out.toString();
    }
}
