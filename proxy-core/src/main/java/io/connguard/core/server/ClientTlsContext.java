package io.connguard.core.server;

import io.connguard.core.config.ListenerConfig.ClientTls;
import io.connguard.core.config.TlsIdentity;
import io.netty.buffer.ByteBufAllocator;
import io.netty.handler.ssl.ApplicationProtocolConfig;
import io.netty.handler.ssl.OpenSsl;
import io.netty.handler.ssl.SslContext;
import io.netty.handler.ssl.SslContextBuilder;
import io.netty.handler.ssl.SslHandler;
import io.netty.handler.ssl.SslProvider;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import javax.net.ssl.SSLException;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.security.cert.X509Certificate;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;

/**
 * The server-side TLS context of one listener's client leg, as {@code clientTls} says: the certificate
 * from {@code certFile} / {@code keyFile} (re-read by {@link #reloadIfChanged()} when the files change, so
 * a renewed Kubernetes Secret takes effect for new handshakes while open sessions keep theirs) or a
 * self-signed one made at start; TLS 1.2 and 1.3 through the JDK's provider; the protocol's ALPN name
 * offered when it has one (a client offering only other names is refused with {@code no_application_protocol}).
 */
public final class ClientTlsContext {

    private static final Logger LOG = LoggerFactory.getLogger(ClientTlsContext.class);
    private static final String[] PROTOCOLS = {"TLSv1.3", "TLSv1.2"};

    private final String listener;
    private final ClientTls config;
    private final List<String> applicationProtocols;
    private volatile SslContext context;
    private volatile String description;
    /** The file contents in force or last refused; touched only by the thread that calls reloadIfChanged. */
    private byte[] certPem;
    private byte[] keyPem;

    private ClientTlsContext(String listener, ClientTls config, List<String> applicationProtocols) {
        this.listener = listener;
        this.config = config;
        this.applicationProtocols = List.copyOf(applicationProtocols);
    }

    /**
     * The context for a listener, or null when {@code clientTls.mode} is disable.
     *
     * @param applicationProtocols the ALPN names the protocol answers to (PostgreSQL: {@code postgresql}); may be empty
     */
    public static ClientTlsContext build(String listener, ClientTls config, List<String> applicationProtocols)
            throws TlsIdentity.Invalid, GeneralSecurityException, SSLException {
        if (!config.mode().enabled()) {
            return null;
        }
        ClientTlsContext tls = new ClientTlsContext(listener, config, applicationProtocols);
        if (config.fromFiles()) {
            byte[] cert = TlsIdentity.readAll(config.certFile(), "certFile");
            byte[] key = TlsIdentity.readAll(config.keyFile(), "keyFile");
            tls.use(TlsIdentity.parse(cert, config.certFile(), key, config.keyFile()), "certFile " + config.certFile());
            tls.certPem = cert;
            tls.keyPem = key;
        } else {
            tls.use(SelfSignedCertificate.create(), "a self-signed certificate");
        }
        LOG.atInfo().addKeyValue("listener", listener).log("client TLS ({}, {}) with {}",
                config.mode().name().toLowerCase(java.util.Locale.ROOT), provider(), tls.description);
        return tls;
    }

    private void use(TlsIdentity identity, String source) throws SSLException {
        SslProvider provider = provider();
        SslContextBuilder builder = SslContextBuilder
                .forServer(identity.key(), identity.chain().toArray(new X509Certificate[0]))
                .sslProvider(provider)
                .protocols(PROTOCOLS);
        if (!applicationProtocols.isEmpty()) {
            // The JDK refuses a client that offers only other names with no_application_protocol; OpenSSL
            // (through Netty) cannot, it goes on without ALPN, which the protocol then refuses itself.
            builder.applicationProtocolConfig(new ApplicationProtocolConfig(ApplicationProtocolConfig.Protocol.ALPN,
                    provider == SslProvider.JDK ? ApplicationProtocolConfig.SelectorFailureBehavior.FATAL_ALERT
                            : ApplicationProtocolConfig.SelectorFailureBehavior.NO_ADVERTISE,
                    ApplicationProtocolConfig.SelectedListenerFailureBehavior.ACCEPT, applicationProtocols));
        }
        context = builder.build();
        description = source + " (" + describe(identity.chain().get(0)) + ")";
    }

    /**
     * BoringSSL through netty-tcnative when its native library loads (it costs the proxy less CPU per TLS
     * record than the JDK's provider), the JDK's otherwise; {@code -Dconnguard.tls=jdk} forces the JDK's.
     */
    static SslProvider provider() {
        boolean forceJdk = "jdk".equalsIgnoreCase(System.getProperty("connguard.tls"));
        return !forceJdk && OpenSsl.isAvailable() ? SslProvider.OPENSSL : SslProvider.JDK;
    }

    private static String describe(X509Certificate certificate) {
        String fingerprint;
        try {
            fingerprint = HexFormat.ofDelimiter(":").withUpperCase()
                    .formatHex(MessageDigest.getInstance("SHA-256").digest(certificate.getEncoded()));
        } catch (GeneralSecurityException e) {
            fingerprint = "?";
        }
        return "subject " + certificate.getSubjectX500Principal().getName() + ", valid until "
                + certificate.getNotAfter().toInstant() + ", SHA-256 " + fingerprint;
    }

    /** A handler for a new client connection, with the certificate in force now. */
    public SslHandler newHandler(ByteBufAllocator alloc) {
        return context.newHandler(alloc);
    }

    public ClientTls config() {
        return config;
    }

    /** Where the certificate comes from and which it is, for log lines. */
    public String describe() {
        return description;
    }

    /**
     * Re-reads {@code certFile} and {@code keyFile}; when their content changed and they still make a valid
     * pair, new handshakes use them from now on (sessions already encrypted keep their keys). A pair that
     * does not validate (for example a Secret caught half-updated) is logged once and the certificate in
     * force stays. Returns true when the certificate was replaced. Blocking file I/O: call it from one
     * thread that is not an event loop.
     */
    public boolean reloadIfChanged() {
        if (!config.fromFiles()) {
            return false;
        }
        byte[] cert;
        byte[] key;
        try {
            cert = TlsIdentity.readAll(config.certFile(), "certFile");
            key = TlsIdentity.readAll(config.keyFile(), "keyFile");
        } catch (TlsIdentity.Invalid e) {
            return false; // mid-swap or briefly absent: the next check sees the files again
        }
        if (Arrays.equals(cert, certPem) && Arrays.equals(key, keyPem)) {
            return false;
        }
        certPem = cert;
        keyPem = key;
        try {
            use(TlsIdentity.parse(cert, config.certFile(), key, config.keyFile()), "certFile " + config.certFile());
        } catch (TlsIdentity.Invalid | SSLException e) {
            LOG.atWarn().addKeyValue("listener", listener)
                    .log("listener {}: the client TLS certificate files changed but cannot be used, keeping the "
                            + "previous certificate: {}", listener, e.getMessage());
            return false;
        }
        LOG.atInfo().addKeyValue("listener", listener).log("listener {}: client TLS certificate reloaded: {}",
                listener, description);
        return true;
    }
}
