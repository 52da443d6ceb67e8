package io.connguard.core.logging;

import ch.qos.logback.classic.Level;
import ch.qos.logback.classic.Logger;
import ch.qos.logback.classic.LoggerContext;
import ch.qos.logback.classic.encoder.PatternLayoutEncoder;
import ch.qos.logback.classic.spi.ILoggingEvent;
import ch.qos.logback.core.OutputStreamAppender;
import ch.qos.logback.core.encoder.Encoder;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;

import static org.assertj.core.api.Assertions.assertThat;

/** Both log formats carry a session line's key-value pairs, so logs and metrics join. */
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

    @Test
    void jsonIsOneObjectALineWithEveryFieldAtTheTopLevel() throws Exception {
        LoggerContext context = new LoggerContext();
        context.setMDCAdapter(new ch.qos.logback.classic.util.LogbackMDCAdapter());
        context.start();
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
    void textLinesEndWithTheSameFields() {
        LoggerContext context = new LoggerContext();
        context.setMDCAdapter(new ch.qos.logback.classic.util.LogbackMDCAdapter());
        context.start();
        PatternLayoutEncoder encoder = new PatternLayoutEncoder();
        encoder.setContext(context);
        encoder.setPattern(Logging.TEXT_PATTERN);
        encoder.start();
        String line = log(encoder, context);
        assertThat(line).contains("WARN  session - session killed: idle inside a transaction")
                .contains("session=42", "listener=orders-pg", "address=10.1.2.3", "user=app", "database=orders",
                        "reason=idle_in_transaction");
    }
}
