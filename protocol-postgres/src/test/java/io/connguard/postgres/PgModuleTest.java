package io.connguard.postgres;

import io.connguard.core.testing.LeakGuard;
import org.junit.jupiter.api.extension.ExtendWith;
import io.connguard.core.api.ProtocolModule;
import org.junit.jupiter.api.Test;

import java.util.ServiceLoader;

import static org.assertj.core.api.Assertions.assertThat;

@ExtendWith(LeakGuard.class)
class PgModuleTest {

    @Test
    void coreFindsTheModuleByItsProtocolName() {
        assertThat(ServiceLoader.load(ProtocolModule.class).stream().map(ServiceLoader.Provider::get))
                .filteredOn(module -> module.id().equals("postgres"))
                .singleElement()
                .isInstanceOf(PgModule.class);
    }

    @Test
    void sessionAndTransactionPoolingAreOffered() throws Exception {
        var modules = io.connguard.core.server.ProtocolModules.load();
        var loader = io.connguard.core.server.ProtocolModules.configLoader(java.util.Map.<String, String>of()::get, modules);
        String listener = """
                listeners:
                  - name: pg
                    protocol: postgres
                    listen: 127.0.0.1:6432
                    upstream: db:5432
                    pool:
                      mode: %s
                """;
        assertThat(loader.parse(listener.formatted("session")).listeners().get(0).pool().pooled()).isTrue();
        assertThat(loader.parse(listener.formatted("transaction")).listeners().get(0).pool().mode())
                .isEqualTo(io.connguard.core.config.PoolConfig.Mode.TRANSACTION);
    }
}
