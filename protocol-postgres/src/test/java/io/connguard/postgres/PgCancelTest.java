package io.connguard.postgres;

import io.connguard.core.testing.LeakGuard;
import org.junit.jupiter.api.extension.ExtendWith;
import io.connguard.core.api.ProxyError;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufUtil;
import io.netty.channel.embedded.EmbeddedChannel;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.net.InetSocketAddress;

import static io.connguard.postgres.PgMessages.PROTOCOL_3_2;
import static io.connguard.postgres.PgMessages.cancelRequest;
import static io.connguard.postgres.PgMessages.concat;
import static io.connguard.postgres.PgMessages.key;
import static io.connguard.postgres.PgMessages.loginOk;
import static io.connguard.postgres.PgMessages.sslRequest;
import static io.connguard.postgres.PgMessages.startup;
import static org.assertj.core.api.Assertions.assertThat;

/** CancelRequest: routed by backend key to the upstream that owns it, never counted or queued. */
@ExtendWith(LeakGuard.class)
class PgCancelTest {

    private final PgModule module = new PgModule();

    private PgTestContext sessionWithKey(int pid, byte[] key, int protocol) {
        PgTestContext context = new PgTestContext(module);
        context.client(startup(protocol, "user", "u"));
        context.server(loginOk(pid, key));
        return context;
    }

    @ParameterizedTest
    @ValueSource(ints = {4, 32, 256})
    void aKnownKeyIsForwardedToItsUpstreamAndTheClientClosedWhenTheServerIsDone(int keyLength) {
        byte[] key = key(keyLength, 3);
        PgTestContext owner = sessionWithKey(4711, key, keyLength == 4 ? PgMessages.PROTOCOL_3_0 : PROTOCOL_3_2);
        assertThat(module.cancelRoutes()).isEqualTo(1);

        PgTestContext canceller = new PgTestContext(module);
        byte[] cancel = cancelRequest(4711, key);
        canceller.client(cancel);
        assertThat(canceller.recording.identities).as("never admitted, never counted").isEmpty();
        assertThat(canceller.recording.asideTargets).containsExactly(InetSocketAddress.createUnresolved("127.0.0.1", 5432));
        EmbeddedChannel aside = canceller.asideChannels.get(0);
        ByteBuf sent = aside.readOutbound();
        assertThat(ByteBufUtil.getBytes(sent)).isEqualTo(cancel);
        sent.release();
        assertThat(canceller.recording.closed).as("waits for the server, as libpq does").isFalse();
        assertThat(canceller.session.clientError(new ProxyError(ProxyError.Kind.SHUTDOWN, "x", ""))).isNull();
        aside.close();
        assertThat(canceller.recording.closed).isTrue();
        canceller.closeAndCheckBuffers();
        owner.closeAndCheckBuffers();
        assertThat(module.cancelRoutes()).isZero();
    }

    @Test
    void aCancelAfterARefusedSslRequestIsForwardedToo() {
        byte[] key = key(4, 5);
        PgTestContext owner = sessionWithKey(12, key, PgMessages.PROTOCOL_3_0);
        PgTestContext canceller = new PgTestContext(module);
        canceller.client(sslRequest());
        canceller.client(cancelRequest(12, key));
        assertThat(canceller.recording.takeToClient()).containsExactly('N');
        assertThat(canceller.asideChannels).hasSize(1);
        canceller.asideChannels.get(0).close();
        canceller.closeAndCheckBuffers();
        owner.closeAndCheckBuffers();
    }

    @Test
    void anUnknownKeyJustClosesAsTheServerDoes() {
        PgTestContext owner = sessionWithKey(12, key(4, 5), PgMessages.PROTOCOL_3_0);
        PgTestContext canceller = new PgTestContext(module);
        canceller.client(cancelRequest(12, key(4, 6)));
        assertThat(canceller.asideChannels).isEmpty();
        assertThat(canceller.recording.closed).isTrue();
        assertThat(canceller.recording.takeToClient()).isEmpty();
        canceller.closeAndCheckBuffers();
        owner.closeAndCheckBuffers();
    }

    @Test
    void aClosedSessionsKeyNoLongerRoutes() {
        byte[] key = key(4, 5);
        sessionWithKey(12, key, PgMessages.PROTOCOL_3_0).closeAndCheckBuffers();
        PgTestContext canceller = new PgTestContext(module);
        canceller.client(cancelRequest(12, key));
        assertThat(canceller.asideChannels).isEmpty();
        assertThat(canceller.recording.closed).isTrue();
        canceller.closeAndCheckBuffers();
    }

    @Test
    void anUnreachableUpstreamClosesTheCancelConnection() {
        byte[] key = key(4, 5);
        PgTestContext owner = sessionWithKey(12, key, PgMessages.PROTOCOL_3_0);
        PgTestContext canceller = new PgTestContext(module);
        canceller.asideConnects = false;
        canceller.client(cancelRequest(12, key));
        assertThat(canceller.recording.closed).isTrue();
        assertThat(canceller.recording.logLines).anyMatch(line -> line.contains("could not forward a cancel request"));
        canceller.closeAndCheckBuffers();
        owner.closeAndCheckBuffers();
    }

    @Test
    void bytesAfterACancelRequestAreDropped() {
        byte[] key = key(4, 5);
        PgTestContext owner = sessionWithKey(12, key, PgMessages.PROTOCOL_3_0);
        PgTestContext canceller = new PgTestContext(module);
        canceller.client(concat(cancelRequest(12, key), new byte[] {1, 2, 3}));
        canceller.client(new byte[] {4});
        EmbeddedChannel aside = canceller.asideChannels.get(0);
        ByteBuf sent = aside.readOutbound();
        assertThat(sent.readableBytes()).isEqualTo(16);
        sent.release();
        assertThat((Object) aside.readOutbound()).isNull();
        aside.close();
        canceller.closeAndCheckBuffers();
        owner.closeAndCheckBuffers();
    }
}
