package io.connguard.app.packaging;

import com.fasterxml.jackson.dataformat.yaml.YAMLMapper;
import io.fabric8.kubernetes.api.model.Container;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The chart rendered for every Kubernetes minor version its Chart.yaml admits, as `helm template
 * --kube-version` (or Helm talking to a cluster) would: legacy mode everywhere, the native sidecar from
 * 1.29 and the preStop sleep from 1.30, and below those a clear refusal that says what to set instead.
 */
class ChartKubeVersionsTest {

    /** The newest Kubernetes minor version these tests render for; the chart sets no upper bound. */
    private static final int NEWEST_MINOR = 36;
    private static final int NATIVE_SIDECARS = 29;
    private static final int PRESTOP_SLEEP = 30;

    private static int oldestMinor;

    @BeforeAll
    static void claimedRange() throws Exception {
        String kubeVersion = new YAMLMapper().readTree(HelmChart.read("Chart.yaml")).path("kubeVersion").asText();
        Matcher m = Pattern.compile(">=1\\.(\\d+)\\.0-0").matcher(kubeVersion);
        assertThat(m.matches()).as("Chart.yaml kubeVersion %s is a lower bound only", kubeVersion).isTrue();
        oldestMinor = Integer.parseInt(m.group(1));
    }

    private static List<String> claimedVersions() {
        List<String> versions = new ArrayList<>();
        for (int minor = oldestMinor; minor <= NEWEST_MINOR; minor++) {
            versions.add("1." + minor + ".0");
        }
        return versions;
    }

    private static int minor(String version) {
        return Integer.parseInt(version.replaceFirst("^v?1\\.(\\d+)\\..*$", "$1"));
    }

    @Test
    void theLegacyModeIsForOlderClusters() {
        assertThat(oldestMinor).as("legacy mode reaches clusters without native sidecars").isLessThan(NATIVE_SIDECARS);
    }

    @Test
    void legacyModeWithoutPreStopRendersOnEveryClaimedVersion() throws Exception {
        for (String version : claimedVersions()) {
            Rendered r = HelmChart.render(HelmChart.dir(), "sidecar: { native: false, preStopSleepSeconds: 0 }", version);
            assertThat(r.pod().getInitContainers()).as(version).isEmpty();
            assertThat(r.pod().getContainers()).as(version).extracting(Container::getName).containsExactly("app", "connguard");
            assertThat(r.sidecar().getRestartPolicy()).as(version).isNull();
            assertThat(r.sidecar().getLifecycle()).as(version).isNull();
            assertThat(r.loadConfig().listeners()).as(version).hasSize(1);
        }
    }

    @Test
    void theNativeSidecarRendersFrom129AndIsRefusedWithAClearMessageBefore() {
        for (String version : claimedVersions()) {
            if (minor(version) >= NATIVE_SIDECARS) {
                Rendered r = HelmChart.render(HelmChart.dir(), "", version);
                assertThat(r.pod().getInitContainers()).as(version).extracting(Container::getRestartPolicy)
                        .containsExactly("Always");
            } else {
                assertThat(HelmChart.renderError("", version)).as(version)
                        .contains("sidecar.native=true needs Kubernetes 1.29 or newer (native sidecar containers), "
                                + "but the cluster is v" + version)
                        .contains("set sidecar.native=false")
                        .contains("sidecar.preStopSleepSeconds=0");
            }
        }
    }

    @Test
    void thePreStopSleepRendersFrom130AndIsRefusedWithAClearMessageBefore() {
        for (String version : claimedVersions()) {
            if (minor(version) >= PRESTOP_SLEEP) {
                Rendered r = HelmChart.render(HelmChart.dir(), "sidecar: { native: false }", version);
                assertThat(r.sidecar().getLifecycle().getPreStop().getSleep().getSeconds()).as(version).isEqualTo(5L);
            } else {
                assertThat(HelmChart.renderError("sidecar: { native: false }", version)).as(version)
                        .contains("sidecar.preStopSleepSeconds needs Kubernetes 1.30 or newer (the preStop sleep action), "
                                + "but the cluster is v" + version)
                        .contains("set sidecar.preStopSleepSeconds=0 and config.shutdown.minDrainDelay");
            }
        }
    }

    @Test
    void theLegacyExampleRendersOnEveryClaimedVersion() {
        String values = HelmChart.read("ci/legacy-mysql-values.yaml");
        for (String version : claimedVersions()) {
            Rendered r = HelmChart.render(HelmChart.dir(), values, version);
            assertThat(r.pod().getContainers()).as(version).extracting(Container::getName).containsExactly("app", "connguard");
        }
    }

    @Test
    void managedClustersVersionsWithASuffixCount() {
        assertThat(HelmChart.render(HelmChart.dir(), "", "v1.29.1-gke.1589020").pod().getInitContainers()).hasSize(1);
        assertThat(HelmChart.render(HelmChart.dir(), "sidecar: { native: false, preStopSleepSeconds: 0 }",
                "v1.27.16-eks-a18cd3a").pod().getContainers()).hasSize(2);
        assertThat(HelmChart.renderError("", "v1.28.15-eks-a18cd3a")).contains("sidecar.native=true needs Kubernetes 1.29");
    }

    @Test
    void aClusterOlderThanTheChartAdmitsIsRefusedByHelm() {
        String older = "1." + (oldestMinor - 1) + ".0";
        assertThat(HelmChart.renderError("sidecar: { native: false, preStopSleepSeconds: 0 }", older))
                .contains("incompatible with Kubernetes v" + older);
    }
}
