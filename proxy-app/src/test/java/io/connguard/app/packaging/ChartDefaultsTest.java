package io.connguard.app.packaging;

import com.marcnuri.helm.LintResult;
import io.connguard.core.config.ProxyConfig;
import io.fabric8.kubernetes.api.model.ConfigMap;
import io.fabric8.kubernetes.api.model.Container;
import io.fabric8.kubernetes.api.model.PodSpec;
import io.fabric8.kubernetes.api.model.Probe;
import io.fabric8.kubernetes.api.model.Quantity;
import io.fabric8.kubernetes.api.model.Secret;
import io.fabric8.kubernetes.api.model.SecurityContext;
import io.fabric8.kubernetes.api.model.Volume;
import io.fabric8.kubernetes.api.model.VolumeMount;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.HexFormat;

import static org.assertj.core.api.Assertions.assertThat;

/** The chart with its default values: what `helm install connguard` gives a user who sets nothing else. */
class ChartDefaultsTest {

    private static Rendered rendered;

    @BeforeAll
    static void render() {
        rendered = HelmChart.render("");
    }

    @Test
    void lintsCleanInStrictMode() {
        LintResult lint = HelmChart.lint();
        assertThat(lint.isFailed()).as("%s", lint.getMessages()).isFalse();
        assertThat(lint.getMessages()).noneMatch(m -> m.contains("[ERROR]") || m.contains("[WARNING]"));
    }

    /**
     * helm-java lints for Kubernetes 1.20, where the default native sidecar refuses to render, so lint
     * would stop at that message; a copy with legacy-mode defaults lets lint check the templates too.
     */
    @Test
    void lintsTheTemplatesCleanInLegacyModeOnHelmJavasDefaultKubernetes(@TempDir Path dir) throws Exception {
        Path chart = dir.resolve("connguard");
        HelmChart.copy(HelmChart.dir(), chart);
        Path values = chart.resolve("values.yaml");
        String text = Files.readString(values);
        String legacy = text.replace("\n  native: true\n", "\n  native: false\n")
                .replace("\n  preStopSleepSeconds: 5\n", "\n  preStopSleepSeconds: 0\n");
        assertThat(legacy).as("values.yaml still has the two defaults this test turns around")
                .contains("native: false", "preStopSleepSeconds: 0");
        Files.writeString(values, legacy);
        LintResult lint = HelmChart.lint(chart);
        assertThat(lint.isFailed()).as("%s", lint.getMessages()).isFalse();
        assertThat(lint.getMessages()).noneMatch(m -> m.contains("[ERROR]") || m.contains("[WARNING]") || m.contains("Fail"));
    }

    @Test
    void rendersConfigTokenSecretAndExampleDeploymentOnly() {
        assertThat(rendered.kinds()).containsExactlyInAnyOrder(
                "ConfigMap/orders-connguard", "Secret/orders-connguard-admin-token", "Deployment/orders");
    }

    @Test
    void sidecarIsANativeSidecarInInitContainers() {
        PodSpec pod = rendered.pod();
        assertThat(pod.getInitContainers()).extracting(Container::getName).containsExactly("connguard");
        assertThat(pod.getInitContainers().get(0).getRestartPolicy()).isEqualTo("Always");
        assertThat(pod.getContainers()).extracting(Container::getName).containsExactly("app");
        assertThat(rendered.sidecar().getImage()).isEqualTo("ghcr.io/connguard/connguard:0.1.0");
    }

    @Test
    void probesAskReadyzAtStartupAndHealthzForLivenessOnTheAdminPort() {
        Container sidecar = rendered.sidecar();
        assertThat(sidecar.getPorts()).singleElement().satisfies(port -> {
            assertThat(port.getName()).isEqualTo("connguard-admin");
            assertThat(port.getContainerPort()).isEqualTo(9633);
        });
        assertHttpGet(sidecar.getStartupProbe(), "/readyz", 9633);
        assertHttpGet(sidecar.getLivenessProbe(), "/healthz", 9633);
        assertThat(sidecar.getReadinessProbe()).as("no readiness gate unless asked").isNull();
        assertThat(sidecar.getLifecycle()).as("no preStop in native mode").isNull();
    }

    static void assertHttpGet(Probe probe, String path, int port) {
        assertThat(probe).isNotNull();
        assertThat(probe.getHttpGet().getPath()).isEqualTo(path);
        assertThat(probe.getHttpGet().getPort().getIntVal()).isEqualTo(port);
    }

    @Test
    void sidecarRunsLockedDown() {
        SecurityContext security = rendered.sidecar().getSecurityContext();
        assertThat(security.getRunAsNonRoot()).isTrue();
        assertThat(security.getRunAsUser()).isEqualTo(65532L);
        assertThat(security.getReadOnlyRootFilesystem()).isTrue();
        assertThat(security.getAllowPrivilegeEscalation()).isFalse();
        assertThat(security.getCapabilities().getDrop()).containsExactly("ALL");
        assertThat(security.getCapabilities().getAdd()).isEmpty();
        assertThat(security.getSeccompProfile().getType()).isEqualTo("RuntimeDefault");
        assertThat(rendered.sidecar().getResources().getRequests()).containsKeys("cpu", "memory");
        assertThat(rendered.sidecar().getResources().getLimits()).containsEntry("memory", new Quantity("256Mi"));
        assertThat(rendered.sidecar().getResources().getRequests()).containsEntry("memory", new Quantity("160Mi"));
    }

