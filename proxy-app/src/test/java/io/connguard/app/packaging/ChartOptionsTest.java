package io.connguard.app.packaging;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.dataformat.yaml.YAMLMapper;
import io.connguard.core.config.ProxyConfig;
import io.fabric8.kubernetes.api.model.ConfigMap;
import io.fabric8.kubernetes.api.model.Container;
import io.fabric8.kubernetes.api.model.EnvVar;
import io.fabric8.kubernetes.api.model.Secret;
import io.fabric8.kubernetes.api.model.apps.Deployment;
import io.fabric8.openshift.api.model.monitoring.v1.PodMonitor;
import io.fabric8.openshift.api.model.monitoring.v1.PrometheusRule;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;

/** Every documented chart option, one at a time, against what it must change in the manifests. */
class ChartOptionsTest {

    private static final ObjectMapper YAML = new YAMLMapper();

    @Test
    void legacyModePutsTheSidecarIntoContainersWithAPreStopSleep() throws Exception {
        Rendered r = HelmChart.render("sidecar: { native: false }");
        assertThat(r.pod().getInitContainers()).isEmpty();
        assertThat(r.pod().getContainers()).extracting(Container::getName).containsExactly("app", "connguard");
        Container sidecar = r.sidecar();
        assertThat(sidecar.getRestartPolicy()).isNull();
        assertThat(sidecar.getLifecycle().getPreStop().getSleep().getSeconds()).isEqualTo(5L);
        ChartDefaultsTest.assertHttpGet(sidecar.getStartupProbe(), "/readyz", 9633);
        // preStop sleep + minDrainDelay + drainTimeout, plus the application's allowance.
        assertThat(r.pod().getTerminationGracePeriodSeconds()).isEqualTo(5 + 0 + 25 + 10L);
        assertThat(r.loadConfig().listeners()).hasSize(1);
    }

    @Test
    void legacyModeWithoutPreStopSleep() {
        Rendered r = HelmChart.render("sidecar: { native: false, preStopSleepSeconds: 0 }");
        assertThat(r.sidecar().getLifecycle()).isNull();
        assertThat(r.pod().getTerminationGracePeriodSeconds()).isEqualTo(35L);
    }

    @Test
    void terminationBudgetFollowsTheDrainDurationsInAnyUnit() {
        Rendered r = HelmChart.render("""
                config: { shutdown: { minDrainDelay: 1500ms, drainTimeout: 1m } }
                terminationGraceExtraSeconds: 3
                """);
        assertThat(r.pod().getTerminationGracePeriodSeconds()).isEqualTo(2 + 60 + 3L);
    }

    @Test
    void anExplicitGracePeriodMustExceedTheDrain() {
        assertThat(HelmChart.renderError("terminationGracePeriodSeconds: 25"))
                .contains("terminationGracePeriodSeconds (25) must be larger than")
                .contains("= 25s");
        assertThat(HelmChart.renderError("""
                terminationGracePeriodSeconds: 30
                sidecar: { native: false }
                """)).contains("+ preStopSleepSeconds = 30s");
        assertThat(HelmChart.render("terminationGracePeriodSeconds: 26").pod().getTerminationGracePeriodSeconds())
                .isEqualTo(26L);
    }

    /**
     * sidecar.jvmOptions: the image's java command with the user's flags after the image's own (the JVM takes a
     * flag's last value: they win), the image's flags equal to the Dockerfile's ENTRYPOINT; without them the
     * container keeps the image's ENTRYPOINT.
     */
    @Test
    void jvmOptionsComeAfterTheImagesFlags() throws Exception {
        Container sidecar = HelmChart.render(
                "sidecar: { jvmOptions: \" -XX:MaxRAMPercentage=40  -Dio.netty.leakDetection.level=simple\" }").sidecar();
        List<String> entrypoint = DockerfileLintTest.entrypoint();
        int jar = entrypoint.indexOf("-jar");
        List<String> expected = new ArrayList<>(entrypoint.subList(0, jar));
        expected.addAll(List.of("-XX:MaxRAMPercentage=40", "-Dio.netty.leakDetection.level=simple"));
        expected.addAll(entrypoint.subList(jar, entrypoint.size()));
        assertThat(sidecar.getCommand()).containsExactlyElementsOf(expected);
        assertThat(HelmChart.render("").sidecar().getCommand()).as("the image's ENTRYPOINT").isNullOrEmpty();
    }

