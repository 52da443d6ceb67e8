package io.connguard.core.config;

import org.yaml.snakeyaml.nodes.MappingNode;
import org.yaml.snakeyaml.nodes.Node;
import org.yaml.snakeyaml.nodes.NodeTuple;
import org.yaml.snakeyaml.nodes.ScalarNode;
import org.yaml.snakeyaml.nodes.SequenceNode;

import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.function.Function;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Typed reads of one YAML mapping, collecting errors (with key path and line) instead of throwing, so
 * that a file's every problem is reported at once. A missing or invalid value yields the default.
 */
final class YamlFields {

    private static final Pattern DURATION = Pattern.compile("(\\d+)(ms|s|m|h|d)");

    /**
     * The longest duration accepted. The timers and the drain schedule in nanoseconds (a long holds 292
     * years of them); a longer value would overflow there, at run time, instead of failing here.
     */
    static final Duration MAX_DURATION = Duration.ofDays(36500);
    private static final Pattern VARIABLE = Pattern.compile("\\$\\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?}");

    private final String path;
    private final Node node;
    private final Map<String, Node> values = new LinkedHashMap<>();
    private final List<ConfigError> errors;
    private final Function<String, String> environment;

    private YamlFields(String path, Node node, List<ConfigError> errors, Function<String, String> environment) {
        this.path = path;
        this.node = node;
        this.errors = errors;
        this.environment = environment;
    }

    /**
     * Reads {@code node} as a mapping with the given keys; unknown and duplicate keys are errors.
     * A null node (the key was absent) reads as an empty mapping.
     */
    static YamlFields of(String path, Node node, Set<String> keys, List<ConfigError> errors,
                         Function<String, String> environment) {
        YamlFields fields = new YamlFields(path, node, errors, environment);
        if (node == null || isNull(node)) {
            return fields;
        }
        if (!(node instanceof MappingNode mapping)) {
            fields.error(path, node, "expected a mapping of " + String.join(", ", keys));
            return fields;
        }
        for (NodeTuple tuple : mapping.getValue()) {
            Node keyNode = tuple.getKeyNode();
            // A key that is a mapping or a list is named by its kind: its toString recurses without end
            // when an alias makes it contain itself.
            String key = keyNode instanceof ScalarNode scalar ? scalar.getValue()
                    : "<" + keyNode.getNodeId().name() + ">";
            String keyPath = fields.child(key);
            if (!keys.contains(key)) {
                fields.error(keyPath, keyNode, "unknown key (expected one of " + String.join(", ", keys) + ")");
            } else if (fields.values.containsKey(key)) {
                fields.error(keyPath, keyNode, "duplicate key");
            } else {
                fields.values.put(key, tuple.getValueNode());
            }
        }
        return fields;
    }

    String path() {
        return path;
    }

    String child(String key) {
        return path.isEmpty() ? key : path + "." + key;
    }

    boolean has(String key) {
        return values.containsKey(key) && !isNull(values.get(key));
    }

    Node node(String key) {
        return values.get(key);
    }

    int line(String key) {
        Node value = values.get(key);
        return value != null ? lineOf(value) : lineOf(node);
    }

    /** The text of a scalar after {@code ${ENV}} substitution, or null when absent or invalid. */
    String string(String key) {
        Node value = values.get(key);
        if (value == null || isNull(value)) {
            return null;
        }
        if (!(value instanceof ScalarNode scalar)) {
            error(child(key), value, "expected a single value");
            return null;
        }
        return substitute(child(key), scalar);
    }

    String string(String key, String fallback) {
        String value = string(key);
        return value != null ? value : fallback;
    }

    String required(String key) {
        String value = string(key);
        if (value == null && !values.containsKey(key)) {
            error(child(key), node, "missing (required)");
        } else if (value != null && value.isBlank()) {
            error(child(key), values.get(key), "must not be empty");
            return null;
        }
        return value;
    }

    Integer integer(String key, Integer fallback, int min, int max) {
        String text = string(key);
        if (text == null) {
            return fallback;
        }
        try {
            long value = Long.parseLong(text.trim());
            if (value < min || value > max) {
                error(child(key), values.get(key), "must be between " + min + " and " + max + ", got " + value);
                return fallback;
            }
            return (int) value;
        } catch (NumberFormatException e) {
            error(child(key), values.get(key), "expected a whole number, got '" + text + "'");
            return fallback;
        }
    }