    @Test
    void theApplicationGetsNoneOfConnguardsSecurityContext() {
        Container app = rendered.pod().getContainers().get(0);
        assertThat(app.getName()).isEqualTo("app");
        assertThat(app.getSecurityContext()).as("the application's security context is the user's to set").isNull();
        assertThat(rendered.pod().getSecurityContext())
                .as("a pod-level context would apply to the application too")
                .satisfiesAnyOf(pod -> assertThat(pod).isNull(), pod -> assertThat(pod.getRunAsNonRoot()).isNull());
    }

    @Test
    void terminationGracePeriodCoversTheDrain() throws Exception {
        ProxyConfig config = rendered.loadConfig();
        Duration drain = config.shutdown().minDrainDelay().plus(config.shutdown().drainTimeout());
        long grace = rendered.pod().getTerminationGracePeriodSeconds();
        assertThat(grace).isGreaterThan(drain.toSeconds()).isEqualTo(25 + 10);
    }

    @Test
    void configurationIsMountedAsADirectoryWithAWritableTmp() {
        Container sidecar = rendered.sidecar();
        assertThat(sidecar.getEnv()).anySatisfy(env -> {
            assertThat(env.getName()).isEqualTo("CONNGUARD_CONFIG");
            assertThat(env.getValue()).isEqualTo("/etc/connguard/connguard.yaml");
        });
        assertThat(sidecar.getVolumeMounts()).extracting(VolumeMount::getMountPath, VolumeMount::getSubPath)
                .contains(org.assertj.core.groups.Tuple.tuple("/etc/connguard", null),
                        org.assertj.core.groups.Tuple.tuple("/tmp", null));
        assertThat(rendered.pod().getVolumes()).anySatisfy(v -> {
            assertThat(v.getName()).isEqualTo("connguard-config");
            assertThat(v.getConfigMap().getName()).isEqualTo("orders-connguard");
        });
        Volume tmp = rendered.pod().getVolumes().stream().filter(v -> v.getName().equals("connguard-tmp")).findFirst().orElseThrow();
        assertThat(tmp.getEmptyDir().getMedium()).isEqualTo("Memory");
    }

    @Test
    void renderedConfigurationPassesConnguardsOwnLoader() throws Exception {
        ProxyConfig config = rendered.loadConfig();
        assertThat(config.listeners()).singleElement().satisfies(l -> {
            assertThat(l.name()).isEqualTo("app-pg");
            assertThat(l.protocol()).isEqualTo("postgres");
            assertThat(l.listen().port()).isEqualTo(6432);
        });
        assertThat(config.admin().listen().port()).isEqualTo(9633);
        assertThat(config.clients().defaults().maxConnections()).isEqualTo(20);
    }

    @Test
    void adminTokenComesFromTheGeneratedSecret() throws Exception {
        Secret secret = rendered.one(Secret.class);
        assertThat(secret.getData()).containsOnlyKeys("token");
        assertThat(rendered.configYaml()).contains("token: ${CONNGUARD_ADMIN_TOKEN}");
        assertThat(rendered.sidecar().getEnv()).anySatisfy(env -> {
            assertThat(env.getName()).isEqualTo("CONNGUARD_ADMIN_TOKEN");
            assertThat(env.getValueFrom().getSecretKeyRef().getName()).isEqualTo("orders-connguard-admin-token");
            assertThat(env.getValueFrom().getSecretKeyRef().getKey()).isEqualTo("token");
        });
        assertThat(rendered.loadConfig().admin().token()).hasSize(40);
    }

    @Test
    void podAnnotationIsTheChecksumOfTheRenderedConfiguration() throws Exception {
        String config = rendered.configYaml();
        String sha = HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256")
                .digest(config.stripTrailing().getBytes(StandardCharsets.UTF_8)));
        assertThat(rendered.deployment().getSpec().getTemplate().getMetadata().getAnnotations())
                .containsEntry("checksum/connguard-config", sha);
    }

    @Test
    void podCarriesTheLabelThePodMonitorSelects() {
        assertThat(rendered.deployment().getSpec().getTemplate().getMetadata().getLabels())
                .containsEntry("connguard.io/instance", "orders-connguard")
                .containsAllEntriesOf(rendered.deployment().getSpec().getSelector().getMatchLabels());
    }

    @Test
    void notesTellTheJdbcUrl() {
        assertThat(HelmChart.notes(""))
                .contains("jdbc:postgresql://localhost:6432/<database>?ApplicationName=<application>&assumeMinServerVersion=9.0")
                .contains("orders-connguard-admin-token");
    }

    @Test
    void noMonitoringObjectsByDefault() {
        assertThat(rendered.all(ConfigMap.class)).hasSize(1);
        assertThat(rendered.kinds()).noneMatch(k -> k.startsWith("PodMonitor") || k.startsWith("PrometheusRule"));
    }
}
