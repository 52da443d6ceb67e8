package io.connguard.app.packaging;

import org.junit.jupiter.api.Test;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/** The manifest parser the chart tests rely on really refuses what Kubernetes would not know. */
class PackagingManifestsTest {

    private static final String DEPLOYMENT = """
            ---
            apiVersion: apps/v1
            kind: Deployment
            metadata: { name: d }
            spec:
              selector: { matchLabels: { a: b } }
              template:
                metadata: { labels: { a: b } }
                spec:
                  initContainers:
                    - name: connguard
                      image: x
                      %s
                  containers: [ { name: app, image: y } ]
            """;

    @Test
    void aKnownFieldParses() {
        assertThat(Manifests.parse(DEPLOYMENT.formatted("restartPolicy: Always"))).hasSize(1);
    }

    @Test
    void anUnknownOrMisplacedFieldFails() {
        assertThatThrownBy(() -> Manifests.parse(DEPLOYMENT.formatted("restartpolicy: Always")))
                .hasMessageContaining("initContainers[0].restartpolicy");
        assertThatThrownBy(() -> Manifests.parse(DEPLOYMENT.formatted("httpGet: { path: /readyz, port: 9633 }")))
                .hasMessageContaining("initContainers[0].httpGet");
    }

    @Test
    void anUnexpectedKindFails() {
        assertThatThrownBy(() -> Manifests.parse("apiVersion: v1\nkind: Service\nmetadata: { name: s }\n"))
                .hasMessageContaining("unexpected object v1/Service");
    }
}