    /** A duration written {@code 250ms}, {@code 5s}, {@code 10m}, {@code 1h}, {@code 2d} or {@code 0}. */
    Duration duration(String key, Duration fallback) {
        String text = string(key);
        if (text == null) {
            return fallback;
        }
        Duration parsed = parseDuration(text.trim());
        if (parsed == null) {
            error(child(key), values.get(key),
                    "expected a duration such as 250ms, 5s, 10m, 1h or 0, got '" + text + "'");
            return fallback;
        }
        if (parsed.compareTo(MAX_DURATION) > 0) {
            error(child(key), values.get(key), "must be at most 36500d (100 years), got '" + text + "'");
            return fallback;
        }
        return parsed;
    }

    <E extends Enum<E>> E enumValue(String key, Class<E> type, E fallback) {
        String text = string(key);
        if (text == null) {
            return fallback;
        }
        String name = text.trim().replace('-', '_').toUpperCase(Locale.ROOT);
        for (E constant : type.getEnumConstants()) {
            if (constant.name().equals(name)) {
                return constant;
            }
        }
        List<String> allowed = new ArrayList<>();
        for (E constant : type.getEnumConstants()) {
            allowed.add(constant.name().toLowerCase(Locale.ROOT).replace('_', '-'));
        }
        error(child(key), values.get(key), "expected one of " + String.join(", ", allowed) + ", got '" + text + "'");
        return fallback;
    }

    HostPort hostPort(String key, HostPort fallback) {
        String text = string(key);
        if (text == null) {
            return fallback;
        }
        try {
            return HostPort.parse(text.trim());
        } catch (IllegalArgumentException e) {
            error(child(key), values.get(key), e.getMessage());
            return fallback;
        }
    }

    /** The items of a sequence (empty when absent), each with its own path {@code key[i]}. */
    List<Node> sequence(String key) {
        Node value = values.get(key);
        if (value == null || isNull(value)) {
            return List.of();
        }
        if (!(value instanceof SequenceNode sequence)) {
            error(child(key), value, "expected a list");
            return List.of();
        }
        return sequence.getValue();
    }

    YamlFields mapping(String key, Set<String> keys) {
        return of(child(key), values.get(key), keys, errors, environment);
    }

    void error(String at, Node where, String message) {
        errors.add(new ConfigError(at, lineOf(where), message));
    }

    void error(String key, String message) {
        error(child(key), values.getOrDefault(key, node), message);
    }

    Function<String, String> environment() {
        return environment;
    }

    List<ConfigError> errors() {
        return errors;
    }

    static Duration parseDuration(String text) {
        if (text.equals("0")) {
            return Duration.ZERO;
        }
        Matcher m = DURATION.matcher(text);
        if (!m.matches()) {
            return null;
        }
        try {
            long amount = Long.parseLong(m.group(1));
            return switch (m.group(2)) {
                case "ms" -> Duration.ofMillis(amount);
                case "s" -> Duration.ofSeconds(amount);
                case "m" -> Duration.ofMinutes(amount);
                case "h" -> Duration.ofHours(amount);
                default -> Duration.ofDays(amount);
            };
        } catch (NumberFormatException | ArithmeticException tooLarge) {
            // More digits than a long holds, or more days than a Duration holds: not a usable duration.
            return null;
        }
    }

    static int lineOf(Node node) {
        return node == null || node.getStartMark() == null ? 0 : node.getStartMark().getLine() + 1;
    }

    private static boolean isNull(Node node) {
        return node instanceof ScalarNode scalar && scalar.getTag().getValue().endsWith(":null");
    }

    private String substitute(String at, ScalarNode scalar) {
        String text = scalar.getValue();
        if (text.indexOf("${") < 0) {
            return text;
        }
        Matcher m = VARIABLE.matcher(text);
        StringBuilder out = new StringBuilder();
        while (m.find()) {
            String value = environment.apply(m.group(1));
            if (value == null) {
                if (m.group(2) != null) {
                    value = m.group(3);
                } else {
                    error(at, scalar, "environment variable " + m.group(1) + " is not set");
                    value = "";
                }
            }
            m.appendReplacement(out, Matcher.quoteReplacement(value));
        }
        m.appendTail(out);
        return out.toString();
    }
}
