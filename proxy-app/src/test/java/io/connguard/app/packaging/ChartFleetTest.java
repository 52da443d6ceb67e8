package io.connguard.app.packaging;

import io.connguard.core.config.ProxyConfig;
import io.connguard.core.testing.TestCertificates;
import io.fabric8.kubernetes.api.model.EnvVar;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The chart's fleet options: the store address, the fleet name, the password and the CA from Secrets, and
 * their checks.
 */
class ChartFleetTest {

    @Test
    void fleetIsOffByDefault() throws Exception {
        Rendered r = HelmChart.render("");
        assertThat(r.configYaml()).doesNotContain("fleet:");
        assertThat(r.loadConfig().fleet().enabled()).isFalse();
        assertThat(r.sidecar().getEnv()).extracting(EnvVar::getName).doesNotContain("CONNGUARD_FLEET_PASSWORD");
    }

    @Test
    void aStoreWithAPasswordSecretRendersAConfigConnguardAccepts() throws Exception {
        Rendered r = HelmChart.render("""
                fleet:
                  store: rediss://app@redis.shop.svc:6380/1
                  leaseTtl: 9s
                  passwordSecret: { name: redis-auth, key: redis-password }
                config:
                  clients:
                    defaults: { fleetMaxConnections: 40 }
                    rules:
                      - match: { user: reporting }
                        fleetMaxConnections: 5
                """);
        EnvVar password = r.sidecar().getEnv().stream().filter(e -> e.getName().equals("CONNGUARD_FLEET_PASSWORD"))
                .findFirst().orElseThrow();
        assertThat(password.getValueFrom().getSecretKeyRef().getName()).isEqualTo("redis-auth");
        assertThat(password.getValueFrom().getSecretKeyRef().getKey()).isEqualTo("redis-password");
        assertThat(r.configYaml()).as("the password itself is never in the ConfigMap")
                .contains("password: ${CONNGUARD_FLEET_PASSWORD}");
        ProxyConfig config = r.loadConfig();
        assertThat(config.fleet().enabled()).isTrue();
        assertThat(config.fleet().store().getScheme()).isEqualTo("rediss");
        assertThat(config.fleet().name()).as("every pod of the release shares budgets")
                .isEqualTo(HelmChart.RELEASE + "-connguard");
        assertThat(config.fleet().leaseTtl()).hasSeconds(9);
        assertThat(config.fleet().password()).isEqualTo(Rendered.EXISTING_SECRET_VALUE);
        assertThat(config.clients().defaults().fleetMaxConnections()).isEqualTo(40);
        assertThat(config.clients().rules().get(0).fleetMaxConnections()).isEqualTo(5);
    }

    @Test
    void anExplicitFleetNameIsKept() throws Exception {
        Rendered r = HelmChart.render("fleet: { store: \"redis://redis:6379/0\", name: orders-db }");
        assertThat(r.loadConfig().fleet().name()).isEqualTo("orders-db");
        assertThat(r.sidecar().getEnv()).extracting(EnvVar::getName).doesNotContain("CONNGUARD_FLEET_PASSWORD");
    }

    @Test
    void aFleetCapWithoutAStoreFailsRenderingNamingBothKeys() {
        assertThat(HelmChart.renderError("config: { clients: { defaults: { fleetMaxConnections: 10 } } }"))
                .contains("config.clients.defaults.fleetMaxConnections needs fleet.store");
        assertThat(HelmChart.renderError("""
                config: { clients: { rules: [ { match: { user: a } }, { match: { user: b }, fleetMaxConnections: 3 } ] } }
                """)).contains("config.clients.rules[1].fleetMaxConnections needs fleet.store");
    }

