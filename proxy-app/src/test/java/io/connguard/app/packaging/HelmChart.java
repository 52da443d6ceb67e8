package io.connguard.app.packaging;

import com.marcnuri.helm.DryRun;
import com.marcnuri.helm.Helm;
import com.marcnuri.helm.LintResult;
import com.marcnuri.helm.TemplateCommand;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;

/**
 * Lints and renders the chart under {@code helm/connguard} with the Helm that helm-java bundles as a
 * native library: no helm binary, no cluster, no network. Values come as YAML text (a values file),
 * the way a user writes them.
 */
final class HelmChart {

    /** A Kubernetes version inside the chart's kubeVersion range (helm-java's default is older). */
    static final String KUBE_VERSION = "1.31.0";
    static final String RELEASE = "orders";
    static final String NAMESPACE = "shop";

    private HelmChart() {
    }

    /** The chart directory, found from the module or the repository root (Maven runs in either). */
    static Path dir() {
        for (Path d = Path.of("").toAbsolutePath(); d != null; d = d.getParent()) {
            Path chart = d.resolve("helm/connguard");
            if (Files.isRegularFile(chart.resolve("Chart.yaml"))) {
                return chart;
            }
        }
        throw new IllegalStateException("helm/connguard/Chart.yaml not found above " + Path.of("").toAbsolutePath());
    }

    static Rendered render(String values) {
        return render(dir(), values);
    }

    static Rendered render(Path chart, String values) {
        return render(chart, values, KUBE_VERSION);
    }

    /** Renders as `helm template --kube-version` does for a cluster of that version. */
    static Rendered render(Path chart, String values, String kubeVersion) {
        TemplateCommand template = new Helm(chart).template()
                .withName(RELEASE).withNamespace(NAMESPACE).withKubeVersion(kubeVersion)
                .withValuesFile(valuesFile(values));
        return new Rendered(Manifests.parse(template.call()));
    }

    /** The message Helm fails with for these values; fails the test when rendering succeeds. */
    static String renderError(String values) {
        return renderError(values, KUBE_VERSION);
    }

    static String renderError(String values, String kubeVersion) {
        return renderError(dir(), values, kubeVersion);
    }

    static String renderError(Path chart, String values, String kubeVersion) {
        try {
            render(chart, values, kubeVersion);
        } catch (IllegalStateException e) {
            return e.getMessage();
        }
        throw new AssertionError("the chart rendered for Kubernetes " + kubeVersion
                + ", but these values should have been rejected:\n" + values);
    }

    /**
     * {@code helm lint --strict} with the chart's own values (helm-java's lint takes no values file, and
     * renders for its default Kubernetes version, 1.20).
     */
    static LintResult lint() {
        return lint(dir());
    }

    static LintResult lint(Path chart) {
        return new Helm(chart).lint().strict().call();
    }

    /** Copies a chart directory, e.g. into another chart's charts/ as `helm dependency build` does. */
    static void copy(Path from, Path to) throws IOException {
        try (Stream<Path> files = Files.walk(from)) {
            for (Path file : files.toList()) {
                Path target = to.resolve(from.relativize(file).toString());
                if (Files.isDirectory(file)) {
                    Files.createDirectories(target);
                } else {
                    Files.copy(file, target);
                }
            }
        }
    }

    /** NOTES.txt as `helm install` prints it (a client-side dry run). */
    static String notes(String values) {
        String output = new Helm(dir()).install()
                .withName(RELEASE).withNamespace(NAMESPACE).withKubeVersion(KUBE_VERSION)
                .withValuesFile(valuesFile(values))
                .dryRun().withDryRunOption(DryRun.CLIENT).clientOnly()
                .call().getOutput();
        int notes = output.indexOf("NOTES:");
        return notes < 0 ? "" : output.substring(notes);
    }

    static String read(String chartFile) {
        try {
            return Files.readString(dir().resolve(chartFile));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static Path valuesFile(String values) {
        try {
            Path file = Files.createTempFile("connguard-values", ".yaml");
            file.toFile().deleteOnExit();
            return Files.writeString(file, values == null ? "" : values);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
