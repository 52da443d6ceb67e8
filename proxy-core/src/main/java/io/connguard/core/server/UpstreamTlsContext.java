package io.connguard.core.server;

import io.connguard.core.api.ListenerInfo.UpstreamTlsMode;
import io.connguard.core.config.ListenerConfig.UpstreamTls;
import io.netty.buffer.ByteBufAllocator;
import io.netty.handler.ssl.SslContext;
import io.netty.handler.ssl.SslContextBuilder;
import io.netty.handler.ssl.SslHandler;
import io.netty.handler.ssl.SslProvider;
import io.netty.handler.ssl.util.InsecureTrustManagerFactory;

import javax.net.ssl.SSLException;

/**
 * The client-side TLS context for one listener's upstream, as {@code upstreamTls.mode} says:
 * {@code require} encrypts without checking the certificate (like libpq's sslmode=require),
 * {@code verify-ca} checks the chain against {@code caFile}, {@code verify-full} also checks that the
 * certificate names the upstream host.
 */
public final class UpstreamTlsContext {

    private final UpstreamTls tls;
    private final SslContext context;

    private UpstreamTlsContext(UpstreamTls tls, SslContext context) {
        this.tls = tls;
        this.context = context;
    }

    /** Null when TLS is off. */
    public static UpstreamTlsContext build(UpstreamTls tls) throws SSLException {
        if (tls.mode() == UpstreamTlsMode.DISABLE) {
            return null;
        }
        SslContextBuilder builder = SslContextBuilder.forClient().sslProvider(SslProvider.JDK);
        if (tls.mode() == UpstreamTlsMode.REQUIRE) {
            builder.trustManager(InsecureTrustManagerFactory.INSTANCE).endpointIdentificationAlgorithm(null);
        } else {
            builder.trustManager(tls.caFile().toFile());
            builder.endpointIdentificationAlgorithm(tls.mode() == UpstreamTlsMode.VERIFY_FULL ? "HTTPS" : null);
        }
        return new UpstreamTlsContext(tls, builder.build());
    }

    public SslHandler newHandler(ByteBufAllocator alloc, String host, int port) {
        return context.newHandler(alloc, host, port);
    }

    /** Names the mode and CA file, for error messages. */
    public String describe() {
        String mode = tls.mode().name().toLowerCase(java.util.Locale.ROOT).replace('_', '-');
        return tls.caFile() == null ? "upstreamTls.mode " + mode : "upstreamTls.mode " + mode + ", caFile " + tls.caFile();
    }
}
