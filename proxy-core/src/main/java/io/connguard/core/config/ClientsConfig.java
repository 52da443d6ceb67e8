package io.connguard.core.config;

import java.util.List;

/**
 * How clients are told apart and which limits apply to them.
 *
 * @param identity          the fields that make a client key
 * @param maxTrackedClients distinct client keys kept as metric series; the rest are "_other"
 * @param defaults          the limits when no rule matches
 * @param rules             first match wins; each overrides some of the defaults
 */
public record ClientsConfig(List<IdentityField> identity, int maxTrackedClients, Limits defaults, List<Rule> rules) {

    public ClientsConfig {
        identity = List.copyOf(identity);
        rules = List.copyOf(rules);
    }

    /** The fields a client key can be made of. */
    public enum IdentityField {
        USER, DATABASE, APPLICATION, ADDRESS;

        public String key() {
            return name().toLowerCase(java.util.Locale.ROOT);
        }
    }
}
