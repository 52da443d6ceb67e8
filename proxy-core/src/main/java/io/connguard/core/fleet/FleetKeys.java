package io.connguard.core.fleet;

import io.connguard.core.admission.ClientKey;

import java.net.URLEncoder;
import java.nio.charset.StandardCharsets;

/**
 * The budget key of a client in the store: the client key's fields, each percent-encoded, joined by
 * {@code /} ({@code orders-pg/app/orders/web/}). Replicas that share a configuration derive the same key.
 */
final class FleetKeys {

    private FleetKeys() {
    }

    static String of(ClientKey key) {
        return encode(key.listener()) + '/' + encode(key.user()) + '/' + encode(key.database()) + '/'
                + encode(key.application()) + '/' + encode(key.address());
    }

    private static String encode(String field) {
        return URLEncoder.encode(field, StandardCharsets.UTF_8);
    }
}
