package io.connguard.core.admission;

import io.connguard.core.api.ClientIdentity;
import io.connguard.core.config.ClientsConfig.IdentityField;

import java.util.List;

/**
 * A client as caps and metrics see it: the listener plus the identity fields that
 * {@code clients.identity} names; the other fields are empty.
 */
public record ClientKey(String listener, String user, String database, String application, String address) {

    public static ClientKey of(String listener, ClientIdentity identity, String address, List<IdentityField> fields) {
        return new ClientKey(listener,
                fields.contains(IdentityField.USER) ? identity.user() : "",
                fields.contains(IdentityField.DATABASE) ? identity.database() : "",
                fields.contains(IdentityField.APPLICATION) ? identity.application() : "",
                fields.contains(IdentityField.ADDRESS) ? address : "");
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
