package io.connguard.core.session;

import io.connguard.core.admission.ClientPolicy;
import io.connguard.core.metrics.ProxyMetrics;
import io.connguard.core.server.Transport;
import io.connguard.core.server.UpstreamResolver;

/** What every session of a proxy shares: the registry, the policy in force, metrics and I/O plumbing. */
public interface ProxyServices {

    SessionRegistry registry();

    ProxyMetrics metrics();

    /** The client policy of the configuration in force (replaced on reload). */
    ClientPolicy policy();

    Transport transport();

    UpstreamResolver resolver();
}
