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
}