    @Test
    void theSchemaRefusesAPasswordInTheAddressAndOtherSchemes() {
        assertThat(HelmChart.renderError("fleet: { store: \"redis://app:secret@redis:6379/0\" }")).contains("store");
        assertThat(HelmChart.renderError("fleet: { store: \"http://redis:6379\" }")).contains("store");
        assertThat(HelmChart.renderError("fleet: { store: \"redis://redis:6379\", name: \"a b\" }")).contains("name");
        assertThat(HelmChart.renderError("fleet: { store: \"redis://redis:6379\", leaseTtl: soon }")).contains("leaseTtl");
    }

    @Test
    void aCaSecretIsMountedReadOnlyAndNamedAsTheFleetCaFile(@TempDir Path dir) throws Exception {
        Rendered r = HelmChart.render("""
                fleet:
                  store: rediss://redis.shop.svc:6380/0
                  caSecret: { name: redis-tls }
                """);
        assertThat(r.sidecar().getVolumeMounts()).filteredOn(m -> m.getName().equals("connguard-fleet-ca"))
                .singleElement().satisfies(m -> {
                    assertThat(m.getMountPath()).isEqualTo("/etc/connguard-fleet-ca");
                    assertThat(m.getSubPath()).isNull();
                    assertThat(m.getReadOnly()).isTrue();
                });
        assertThat(r.pod().getVolumes()).filteredOn(v -> v.getName().equals("connguard-fleet-ca"))
                .singleElement().satisfies(v -> {
                    assertThat(v.getSecret().getSecretName()).isEqualTo("redis-tls");
                    assertThat(v.getSecret().getItems()).singleElement().satisfies(item -> {
                        assertThat(item.getKey()).as("cert-manager's key by default").isEqualTo("ca.crt");
                        assertThat(item.getPath()).isEqualTo("ca.crt");
                    });
                });
        String rendered = "caFile: /etc/connguard-fleet-ca/ca.crt";
        assertThat(r.configYaml()).contains(rendered);
        // The mounted file exists only in the pod: load the rendered file with a CA at that path's place.
        Path ca = TestCertificates.authority("redis CA").writeCa(dir.resolve("ca.crt"));
        ProxyConfig config = Rendered.load(r.configYaml().replace(rendered, "caFile: " + ca), r.sidecarEnvironment());
        assertThat(config.fleet().caFile()).isEqualTo(ca);
        assertThat(config.fleet().store().getScheme()).isEqualTo("rediss");

        Rendered otherKey = HelmChart.render("""
                fleet: { store: "rediss://redis:6380/0", caSecret: { name: redis-ca, key: bundle.pem } }
                """);
        assertThat(otherKey.configYaml()).contains("caFile: /etc/connguard-fleet-ca/bundle.pem");
        assertThat(otherKey.pod().getVolumes()).filteredOn(v -> v.getName().equals("connguard-fleet-ca"))
                .singleElement().satisfies(v -> assertThat(v.getSecret().getItems().get(0).getKey()).isEqualTo("bundle.pem"));
    }

    @Test
    void withoutACaSecretNothingIsMountedAndTheJvmTrustStoreVerifiesRedis() throws Exception {
        Rendered r = HelmChart.render("fleet: { store: \"rediss://redis:6380/0\" }");
        assertThat(r.sidecar().getVolumeMounts()).noneMatch(m -> m.getName().equals("connguard-fleet-ca"));
        assertThat(r.pod().getVolumes()).noneMatch(v -> v.getName().equals("connguard-fleet-ca"));
        assertThat(r.configYaml()).doesNotContain("caFile");
        assertThat(r.loadConfig().fleet().caFile()).isNull();
    }

    @Test
    void aCaSecretForAPlainStoreFailsRendering() {
        assertThat(HelmChart.renderError("fleet: { store: \"redis://redis:6379/0\", caSecret: { name: redis-ca } }"))
                .contains("fleet.caSecret needs a TLS store");
        assertThat(HelmChart.renderError("fleet: { store: \"rediss://redis:6380/0\", caSecret: { name: c, key: a/b } }"))
                .contains("key");
    }
}
