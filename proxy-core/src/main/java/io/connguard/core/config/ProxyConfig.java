package io.connguard.core.config;

import java.util.List;
import java.util.Optional;

/** The whole validated configuration; immutable. Built only by {@link ConfigLoader}. */
public record ProxyConfig(AdminConfig admin, List<ListenerConfig> listeners, ClientsConfig clients,
                          ShutdownConfig shutdown, LoggingConfig logging) {

    public ProxyConfig {
        listeners = List.copyOf(listeners);
    }

    public Optional<ListenerConfig> listener(String name) {
        return listeners.stream().filter(l -> l.name().equals(name)).findFirst();
    }
}
