package io.connguard.core.session;

import io.connguard.core.testing.LeakGuard;
import io.connguard.core.testing.LineClient;
import io.connguard.core.testing.TestProxy;
import io.connguard.core.testing.TestUpstreams;
import io.netty.channel.Channel;
import io.netty.channel.ChannelOption;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

import java.util.List;
import java.util.concurrent.TimeUnit;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.awaitility.Awaitility.await;

/** The socket options of both legs of a session, which the proxy leaves to Netty's defaults or sets itself. */
@ExtendWith(LeakGuard.class)
class SessionSocketsIT {

    @Test
    void bothLegsSendAtOnceAndKeepAlive() throws Exception {
        try (TestUpstreams upstreams = new TestUpstreams();
             TestProxy proxy = TestProxy.start("""
                     listeners:
                       - name: relay
                         protocol: line
                         listen: 127.0.0.1:0
                         upstream: 127.0.0.1:%d
                     """.formatted(upstreams.echo().getPort()));
             LineClient client = LineClient.hello(proxy.port("relay"), "c", "db", "app")) {
            assertThat(client.readLine()).isEqualTo("WELCOME");
            await().atMost(5, TimeUnit.SECONDS).until(() -> proxy.server().registry().size() == 1);
            Session session = proxy.server().registry().all().iterator().next();
            List<Channel> channels = session.eventLoop().submit(session::channels).get(5, TimeUnit.SECONDS);
            assertThat(channels).hasSize(2).allSatisfy(channel -> {
                assertThat(channel.config().getOption(ChannelOption.TCP_NODELAY)).as("no Nagle delay").isTrue();
                assertThat(channel.config().getOption(ChannelOption.SO_KEEPALIVE)).isTrue();
            });
        }
    }

    /**
     * {@code handshakeTimeout: 0} and {@code connectTimeout: 0} turn those timers off as 0 does for every timer:
     * a silent client outlives one that a 300ms handshakeTimeout closes, and the upstream connect carries no
     * Netty timeout (the OS's own applies).
     */
    @Test
    void zeroHandshakeAndConnectTimeoutsAreOff() throws Exception {
        try (TestUpstreams upstreams = new TestUpstreams();
             TestProxy proxy = TestProxy.start("""
                     listeners:
                       - name: untimed
                         protocol: line
                         listen: 127.0.0.1:0
                         upstream: 127.0.0.1:%1$d
                         connectTimeout: 0
                         handshakeTimeout: 0
                       - name: timed
                         protocol: line
                         listen: 127.0.0.1:0
                         upstream: 127.0.0.1:%1$d
                         connectTimeout: 4s
                         handshakeTimeout: 300ms
                     """.formatted(upstreams.echo().getPort()));
             LineClient untimed = new LineClient(proxy.port("untimed"));
             LineClient timed = new LineClient(proxy.port("timed"))) {
            assertThat(timed.readLine()).as("the control is closed at its handshakeTimeout").startsWith("ERROR");
            assertThat(timed.closedByPeer()).isTrue();
            untimed.socket().setSoTimeout(500);
            assertThatThrownBy(() -> untimed.input().read()).as("no timer closes the silent client")
                    .isInstanceOf(java.net.SocketTimeoutException.class);
            untimed.socket().setSoTimeout(20_000);
            untimed.send("HELLO late db app\n");
            assertThat(untimed.readLine()).isEqualTo("WELCOME");
            await().atMost(5, TimeUnit.SECONDS).until(() -> proxy.server().registry().size() == 1);
            Session session = proxy.server().registry().all().iterator().next();
            List<Channel> channels = session.eventLoop().submit(session::channels).get(5, TimeUnit.SECONDS);
            assertThat(channels.get(1).config().getOption(ChannelOption.CONNECT_TIMEOUT_MILLIS))
                    .as("no connect timeout of Netty's").isZero();
        }
    }
}
