package io.connguard.core.config;

/**
 * The admin HTTP endpoint.
 *
 * @param token bearer token for mutating calls; empty when none is set
 */
public record AdminConfig(HostPort listen, String token) {

    public boolean hasToken() {
        return !token.isEmpty();
    }
}