    @Test
    void readinessProbeOnlyWhenAsked() {
        Container sidecar = HelmChart.render("sidecar: { probes: { readiness: { enabled: true } } }").sidecar();
        ChartDefaultsTest.assertHttpGet(sidecar.getReadinessProbe(), "/readyz", 9633);
        assertThat(sidecar.getReadinessProbe().getFailureThreshold()).isEqualTo(1);
    }

    @Test
    void probesFollowTheAdminPort() {
        Container sidecar = HelmChart.render("config: { admin: { listen: \"0.0.0.0:9700\" } }").sidecar();
        ChartDefaultsTest.assertHttpGet(sidecar.getStartupProbe(), "/readyz", 9700);
        ChartDefaultsTest.assertHttpGet(sidecar.getLivenessProbe(), "/healthz", 9700);
        assertThat(sidecar.getPorts().get(0).getContainerPort()).isEqualTo(9700);
    }

    @Test
    void loopbackAdminNeedsNoTokenButCannotBeProbed() throws Exception {
        assertThat(HelmChart.renderError("config: { admin: { listen: \"127.0.0.1:9633\" } }"))
                .contains("loopback address, which kubelet probes cannot reach");
        Rendered r = HelmChart.render("""
                config: { admin: { listen: "127.0.0.1:9633" } }
                sidecar: { probes: { enabled: false } }
                """);
        assertThat(r.all(Secret.class)).isEmpty();
        assertThat(r.sidecar().getStartupProbe()).isNull();
        assertThat(r.sidecar().getLivenessProbe()).isNull();
        assertThat(r.sidecar().getEnv()).extracting(EnvVar::getName).containsExactly("CONNGUARD_CONFIG");
        assertThat(r.configYaml()).doesNotContain("token");
        assertThat(r.loadConfig().admin().token()).isEmpty();
    }

    @Test
    void existingSecretSuppliesTheToken() throws Exception {
        Rendered r = HelmChart.render("adminToken: { existingSecret: shop-admin, existingSecretKey: connguard }");
        assertThat(r.all(Secret.class)).isEmpty();
        EnvVar token = r.sidecar().getEnv().stream().filter(e -> e.getName().equals("CONNGUARD_ADMIN_TOKEN"))
                .findFirst().orElseThrow();
        assertThat(token.getValueFrom().getSecretKeyRef().getName()).isEqualTo("shop-admin");
        assertThat(token.getValueFrom().getSecretKeyRef().getKey()).isEqualTo("connguard");
        assertThat(r.loadConfig().admin().token()).isEqualTo(Rendered.EXISTING_SECRET_VALUE);
    }

    @Test
    void podMonitorScrapesTheAdminPortOfThePodsWithTheSidecar() {
        Rendered r = HelmChart.render("metrics: { podMonitor: { enabled: true, interval: 15s, labels: { release: prom } } }");
        PodMonitor monitor = r.one(PodMonitor.class);
        assertThat(monitor.getMetadata().getLabels()).containsEntry("release", "prom");
        assertThat(r.deployment().getSpec().getTemplate().getMetadata().getLabels())
                .containsAllEntriesOf(monitor.getSpec().getSelector().getMatchLabels());
        var endpoint = monitor.getSpec().getPodMetricsEndpoints().get(0);
        assertThat(endpoint.getPort()).isEqualTo(r.sidecar().getPorts().get(0).getName());
        assertThat(endpoint.getPath()).isEqualTo("/metrics");
        assertThat(endpoint.getInterval()).isEqualTo("15s");
        assertThat(endpoint.getRelabelings()).anySatisfy(relabel -> {
            assertThat(relabel.getTargetLabel()).isEqualTo("job");
            assertThat(relabel.getReplacement()).isEqualTo("connguard");
        });
    }

