package io.connguard.core.session;

import io.connguard.core.admission.ClientPolicy;
import io.connguard.core.metrics.ProxyMetrics;
import io.connguard.core.server.Transport;
import io.connguard.core.server.UpstreamResolver;
import io.netty.channel.group.ChannelGroup;

/** What every session of a proxy shares: the registry, the policy in force, metrics and I/O plumbing. */
public interface ProxyServices {

    SessionRegistry registry();

    ProxyMetrics metrics();

    /** The client policy of the configuration in force (replaced on reload). */
    ClientPolicy policy();

    Transport transport();

    UpstreamResolver resolver();

    /**
     * Every open client and upstream connection, so that stopping closes them all: a channel leaves when it
     * closes, and one added after the group was closed is closed at once.
     */
    ChannelGroup channels();
}
