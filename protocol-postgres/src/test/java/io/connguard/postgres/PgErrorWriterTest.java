package io.connguard.postgres;

import io.connguard.core.testing.LeakGuard;
import org.junit.jupiter.api.extension.ExtendWith;
import io.connguard.core.api.ProxyError;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.UnpooledByteBufAllocator;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;

@ExtendWith(LeakGuard.class)
class PgErrorWriterTest {

    private static Map<Character, String> write(ProxyError error) {
        ByteBuf buf = PgErrorWriter.fatal(UnpooledByteBufAllocator.DEFAULT, error);
        try {
            return PgErrorParser.fields(ByteBufUtil.getBytes(buf));
        } finally {
            buf.release();
        }
    }

    @ParameterizedTest
    @CsvSource({
            "TOO_MANY_CONNECTIONS, 53300",
            "IDLE_IN_TRANSACTION_TIMEOUT, 25P03",
            "IDLE_TIMEOUT, 57P05",
            "SESSION_LIFETIME, 57P05",
            "ADMIN_KILL, 57P01",
            "SHUTDOWN, 57P01",
            "DRAINING, 57P03",
            "PROTOCOL_VIOLATION, 08P01",
            "UPSTREAM_UNAVAILABLE, 08006"})
    void everyEventHasItsSqlState(ProxyError.Kind kind, String sqlState) {
        Map<Character, String> fields = write(new ProxyError(kind, "the message", "the detail"));
        assertThat(fields).containsExactly(
                Map.entry('S', "FATAL"), Map.entry('V', "FATAL"), Map.entry('C', sqlState),
                Map.entry('M', "the message"), Map.entry('D', "the detail"));
    }

    @Test
    void anEmptyDetailIsLeftOut() {
        assertThat(write(new ProxyError(ProxyError.Kind.DRAINING, "the proxy is shutting down", "")))
                .doesNotContainKey('D')
                .containsEntry('M', "the proxy is shutting down");
    }

    @Test
    void textIsUtf8AndANulCannotCutAField() {
        Map<Character, String> fields = write(new ProxyError(ProxyError.Kind.TOO_MANY_CONNECTIONS,
                "too many connections for client user=\"zoë\"\0app", "maxConnections\0 of the rule"));
        assertThat(fields.get('M')).isEqualTo("too many connections for client user=\"zoë\" app");
        assertThat(fields.get('D')).isEqualTo("maxConnections  of the rule");
    }
}