    @Test
    void prometheusRuleCarriesTheAlertFile() throws Exception {
        Rendered r = HelmChart.render("metrics: { prometheusRule: { enabled: true, labels: { release: prom } } }");
        PrometheusRule rule = r.one(PrometheusRule.class);
        assertThat(rule.getMetadata().getLabels()).containsEntry("release", "prom");
        JsonNode file = YAML.readTree(HelmChart.read("files/alerts.yaml"));
        assertThat(YAML.valueToTree(rule.getSpec()).get("groups")).isEqualTo(file.get("groups"));
    }

    @Test
    void dashboardConfigMapIsLabelledForGrafana() throws Exception {
        Rendered r = HelmChart.render("metrics: { dashboard: { enabled: true, labels: { team: db }, annotations: { grafana_folder: Databases } } }");
        ConfigMap dashboard = r.named(ConfigMap.class, "orders-connguard-dashboard").orElseThrow();
        assertThat(dashboard.getMetadata().getLabels()).containsEntry("grafana_dashboard", "1").containsEntry("team", "db");
        assertThat(dashboard.getMetadata().getAnnotations()).containsEntry("grafana_folder", "Databases");
        ObjectMapper json = new ObjectMapper();
        assertThat(json.readTree(dashboard.getData().get("connguard.json")))
                .isEqualTo(json.readTree(HelmChart.read("files/dashboard.json")));
    }

    @Test
    void withoutTheExampleOnlyConfigurationAndTokenRender() {
        Rendered r = HelmChart.render("app: { enabled: false }");
        assertThat(r.kinds()).containsExactlyInAnyOrder("ConfigMap/orders-connguard", "Secret/orders-connguard-admin-token");
    }

    @Test
    void configChangesRollThePodsUnlessLiveReloadIsChosen() {
        String before = checksum(HelmChart.render(""));
        String after = checksum(HelmChart.render("config: { clients: { defaults: { maxConnections: 7 } } }"));
        assertThat(after).isNotNull().isNotEqualTo(before);
        assertThat(HelmChart.render("rollOnConfigChange: false").deployment().getSpec().getTemplate().getMetadata()
                .getAnnotations()).doesNotContainKey("checksum/connguard-config");
    }

    private static String checksum(Rendered r) {
        return r.deployment().getSpec().getTemplate().getMetadata().getAnnotations().get("checksum/connguard-config");
    }

    @Test
    void sidecarExtrasReachTheContainer(@TempDir Path dir) throws Exception {
        Path ca = Files.writeString(dir.resolve("ca.pem"), "not checked here");
        Rendered r = HelmChart.render("""
                config:
                  listeners:
                    - name: orders-pg
                      protocol: postgres
                      listen: "127.0.0.1:6432"
                      upstream: "orders-db.internal:5432"
                      upstreamTls: { mode: verify-full, caFile: "%s" }
                sidecar:
                  jvmOptions: "-XX:MaxRAMPercentage=60"
                  env: [ { name: REGION, value: eu } ]
                  extraVolumeMounts: [ { name: db-ca, mountPath: /etc/connguard-ca, readOnly: true } ]
                  tmpSizeLimit: 8Mi
                extraVolumes: [ { name: db-ca, secret: { secretName: orders-db-ca } } ]
                """.formatted(ca));
        assertThat(r.sidecar().getCommand()).contains("-XX:MaxRAMPercentage=60");
        assertThat(r.sidecarEnvironment()).containsEntry("REGION", "eu").doesNotContainKey("JDK_JAVA_OPTIONS");
        assertThat(r.sidecar().getVolumeMounts()).anySatisfy(m -> assertThat(m.getMountPath()).isEqualTo("/etc/connguard-ca"));
        assertThat(r.pod().getVolumes()).filteredOn(v -> v.getSecret() != null)
                .singleElement().satisfies(v -> assertThat(v.getSecret().getSecretName()).isEqualTo("orders-db-ca"));
        assertThat(r.pod().getVolumes()).filteredOn(v -> v.getEmptyDir() != null)
                .singleElement().satisfies(v -> assertThat(v.getEmptyDir().getSizeLimit().toString()).isEqualTo("8Mi"));
        ProxyConfig config = r.loadConfig();
        assertThat(config.listeners().get(0).upstreamTls().caFile()).isEqualTo(ca);
    }

