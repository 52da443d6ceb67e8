package io.connguard.core.config;

import java.util.List;
import java.util.Optional;

/**
 * The whole validated configuration; immutable. Built only by {@link ConfigLoader}.
 *
 * @param ioThreads event loops serving sessions; 0 = one per processor the JVM sees (a container's CPU limit)
 */
public record ProxyConfig(AdminConfig admin, List<ListenerConfig> listeners, ClientsConfig clients,
                          ShutdownConfig shutdown, LoggingConfig logging, int ioThreads, FleetConfig fleet) {

    public ProxyConfig {
        listeners = List.copyOf(listeners);
    }

    /** A configuration without fleet budgets. */
    public ProxyConfig(AdminConfig admin, List<ListenerConfig> listeners, ClientsConfig clients,
                       ShutdownConfig shutdown, LoggingConfig logging, int ioThreads) {
        this(admin, listeners, clients, shutdown, logging, ioThreads, FleetConfig.OFF);
    }

    public Optional<ListenerConfig> listener(String name) {
        return listeners.stream().filter(l -> l.name().equals(name)).findFirst();
    }
}
