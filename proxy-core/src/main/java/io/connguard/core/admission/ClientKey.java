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
