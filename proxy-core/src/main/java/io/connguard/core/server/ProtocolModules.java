package io.connguard.core.server;

import io.connguard.core.api.ProtocolModule;

import io.connguard.core.config.ConfigLoader;

import java.util.Map;
import java.util.Set;
import java.util.function.Function;
import java.util.ServiceLoader;
import java.util.TreeMap;

/** Finds the installed protocol modules through {@link ServiceLoader}; a new instance set per call. */
public final class ProtocolModules {

    private ProtocolModules() {
    }

    public static Map<String, ProtocolModule> load() {
        return load(ProtocolModules.class.getClassLoader());
    }

    /** A configuration loader that knows which of these modules can pool server connections. */
    public static ConfigLoader configLoader(Function<String, String> environment, Map<String, ProtocolModule> modules) {
        Map<String, Set<String>> pooling = new TreeMap<>();
        modules.forEach((id, module) -> pooling.put(id, Set.copyOf(module.poolModes())));
        return new ConfigLoader(environment, modules.keySet(), pooling);
    }

    public static Map<String, ProtocolModule> load(ClassLoader loader) {
        Map<String, ProtocolModule> modules = new TreeMap<>();
        for (ProtocolModule module : ServiceLoader.load(ProtocolModule.class, loader)) {
            ProtocolModule previous = modules.putIfAbsent(module.id(), module);
            if (previous != null) {
                throw new IllegalStateException("two protocol modules claim id '" + module.id() + "': "
                        + previous.getClass().getName() + " and " + module.getClass().getName());
            }
        }
        return modules;
    }
}
