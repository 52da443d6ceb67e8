package io.connguard.core.api;

/**
 * What a finished TLS handshake on the client leg agreed on.
 *
 * @param protocol            the TLS version, e.g. {@code TLSv1.3}
 * @param cipherSuite         e.g. {@code TLS_AES_256_GCM_SHA384}
 * @param applicationProtocol the ALPN protocol chosen, or "" when the client offered none
 */
public record ClientTlsSession(String protocol, String cipherSuite, String applicationProtocol) {

    @Override
    public String toString() {
        return protocol + " " + cipherSuite + (applicationProtocol.isEmpty() ? "" : " alpn " + applicationProtocol);
    }
}
