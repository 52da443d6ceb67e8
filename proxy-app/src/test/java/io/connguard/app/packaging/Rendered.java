package io.connguard.app.packaging;

import io.connguard.core.config.ConfigException;
import io.connguard.core.config.ConfigLoader;
import io.connguard.core.config.ProxyConfig;
import io.fabric8.kubernetes.api.model.ConfigMap;
import io.fabric8.kubernetes.api.model.Container;
import io.fabric8.kubernetes.api.model.EnvVar;
import io.fabric8.kubernetes.api.model.HasMetadata;
import io.fabric8.kubernetes.api.model.PodSpec;
import io.fabric8.kubernetes.api.model.Secret;
import io.fabric8.kubernetes.api.model.SecretKeySelector;
import io.fabric8.kubernetes.api.model.apps.Deployment;

import java.nio.charset.StandardCharsets;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.stream.Stream;

/** What one {@code helm template} produced, as typed objects, with the look-ups the chart tests need. */
record Rendered(List<HasMetadata> objects) {

    /** The value a Secret that the chart does not create (adminToken.existingSecret) stands for. */
    static final String EXISTING_SECRET_VALUE = "token-from-an-existing-secret";

    /** "Kind/name" of every object, in rendering order. */
    List<String> kinds() {
        return objects.stream().map(o -> o.getKind() + "/" + o.getMetadata().getName()).toList();
    }

    <T extends HasMetadata> List<T> all(Class<T> type) {
        return objects.stream().filter(type::isInstance).map(type::cast).toList();
    }

    <T extends HasMetadata> Optional<T> named(Class<T> type, String name) {
        return all(type).stream().filter(o -> o.getMetadata().getName().equals(name)).findFirst();
    }

    <T extends HasMetadata> T one(Class<T> type) {
        List<T> found = all(type);
        if (found.size() != 1) {
            throw new AssertionError("expected one " + type.getSimpleName() + ", rendered: " + kinds());
        }
        return found.get(0);
    }

    Deployment deployment() {
        return one(Deployment.class);
    }

    PodSpec pod() {
        return deployment().getSpec().getTemplate().getSpec();
    }

    /** The connguard container, wherever it is (initContainers in native mode, containers in legacy mode). */
    static Container sidecar(PodSpec pod) {
        List<Container> init = pod.getInitContainers() == null ? List.of() : pod.getInitContainers();
        return Stream.concat(init.stream(), pod.getContainers().stream())
                .filter(c -> c.getName().equals("connguard"))
                .findFirst().orElseThrow(() -> new AssertionError("no connguard container in the pod"));
    }

    Container sidecar() {
        return sidecar(pod());
    }

    /** The connguard configuration file as rendered into its ConfigMap. */
    String configYaml(String configMapName) {
        ConfigMap map = named(ConfigMap.class, configMapName)
                .orElseThrow(() -> new AssertionError("no ConfigMap " + configMapName + " in " + kinds()));
        return map.getData().get("connguard.yaml");
    }

    String configYaml() {
        return configYaml(HelmChart.RELEASE + "-connguard");
    }

    /** The sidecar's environment as the pod would see it, Secret references resolved. */
    static Map<String, String> environment(Container sidecar, List<Secret> secrets) {
        Map<String, String> env = new HashMap<>();
        for (EnvVar var : sidecar.getEnv()) {
            if (var.getValueFrom() == null) {
                env.put(var.getName(), var.getValue());
                continue;
            }
            SecretKeySelector ref = var.getValueFrom().getSecretKeyRef();
            String value = secrets.stream()
                    .filter(s -> s.getMetadata().getName().equals(ref.getName()))
                    .map(s -> new String(Base64.getDecoder().decode(s.getData().get(ref.getKey())), StandardCharsets.UTF_8))
                    .findFirst().orElse(EXISTING_SECRET_VALUE);
            env.put(var.getName(), value);
        }
        return env;
    }

    Map<String, String> sidecarEnvironment() {
        return environment(sidecar(), all(Secret.class));
    }

    /** Loads the rendered file with connguard's own loader and the sidecar's environment, as the proxy would. */
    static ProxyConfig load(String yaml, Map<String, String> env) throws ConfigException {
        return new ConfigLoader(env::get, Set.of("postgres", "mysql")).parse(yaml);
    }

    ProxyConfig loadConfig() throws ConfigException {
        return load(configYaml(), sidecarEnvironment());
    }
}
