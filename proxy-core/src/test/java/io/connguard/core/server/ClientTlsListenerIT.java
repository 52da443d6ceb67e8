package io.connguard.core.server;

import io.connguard.core.lifecycle.ReloadResult;
import io.connguard.core.testing.LeakGuard;
import io.connguard.core.testing.TestProxy;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * A listener may offer TLS to clients only when its protocol terminates it: otherwise the setting is a
 * configuration error at start and a refused reload, never a silently plaintext listener.
 */
@ExtendWith(LeakGuard.class)
class ClientTlsListenerIT {

    private static String config(String mode) {
        return """
                listeners:
                  - name: line
                    protocol: line
                    listen: 127.0.0.1:0
                    upstream: 127.0.0.1:9
                    clientTls:
                      mode: %s
                """.formatted(mode);
    }

    @Test
    void aProtocolWithoutClientTlsRefusesAllowAndRequireAtStart() {
        for (String mode : new String[] {"allow", "require"}) {
            assertThatThrownBy(() -> TestProxy.start(config(mode)).close())
                    .hasMessageContaining("listeners.line.clientTls.mode")
                    .hasMessageContaining("protocol line does not accept TLS from clients in this version; use mode disable");
        }
    }

    @Test
    void aReloadThatTurnsItOnIsRefusedAndTheListenerKeepsRunning() {
        try (TestProxy proxy = TestProxy.start(config("disable"))) {
            ReloadResult result = proxy.reload(config("require"));
            assertThat(result.status()).isEqualTo(ReloadResult.Status.INVALID);
            assertThat(result.reasons()).singleElement().asString().contains("does not accept TLS from clients");
            assertThat(proxy.server().config().listeners().get(0).clientTls().mode().enabled()).isFalse();
            assertThat(proxy.server().ready()).isTrue();
        }
    }
}
