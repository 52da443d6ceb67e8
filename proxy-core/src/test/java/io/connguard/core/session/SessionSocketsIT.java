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
}
