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
