package io.connguard.app.packaging;

import io.fabric8.kubernetes.api.model.Container;
import io.fabric8.kubernetes.api.model.PodSpec;
import io.fabric8.kubernetes.api.model.Secret;
import io.fabric8.kubernetes.api.model.apps.Deployment;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Another chart depends on connguard and includes the sidecar into its own pod template with the named
 * templates, exactly as _sidecar.tpl and README.md tell it to.
 */
class ChartSubchartTest {

    private static final String PARENT_CHART = """
            apiVersion: v2
            name: shop
            version: 1.0.0
            dependencies:
              - name: connguard
                version: 0.1.0
                repository: file://../connguard
            """;

    private static final String PARENT_DEPLOYMENT = """
            apiVersion: apps/v1
            kind: Deployment
            metadata:
              name: {{ .Release.Name }}-shop
            spec:
              selector:
                matchLabels: { app: shop }
              template:
                metadata:
                  labels:
                    app: shop
                    {{- include "connguard.podLabels" .Subcharts.connguard | nindent 8 }}
                  annotations:
                    {{- include "connguard.podAnnotations" .Subcharts.connguard | nindent 8 }}
                spec:
                  terminationGracePeriodSeconds: {{ include "connguard.terminationGracePeriodSeconds" .Subcharts.connguard }}
                  initContainers:
                    {{- include "connguard.initContainers" .Subcharts.connguard | nindent 8 }}
                  containers:
                    - name: shop
                      image: registry.local/shop:1.0
                    {{- include "connguard.containers" .Subcharts.connguard | nindent 8 }}
                  volumes:
                    {{- include "connguard.volumes" .Subcharts.connguard | nindent 8 }}
            """;

    private static final String PARENT_VALUES = """
            connguard:
              app: { enabled: false }
              sidecar: { native: %s }
              config:
                shutdown: { drainTimeout: 40s }
            """;

    @Test
    void nativeSidecarInAnotherChartsPod(@TempDir Path dir) throws Exception {
        Rendered r = HelmChart.render(parent(dir), PARENT_VALUES.formatted(true));
        assertThat(r.kinds()).containsExactlyInAnyOrder("Deployment/orders-shop", "ConfigMap/orders-connguard",
                "Secret/orders-connguard-admin-token");
        Deployment deployment = r.deployment();
        PodSpec pod = deployment.getSpec().getTemplate().getSpec();
        assertThat(pod.getInitContainers()).extracting(Container::getName).containsExactly("connguard");
        assertThat(pod.getInitContainers().get(0).getRestartPolicy()).isEqualTo("Always");
        assertThat(pod.getContainers()).extracting(Container::getName).containsExactly("shop");
        assertThat(pod.getTerminationGracePeriodSeconds()).isEqualTo(40 + 10L);
        assertThat(pod.getVolumes().get(0).getConfigMap().getName()).isEqualTo("orders-connguard");
        assertThat(deployment.getSpec().getTemplate().getMetadata().getLabels())
                .containsEntry("connguard.io/instance", "orders-connguard");
        assertThat(deployment.getSpec().getTemplate().getMetadata().getAnnotations())
                .containsKey("checksum/connguard-config");
        var env = Rendered.environment(Rendered.sidecar(pod), r.all(Secret.class));
        assertThat(Rendered.load(r.configYaml(), env).shutdown().drainTimeout().toSeconds()).isEqualTo(40);
    }

    @Test
    void legacySidecarInAnotherChartsPod(@TempDir Path dir) throws Exception {
        Rendered r = HelmChart.render(parent(dir), PARENT_VALUES.formatted(false));
        PodSpec pod = r.deployment().getSpec().getTemplate().getSpec();
        assertThat(pod.getInitContainers()).isNullOrEmpty();
        assertThat(pod.getContainers()).extracting(Container::getName).containsExactly("shop", "connguard");
        assertThat(pod.getTerminationGracePeriodSeconds()).isEqualTo(5 + 40 + 10L);
    }

    @Test
    void legacySidecarInAnotherChartsPodOnAClusterOlderThanNativeSidecars(@TempDir Path dir) throws Exception {
        Path parent = parent(dir);
        assertThat(HelmChart.renderError(parent, PARENT_VALUES.formatted(true), "1.27.0"))
                .contains("sidecar.native=true needs Kubernetes 1.29 or newer");
        Rendered r = HelmChart.render(parent, """
                connguard:
                  app: { enabled: false }
                  sidecar: { native: false, preStopSleepSeconds: 0 }
                  config:
                    shutdown: { minDrainDelay: 5s, drainTimeout: 40s }
                """, "1.27.0");
        PodSpec pod = r.deployment().getSpec().getTemplate().getSpec();
        assertThat(pod.getContainers()).extracting(Container::getName).containsExactly("shop", "connguard");
        assertThat(Rendered.sidecar(pod).getLifecycle()).isNull();
        assertThat(pod.getTerminationGracePeriodSeconds()).isEqualTo(5 + 40 + 10L);
    }

    /** A parent chart with connguard copied into its charts/ directory, as `helm dependency build` leaves it. */
    private static Path parent(Path dir) throws IOException {
        Path parent = dir.resolve("shop");
        Files.createDirectories(parent.resolve("templates"));
        Files.writeString(parent.resolve("Chart.yaml"), PARENT_CHART);
        Files.writeString(parent.resolve("templates/deployment.yaml"), PARENT_DEPLOYMENT);
        HelmChart.copy(HelmChart.dir(), parent.resolve("charts/connguard"));
        return parent;
    }

}
