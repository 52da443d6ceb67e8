package io.connguard.core.logging;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.LoggerContext;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.OutputStreamAppender;
import ch.qos.logback.core.encoder.Encoder;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.connguard.core.testing.LineClient;
import io.connguard.core.testing.TestProxy;
import io.connguard.core.testing.TestUpstreams;
import org.junit.jupiter.api.Test;
import org.slf4j.LoggerFactory;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.assertj.core.api.Assertions.assertThat;
import static org.awaitility.Awaitility.await;

/** Both log formats carry a session line's key-value pairs, so logs and metrics join; text lines are logfmt. */
class LogFormatTest {

    private static String log(Encoder<ILoggingEvent> encoder, LoggerContext context) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        OutputStreamAppender<ILoggingEvent> appender = new OutputStreamAppender<>();
        appender.setContext(context);
        appender.setEncoder(encoder);
        appender.setOutputStream(out);
        appender.start();
        Logger logger = context.getLogger("io.connguard.session");
        logger.setLevel(Level.INFO);
        logger.setAdditive(false);
        logger.addAppender(appender);
        logger.atWarn()
                .addKeyValue("session", 42L)
                .addKeyValue("listener", "orders-pg")
                .addKeyValue("address", "10.1.2.3")
                .addKeyValue("user", "app")
                .addKeyValue("database", "orders")
                .addKeyValue("application", "web \"blue\"")
                .addKeyValue("reason", "idle_in_transaction")
                .addKeyValue("lastStatement", "UPDATE t SET v = ? WHERE id = ?")
                .log("session killed: {}", "idle inside a transaction");
        appender.stop();
        return out.toString(StandardCharsets.UTF_8);
    }

    private static LoggerContext context() {
        LoggerContext context = new LoggerContext();
        context.setMDCAdapter(new ch.qos.logback.classic.util.LogbackMDCAdapter());
        context.start();
        return context;
    }

    @Test
    void jsonIsOneObjectALineWithEveryFieldAtTheTopLevel() throws Exception {
        LoggerContext context = context();
        JsonLineEncoder encoder = new JsonLineEncoder();
        encoder.setContext(context);
        encoder.start();
        String line = log(encoder, context);
        assertThat(line).endsWith("}\n").doesNotContain("\n{");
        JsonNode json = new ObjectMapper().readTree(line);
        assertThat(json.get("level").asText()).isEqualTo("WARN");
        assertThat(json.get("logger").asText()).isEqualTo("io.connguard.session");
        assertThat(json.get("msg").asText()).isEqualTo("session killed: idle inside a transaction");
        assertThat(json.get("session").asLong()).isEqualTo(42);
        assertThat(json.get("listener").asText()).isEqualTo("orders-pg");
        assertThat(json.get("address").asText()).isEqualTo("10.1.2.3");
        assertThat(json.get("user").asText()).isEqualTo("app");
        assertThat(json.get("database").asText()).isEqualTo("orders");
        assertThat(json.get("application").asText()).isEqualTo("web \"blue\"");
        assertThat(json.get("reason").asText()).isEqualTo("idle_in_transaction");
        assertThat(json.get("lastStatement").asText()).isEqualTo("UPDATE t SET v = ? WHERE id = ?");
        assertThat(json.get("ts").asText()).matches("\\d{4}-\\d\\d-\\d\\dT.*Z");
    }

    @Test
    void textLinesAreLogfmtWithTheSameFields() {
        LoggerContext context = context();
        LogfmtEncoder encoder = new LogfmtEncoder();
        encoder.setContext(context);
        encoder.start();
        String line = log(encoder, context);
        assertThat(line).endsWith("\n").hasLineCount(1);
        Map<String, String> pairs = Logfmt.parse(line.strip());
        assertThat(pairs).containsEntry("level", "WARN").containsEntry("logger", "session")
                .containsEntry("msg", "session killed: idle inside a transaction")
                .containsEntry("session", "42").containsEntry("listener", "orders-pg")
                .containsEntry("application", "web \"blue\"")
                .containsEntry("lastStatement", "UPDATE t SET v = ? WHERE id = ?");
        assertThat(pairs.get("ts")).matches("\\d{4}-\\d\\d-\\d\\dT.*Z");
        assertThat(line).contains(" user=app ", " application=\"web \\\"blue\\\"\" ",
                " lastStatement=\"UPDATE t SET v = ? WHERE id = ?\"");
    }

    @Test
    void valuesAreQuotedOnlyWhenTheyMustBeAndEveryLineParsesBack() {
        for (String value : List.of("plain", "", "two words", "a=b", "say \"hi\"", "back\\slash", "line\nbreak",
                "tab\there", "zoë", "=", "\"")) {
            StringBuilder out = new StringBuilder("k=");
            LogfmtEncoder.value(out, value);
            assertThat(Logfmt.parse(out.toString())).as(out.toString()).containsExactly(Map.entry("k", value));
            assertThat(out.toString()).as("one line").doesNotContain("\n");
        }
        StringBuilder plain = new StringBuilder();
        LogfmtEncoder.value(plain, "orders-pg");
        assertThat(plain.toString()).isEqualTo("orders-pg");
    }

    /**
     * Real session lines from a running proxy (a leak, a kill, a rejection) through the text format: each is one
     * logfmt line that parses completely, names the client once (in its user/database/application fields, never
     * again in the message), and writes every duration in the configuration's own syntax.
     */
    @Test
    void leakKillAndRejectionLinesParseAndNameTheClientOnce() throws Exception {
        LoggerContext context = (LoggerContext) LoggerFactory.getILoggerFactory();
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        LogfmtEncoder encoder = new LogfmtEncoder();
        encoder.setContext(context);
        encoder.start();
        OutputStreamAppender<ILoggingEvent> appender = new OutputStreamAppender<>();
        appender.setContext(context);
        appender.setEncoder(encoder);
        appender.setOutputStream(out);
        appender.start();
        Logger sessions = context.getLogger("io.connguard.session");
        sessions.addAppender(appender);
        String user = "cg_logfmt_user";
        String database = "orders=eu";
        String application = "web\"blue\"";
        try (TestUpstreams upstreams = new TestUpstreams();
             TestProxy proxy = TestProxy.start("""
                     listeners:
                       - name: app
                         protocol: line
                         listen: 127.0.0.1:0
                         upstream: 127.0.0.1:%d
                     clients:
                       defaults:
                         maxConnections: 1
                         queueTimeout: 0
                         leakDetectionThreshold: 200ms
                         idleInTransactionTimeout: 1500ms
                     """.formatted(upstreams.echo().getPort()));
             LineClient held = LineClient.hello(proxy.port("app"), user, database, application)) {
            assertThat(held.readLine()).isEqualTo("WELCOME");
            held.send("hello\n");
            assertThat(held.readLine()).isEqualTo("hello");
            // The client needs more connections than it has (one is refused at its cap): the idle one is a suspect.
            try (LineClient rejected = LineClient.hello(proxy.port("app"), user, database, application)) {
                assertThat(rejected.readLine()).startsWith("ERROR TOO_MANY_CONNECTIONS");
            }
            await().atMost(Duration.ofSeconds(10)).until(() -> text(out).contains("connection leak suspected"));
            held.send("TX\n");
            assertThat(held.readLine()).isEqualTo("TX");
            assertThat(held.readLine()).startsWith("ERROR IDLE_IN_TRANSACTION_TIMEOUT");
            await().atMost(Duration.ofSeconds(10)).until(() -> text(out).contains("session killed"));
        } finally {
            sessions.detachAppender(appender);
            appender.stop();
        }

        List<Map<String, String>> lines = new ArrayList<>();
        for (String line : text(out).split("\n")) {
            lines.add(Logfmt.parse(line));
        }
        Map<String, String> leak = only(lines, "connection leak suspected");
        Map<String, String> rejection = only(lines, "connection rejected");
        Map<String, String> kill = only(lines, "session killed");
        for (Map<String, String> line : List.of(leak, rejection, kill)) {
            assertThat(line).containsEntry("user", user).containsEntry("database", database)
                    .containsEntry("application", application).containsEntry("listener", "app")
                    .containsKeys("ts", "level", "logger", "session", "address", "reason");
            assertThat(line).doesNotContainKey("client");
            String all = String.join(" ", line.values());
            assertThat(all.split(Pattern.quote(user), -1)).as("the client is named once: %s", line).hasSize(2);
            assertThat(all).as("no ISO-8601 durations").doesNotContain("PT");
        }
        assertThat(leak).containsEntry("level", "WARN").containsEntry("reason", "leak_suspect");
        assertThat(leak.get("idle")).matches(DURATION);
        assertThat(leak.get("age")).matches(DURATION);
        assertThat(leak.get("msg")).startsWith("connection leak suspected: idle for " + leak.get("idle") + " (open "
                + leak.get("age") + ") while ").endsWith("; last statement: (none)");
        assertThat(rejection).containsEntry("level", "INFO").containsEntry("reason", "queue_timeout");
        assertThat(rejection.get("msg")).isEqualTo("connection rejected: the client's maxConnections limit is reached "
                + "and no slot freed up within queueTimeout 0");
        assertThat(kill).containsEntry("level", "WARN").containsEntry("reason", "idle_in_transaction");
        assertThat(kill.get("msg")).isEqualTo(
                "session killed: idle inside a transaction longer than idleInTransactionTimeout 1500ms");
    }

    private static final String DURATION = "0|\\d+(ms|s|m|h)";

    private static String text(ByteArrayOutputStream out) {
        synchronized (out) {
            return out.toString(StandardCharsets.UTF_8);
        }
    }

    private static Map<String, String> only(List<Map<String, String>> lines, String message) {
        List<Map<String, String>> found = lines.stream().filter(l -> l.getOrDefault("msg", "").startsWith(message)).toList();
        assertThat(found).as(message).hasSize(1);
        return found.get(0);
    }

    /** A logfmt parser (as Go's go-logfmt reads lines): bare or quoted values, every byte accounted for. */
    static final class Logfmt {

        private static final Pattern PAIR = Pattern.compile(
                "([^\\s=\"]+)=(?:\"((?:[^\"\\\\]|\\\\.)*)\"|([^\\s=\"]+))(?: |$)");

        static Map<String, String> parse(String line) {
            Map<String, String> pairs = new LinkedHashMap<>();
            Matcher m = PAIR.matcher(line);
            int at = 0;
            while (at < line.length()) {
                assertThat(m.find(at) && m.start() == at).as("logfmt at offset %d of: %s", at, line).isTrue();
                String value = m.group(2) != null ? unescape(m.group(2)) : m.group(3);
                assertThat(pairs.put(m.group(1), value)).as("key %s once in: %s", m.group(1), line).isNull();
                at = m.end();
            }
            return pairs;
        }

        private static String unescape(String quoted) {
            StringBuilder out = new StringBuilder();
            for (int i = 0; i < quoted.length(); i++) {
                char c = quoted.charAt(i);
                if (c != '\\') {
                    out.append(c);
                    continue;
                }
                char next = quoted.charAt(++i);
                switch (next) {
                    case 'n' -> out.append('\n');
                    case 'r' -> out.append('\r');
                    case 't' -> out.append('\t');
                    case 'u' -> {
                        out.append((char) Integer.parseInt(quoted.substring(i + 1, i + 5), 16));
                        i += 4;
                    }
                    default -> out.append(next);
                }
            }
            return out.toString();
        }
    }
}