    @Test
    void aClientTlsSecretIsMountedAsADirectoryAndNamedByTheListenersThatOfferTls() throws Exception {
        Rendered r = HelmChart.render("""
                clientTls: { existingSecret: orders-pg-tls }
                config:
                  listeners:
                    - { name: tls-pg, protocol: postgres, listen: "127.0.0.1:6432", upstream: "db:5432", clientTls: { mode: require } }
                    - { name: own-pg, protocol: postgres, listen: "127.0.0.1:6433", upstream: "db:5432",
                        clientTls: { mode: allow, certFile: /etc/own/tls.crt, keyFile: /etc/own/tls.key } }
                    - { name: plain-pg, protocol: postgres, listen: "127.0.0.1:6434", upstream: "db:5432" }
                """);
        assertThat(r.sidecar().getVolumeMounts()).filteredOn(m -> m.getName().equals("connguard-client-tls"))
                .singleElement().satisfies(m -> {
                    assertThat(m.getMountPath()).isEqualTo("/etc/connguard-tls");
                    assertThat(m.getSubPath()).as("a directory mount, so renewals arrive").isNull();
                    assertThat(m.getReadOnly()).isTrue();
                });
        assertThat(r.pod().getVolumes()).filteredOn(v -> v.getName().equals("connguard-client-tls"))
                .singleElement().satisfies(v -> assertThat(v.getSecret().getSecretName()).isEqualTo("orders-pg-tls"));
        JsonNode listeners = YAML.readTree(r.configYaml()).get("listeners");
        assertThat(listeners.get(0).get("clientTls").get("certFile").asText()).isEqualTo("/etc/connguard-tls/tls.crt");
        assertThat(listeners.get(0).get("clientTls").get("keyFile").asText()).isEqualTo("/etc/connguard-tls/tls.key");
        assertThat(listeners.get(1).get("clientTls").get("certFile").asText()).as("its own files stay")
                .isEqualTo("/etc/own/tls.crt");
        assertThat(listeners.get(2).has("clientTls")).isFalse();
    }

    @Test
    void withoutAClientTlsSecretNothingIsMountedAndTheCertificateIsSelfSigned() throws Exception {
        Rendered r = HelmChart.render("""
                config:
                  listeners:
                    - { name: tls-pg, protocol: postgres, listen: "127.0.0.1:6432", upstream: "db:5432", clientTls: { mode: allow } }
                """);
        assertThat(r.sidecar().getVolumeMounts()).noneMatch(m -> m.getName().equals("connguard-client-tls"));
        assertThat(r.pod().getVolumes()).noneMatch(v -> v.getName().equals("connguard-client-tls"));
        ProxyConfig config = r.loadConfig();
        assertThat(config.listeners().get(0).clientTls().mode().enabled()).isTrue();
        assertThat(config.listeners().get(0).clientTls().fromFiles()).isFalse();
    }

