package io.connguard.app.packaging;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.dataformat.yaml.YAMLMapper;
import io.connguard.core.metrics.CloseReason;
import io.connguard.core.metrics.MeterNames;
import io.connguard.core.metrics.Outcome;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.io.InputStream;
import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * The Grafana dashboard and the alert rules the chart ships use only connguard's own metric names
 * (MeterNames, in Prometheus form) and tag values, cover the questions of the observability issue,
 * and the rules pass promtool's checks and unit tests (promtool from .ci/setup-packaging.sh). That the
 * names appear in a real scrape is the observability tests' part.
 */
class PackagingMonitoringTest {

    static final Path PROMTOOL = Path.of(System.getProperty("connguard.promtool", "/opt/connguard-ci/bin/promtool"));
    private static final Pattern METRIC = Pattern.compile("\\bconnguard_[a-z_]+");
    private static final Pattern REASON = Pattern.compile("reason\\s*[!=]~?\\s*\"([^\"]+)\"");
    private static final Pattern OUTCOME = Pattern.compile("outcome\\s*[!=]~?\\s*\"([^\"]+)\"");

    @Test
    void dashboardAndRulesUseOnlyConnguardsMetricNames() throws Exception {
        Set<String> meters = meterNames();
        for (String file : List.of("files/dashboard.json", "files/alerts.yaml")) {
            Set<String> used = metrics(HelmChart.read(file));
            assertThat(used).as(file).isNotEmpty();
            for (String metric : used) {
                assertThat(meters).as("%s uses %s, which is no connguard meter", file, metric).contains(micrometerName(metric));
            }
        }
    }

    @Test
    void tagValuesAreOnesConnguardEmits() {
        Set<String> reasons = new HashSet<>();
        Arrays.stream(CloseReason.values()).forEach(r -> reasons.add(r.tag()));
        Set<String> outcomes = new HashSet<>();
        Arrays.stream(Outcome.values()).forEach(o -> outcomes.add(o.tag()));
        for (String file : List.of("files/dashboard.json", "files/alerts.yaml")) {
            String text = HelmChart.read(file).replace("\\\"", "\"");
            for (String pattern : matches(REASON, text)) {
                assertThat(reasons).as("%s: reason %s", file, pattern).anyMatch(r -> r.matches(pattern));
            }
            for (String pattern : matches(OUTCOME, text)) {
                assertThat(outcomes).as("%s: outcome %s", file, pattern).anyMatch(o -> o.matches(pattern));
            }
        }
    }

    @Test
    void dashboardAnswersThePerClientQuestions() throws Exception {
        JsonNode dashboard = new ObjectMapper().readTree(HelmChart.read("files/dashboard.json"));
        List<String> variables = new ArrayList<>();
        dashboard.path("templating").path("list").forEach(v -> variables.add(v.path("name").asText()));
        assertThat(variables).contains("datasource", "listener", "user", "database", "application");
        List<String> expressions = new ArrayList<>();
        Set<Integer> ids = new HashSet<>();
        for (JsonNode panel : dashboard.path("panels")) {
            assertThat(ids.add(panel.path("id").asInt())).as("unique panel id %s", panel.path("id")).isTrue();
            panel.path("targets").forEach(t -> expressions.add(t.path("expr").asText()));
        }
        String all = String.join("\n", expressions);
        assertThat(all).contains("connguard_client_connections", "connguard_client_max_connections",
                "connguard_client_queued", "rate(connguard_client_admissions_total", "outcome=~\"rejected.*\"",
                "connguard_client_sessions_closed_total", "connguard_client_leak_suspects",
                "rate(connguard_client_busy_seconds_total", "connguard_listener_upstream_connect_errors_total",
                "histogram_quantile(0.95, sum by (le) (rate(connguard_client_queue_wait_seconds_bucket");
        assertThat(expressions).filteredOn(e -> e.contains("connguard_client"))
                .allMatch(e -> e.contains("listener=~\"$listener\"") && e.contains("application=~\"$application\""));
    }

    @Test
    void alertRulesCoverTheIssuesList() throws Exception {
        JsonNode rules = new YAMLMapper().readTree(HelmChart.read("files/alerts.yaml")).path("groups").get(0).path("rules");
        List<String> names = new ArrayList<>();
        for (JsonNode rule : rules) {
            names.add(rule.path("alert").asText());
            assertThat(rule.path("labels").path("severity").asText()).isIn("warning", "critical");
            assertThat(rule.path("annotations").path("summary").asText()).isNotBlank();
        }
        assertThat(names).containsExactly("ConnguardClientNearConnectionCap", "ConnguardConnectionsRejected",
                "ConnguardIdleInTransactionKills", "ConnguardLeakSuspects", "ConnguardUpstreamConnectErrors",
                "ConnguardDown", "ConnguardAbsent");
        assertThat(rules.get(0).path("for").asText()).isEqualTo("5m");
    }

    @Test
    void promtoolChecksAndUnitTestsTheRules(@TempDir Path dir) throws Exception {
        assertThat(Files.isExecutable(PROMTOOL))
                .as("promtool %s is missing: run `sudo bash .ci/setup-packaging.sh`, or point -Dconnguard.promtool at one", PROMTOOL)
                .isTrue();
        Files.writeString(dir.resolve("alerts.yaml"), HelmChart.read("files/alerts.yaml"));
        try (InputStream tests = getClass().getResourceAsStream("alerts-test.yaml")) {
            Files.write(dir.resolve("alerts-test.yaml"), tests.readAllBytes());
        }
        promtool(dir, "check", "rules", "alerts.yaml");
        promtool(dir, "test", "rules", "alerts-test.yaml");
    }

    private static void promtool(Path dir, String... args) throws IOException, InterruptedException {
        List<String> command = new ArrayList<>(List.of(PROMTOOL.toString()));
        command.addAll(List.of(args));
        Process process = new ProcessBuilder(command).directory(dir.toFile()).redirectErrorStream(true).start();
        String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertThat(process.waitFor(120, TimeUnit.SECONDS)).isTrue();
        assertThat(process.exitValue()).as("promtool %s:\n%s", String.join(" ", args), output).isZero();
    }

    /** The Micrometer name a Prometheus series name comes from: suffixes off, underscores to dots. */
    static String micrometerName(String prometheus) {
        String name = prometheus.replaceAll("_(bucket|count|sum)$", "").replaceAll("_total$", "").replaceAll("_seconds$", "");
        return name.replace('_', '.');
    }

    private static Set<String> meterNames() throws IllegalAccessException {
        Set<String> names = new TreeSet<>();
        for (Field field : MeterNames.class.getFields()) {
            if (Modifier.isStatic(field.getModifiers()) && field.get(null) instanceof String value && value.startsWith("connguard.")) {
                names.add(value);
            }
        }
        return names;
    }

    private static Set<String> metrics(String text) {
        return new TreeSet<>(matches(METRIC, text));
    }

    private static List<String> matches(Pattern pattern, String text) {
        List<String> found = new ArrayList<>();
        Matcher m = pattern.matcher(text);
        while (m.find()) {
            found.add(m.groupCount() > 0 ? m.group(1) : m.group());
        }
        return found;
    }
}
