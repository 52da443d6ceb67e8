package io.connguard.core.testing;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * A parsed Prometheus text exposition (format 0.0.4), so tests assert on values, not substrings:
 * {@code # TYPE} lines give each family's type; every sample line is split into name, labels (with the
 * format's escapes undone) and value.
 */
public final class PrometheusScrape {

    /** One sample line. */
    public record Sample(String name, Map<String, String> labels, double value) {
        public String label(String key) {
            return labels.getOrDefault(key, "");
        }
    }

    private final List<Sample> samples;
    private final Map<String, String> types;

    private PrometheusScrape(List<Sample> samples, Map<String, String> types) {
        this.samples = Collections.unmodifiableList(samples);
        this.types = Collections.unmodifiableMap(types);
    }

    public static PrometheusScrape parse(String text) {
        List<Sample> samples = new ArrayList<>();
        Map<String, String> types = new LinkedHashMap<>();
        int lineNumber = 0;
        for (String line : text.split("\n")) {
            lineNumber++;
            if (line.isBlank()) {
                continue;
            }
            if (line.startsWith("#")) {
                String[] parts = line.split(" ", 4);
                if (parts.length >= 4 && parts[1].equals("TYPE")) {
                    types.put(parts[2], parts[3].trim());
                }
                continue;
            }
            try {
                samples.add(sample(line));
            } catch (RuntimeException e) {
                throw new IllegalArgumentException("line " + lineNumber + " is not a sample: " + line, e);
            }
        }
        return new PrometheusScrape(samples, types);
    }

    private static Sample sample(String line) {
        int i = 0;
        while (i < line.length() && line.charAt(i) != '{' && line.charAt(i) != ' ') {
            i++;
        }
        String name = line.substring(0, i);
        if (!name.matches("[a-zA-Z_:][a-zA-Z0-9_:]*")) {
            throw new IllegalArgumentException("bad metric name " + name);
        }
        Map<String, String> labels = new TreeMap<>();
        if (i < line.length() && line.charAt(i) == '{') {
            i++;
            while (line.charAt(i) != '}') {
                int eq = line.indexOf('=', i);
                String key = line.substring(i, eq).trim();
                if (line.charAt(eq + 1) != '"') {
                    throw new IllegalArgumentException("label value must be quoted");
                }
                StringBuilder value = new StringBuilder();
                int j = eq + 2;
                while (line.charAt(j) != '"') {
                    char c = line.charAt(j);
                    if (c == '\\') {
                        char next = line.charAt(++j);
                        value.append(next == 'n' ? '\n' : next);
                    } else {
                        value.append(c);
                    }
                    j++;
                }
                labels.put(key, value.toString());
                i = j + 1;
                if (line.charAt(i) == ',') {
                    i++;
                }
            }
            i++;
        }
        String[] rest = line.substring(i).trim().split(" ");
        double value = switch (rest[0]) {
            case "+Inf" -> Double.POSITIVE_INFINITY;
            case "-Inf" -> Double.NEGATIVE_INFINITY;
            case "NaN" -> Double.NaN;
            default -> Double.parseDouble(rest[0]);
        };
        return new Sample(name, labels, value);
    }

    public List<Sample> samples() {
        return samples;
    }

    /** The {@code # TYPE} of a metric family, or null. */
    public String type(String family) {
        return types.get(family);
    }

    /** Every sample of this exact name. */
    public List<Sample> series(String name) {
        return samples.stream().filter(s -> s.name().equals(name)).toList();
    }

    /** Samples of this name whose labels include all given pairs ({@code "key", "value", ...}). */
    public List<Sample> series(String name, String... labelPairs) {
        return series(name).stream().filter(s -> matches(s, labelPairs)).toList();
    }

    /** The value of the one sample with this name and these labels; 0 when there is none. */
    public double value(String name, String... labelPairs) {
        List<Sample> found = series(name, labelPairs);
        if (found.size() > 1) {
            throw new IllegalStateException(found.size() + " samples match " + name + " " + List.of(labelPairs));
        }
        return found.isEmpty() ? 0 : found.get(0).value();
    }

    /** The sum over samples with this name and these labels. */
    public double sum(String name, String... labelPairs) {
        return series(name, labelPairs).stream().mapToDouble(Sample::value).sum();
    }

    public boolean has(String name) {
        return samples.stream().anyMatch(s -> s.name().equals(name));
    }

    private static boolean matches(Sample sample, String... pairs) {
        for (int i = 0; i + 1 < pairs.length; i += 2) {
            if (!pairs[i + 1].equals(sample.labels().get(pairs[i]))) {
                return false;
            }
        }
        return true;
    }
}