    @Test
    void imageByTagOrDigestAndTheExampleApplication() {
        String digest = "sha256:" + "a".repeat(64);
        Rendered r = HelmChart.render("""
                image: { repository: registry.local/connguard, digest: "%s", pullPolicy: Always }
                imagePullSecrets: [ regcred ]
                app:
                  name: orders-api
                  replicas: 3
                  image: { repository: registry.local/orders, tag: "2.4.1" }
                  args: [ "--port=8080" ]
                  ports: [ { name: http, containerPort: 8080 } ]
                  podAnnotations: { team: orders }
                  podLabels: { tier: backend }
                  serviceAccountName: orders
                  nodeSelector: { disk: ssd }
                """.formatted(digest));
        assertThat(r.sidecar().getImage()).isEqualTo("registry.local/connguard@" + digest);
        assertThat(r.sidecar().getImagePullPolicy()).isEqualTo("Always");
        Deployment deployment = r.deployment();
        assertThat(deployment.getMetadata().getName()).isEqualTo("orders-api");
        assertThat(deployment.getSpec().getReplicas()).isEqualTo(3);
        var pod = r.pod();
        assertThat(pod.getContainers().get(0).getImage()).isEqualTo("registry.local/orders:2.4.1");
        assertThat(pod.getContainers().get(0).getArgs()).containsExactly("--port=8080");
        assertThat(pod.getImagePullSecrets().get(0).getName()).isEqualTo("regcred");
        assertThat(pod.getServiceAccountName()).isEqualTo("orders");
        assertThat(pod.getNodeSelector()).isEqualTo(Map.of("disk", "ssd"));
        assertThat(deployment.getSpec().getTemplate().getMetadata().getAnnotations()).containsEntry("team", "orders");
        assertThat(deployment.getSpec().getTemplate().getMetadata().getLabels()).containsEntry("tier", "backend");
        assertThat(HelmChart.render("image: { tag: \"0.2.0\" }").sidecar().getImage())
                .isEqualTo("ghcr.io/connguard/connguard:0.2.0");
    }

    @Test
    void theApplicationsSecurityContextIsTheOneGivenAndConnguardsStaysItsOwn() {
        Rendered r = HelmChart.render("""
                app:
                  securityContext: { runAsUser: 0, readOnlyRootFilesystem: false }
                podSecurityContext: { fsGroup: 2000 }
                """);
        Container app = r.pod().getContainers().get(0);
        assertThat(app.getSecurityContext().getRunAsUser()).isZero();
        assertThat(app.getSecurityContext().getReadOnlyRootFilesystem()).isFalse();
        assertThat(app.getSecurityContext().getRunAsNonRoot()).isNull();
        assertThat(r.pod().getSecurityContext().getFsGroup()).isEqualTo(2000L);
        assertThat(r.pod().getSecurityContext().getRunAsNonRoot()).isNull();
        assertThat(r.sidecar().getSecurityContext().getRunAsNonRoot()).isTrue();
        assertThat(r.sidecar().getSecurityContext().getRunAsUser()).isEqualTo(65532L);
        assertThat(r.sidecar().getSecurityContext().getReadOnlyRootFilesystem()).isTrue();
    }

    @Test
    void namesCanBeOverridden() {
        Rendered r = HelmChart.render("fullnameOverride: guard");
        assertThat(r.kinds()).contains("ConfigMap/guard", "Secret/guard-admin-token");
        assertThat(r.pod().getVolumes().get(0).getConfigMap().getName()).isEqualTo("guard");
        assertThat(HelmChart.render("nameOverride: dbguard").kinds()).contains("ConfigMap/orders-dbguard");
    }

    @Test
    void notesListEveryListenersJdbcUrl() {
        String notes = HelmChart.notes("""
                config:
                  listeners:
                    - { name: orders-pg, protocol: postgres, listen: "127.0.0.1:6432", upstream: "pg:5432" }
                    - { name: orders-my, protocol: mysql, listen: "127.0.0.1:6033", upstream: "mysql:3306" }
                app: { image: { repository: registry.local/orders } }
                """);
        assertThat(notes)
                .contains("jdbc:postgresql://localhost:6432/<database>?ApplicationName=<application>&assumeMinServerVersion=9.0")
                .contains("jdbc:mysql://localhost:6033/<database>?connectionAttributes=program_name:<application>")
                .doesNotContain("placeholder");
    }
}
