package io.connguard.app.packaging;

import io.connguard.core.config.ProxyConfig;
import io.fabric8.openshift.api.model.monitoring.v1.PodMonitor;
import io.fabric8.openshift.api.model.monitoring.v1.PrometheusRule;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import static org.assertj.core.api.Assertions.assertThat;

/** The example values under helm/connguard/ci (also chart-testing's input) render, load and are documented. */
class ChartExamplesTest {

    @ParameterizedTest
    @ValueSource(strings = {"orders-values.yaml", "legacy-mysql-values.yaml"})
    void exampleRendersAConfigurationConnguardAccepts(String file) throws Exception {
        String values = HelmChart.read("ci/" + file);
        Rendered r = HelmChart.render(values);
        ProxyConfig config = r.loadConfig();
        assertThat(config.listeners()).isNotEmpty();
        long drain = config.shutdown().minDrainDelay().plus(config.shutdown().drainTimeout()).toSeconds();
        assertThat(r.pod().getTerminationGracePeriodSeconds()).isGreaterThan(drain);
        String notes = HelmChart.notes(values);
        for (var env : r.pod().getContainers().get(0).getEnv()) {
            if (env.getValue() != null && env.getValue().startsWith("jdbc:")) {
                String prefix = env.getValue().substring(0, env.getValue().indexOf('/', "jdbc:x://".length()));
                assertThat(notes).as("NOTES name the URL the example uses").contains(prefix);
            }
        }
    }

    @Test
    void ordersExampleTurnsOnMonitoring() {
        Rendered r = HelmChart.render(HelmChart.read("ci/orders-values.yaml"));
        assertThat(r.kinds()).contains("Deployment/orders-api", "ConfigMap/orders-connguard-dashboard");
        assertThat(r.all(PodMonitor.class)).hasSize(1);
        assertThat(r.all(PrometheusRule.class)).hasSize(1);
    }

    @Test
    void everyExampleIsTested() throws Exception {
        try (Stream<Path> files = Files.list(HelmChart.dir().resolve("ci"))) {
            assertThat(files.map(f -> f.getFileName().toString()))
                    .containsExactlyInAnyOrder("orders-values.yaml", "legacy-mysql-values.yaml");
        }
    }

    /** A user copies the command: the chart and the values file it names exist, from the repository root. */
    @Test
    void everyHelmInstallCommandNamesFilesThatExist() throws Exception {
        Path repository = DockerfileLintTest.repository();
        Pattern install = Pattern.compile("helm install \\S+ (\\S+) -f (\\S+)");
        int commands = 0;
        for (Path file : List.of(repository.resolve("README.md"), HelmChart.dir().resolve("README.md"),
                HelmChart.dir().resolve("ci/orders-values.yaml"), HelmChart.dir().resolve("ci/legacy-mysql-values.yaml"))) {
            Matcher m = install.matcher(Files.readString(file));
            while (m.find()) {
                commands++;
                assertThat(repository.resolve(m.group(1)).resolve("Chart.yaml")).as("%s: %s", file, m.group()).isRegularFile();
                assertThat(repository.resolve(m.group(2))).as("%s: %s", file, m.group()).isRegularFile();
            }
        }
        assertThat(commands).isGreaterThanOrEqualTo(5);
    }

    @Test
    void chartReadmeShowsTheOrdersExampleVerbatim() {
        assertThat(HelmChart.read("README.md")).contains(HelmChart.read("ci/orders-values.yaml"));
    }
}
