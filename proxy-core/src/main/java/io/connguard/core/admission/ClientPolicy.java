package io.connguard.core.admission;

import io.connguard.core.api.ClientIdentity;
import io.connguard.core.config.ClientsConfig;
import io.connguard.core.config.ClientsConfig.IdentityField;
import io.connguard.core.config.Limits;
import io.connguard.core.config.Rule;

import java.util.List;

/** Resolves a client's key and the limits in force for it from {@code clients}: first matching rule wins. */
public record ClientPolicy(ClientsConfig config) {

    public ClientKey key(String listener, ClientIdentity identity, String address) {
        return ClientKey.of(listener, identity, address, config.identity());
    }

    public Limits limits(String listener, ClientIdentity identity, String address) {
        for (Rule rule : config.rules()) {
            if (rule.match().matches(listener, identity.user(), identity.database(), identity.application(), address)) {
                return rule.applyTo(config.defaults());
            }
        }
        return config.defaults();
    }

    /** Whether a client's address is part of its key or of a rule's match (else it need not be known). */
    public boolean usesAddress() {
        if (config.identity().contains(IdentityField.ADDRESS)) {
            return true;
        }
        for (Rule rule : config.rules()) {
            if (rule.match().address() != null) {
                return true;
            }
        }
        return false;
    }

    public List<IdentityField> identity() {
        return config.identity();
    }

    /** Whether a client key is a user alone (MySQL then reports a cap as 1226 rather than 1040). */
    public boolean perUser() {
        return config.identity().equals(List.of(IdentityField.USER));
    }
}
