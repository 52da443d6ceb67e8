package io.connguard.postgres;

import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.SSLSocketFactory;
import javax.net.ssl.TrustManager;
import javax.net.ssl.X509TrustManager;
import java.io.IOException;
import java.net.InetAddress;
import java.net.Socket;
import java.security.GeneralSecurityException;
import java.security.cert.X509Certificate;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

/**
 * pgjdbc's {@code sslfactory} for tests: encrypts like {@code sslmode=require} (no certificate check) and
 * keeps every socket it made, so a test can look at the TLS session the driver has on its side (version,
 * cipher, ALPN, the certificate connguard presented).
 */
public final class RecordingSslFactory extends SSLSocketFactory {

    static final List<SSLSocket> SOCKETS = new CopyOnWriteArrayList<>();

    private final SSLSocketFactory factory;

    public RecordingSslFactory() throws GeneralSecurityException {
        SSLContext context = SSLContext.getInstance("TLS");
        context.init(null, new TrustManager[] {new X509TrustManager() {
            @Override
            public void checkClientTrusted(X509Certificate[] chain, String authType) {
            }

            @Override
            public void checkServerTrusted(X509Certificate[] chain, String authType) {
            }

            @Override
            public X509Certificate[] getAcceptedIssuers() {
                return new X509Certificate[0];
            }
        }}, null);
        factory = context.getSocketFactory();
    }

    /** The socket of the last TLS connection pgjdbc opened through this factory. */
    static SSLSocket last() {
        return SOCKETS.get(SOCKETS.size() - 1);
    }

    private Socket record(Socket socket) {
        SOCKETS.add((SSLSocket) socket);
        return socket;
    }

    @Override
    public String[] getDefaultCipherSuites() {
        return factory.getDefaultCipherSuites();
    }

    @Override
    public String[] getSupportedCipherSuites() {
        return factory.getSupportedCipherSuites();
    }

    @Override
    public Socket createSocket(Socket socket, String host, int port, boolean autoClose) throws IOException {
        return record(factory.createSocket(socket, host, port, autoClose));
    }

    @Override
    public Socket createSocket(String host, int port) throws IOException {
        return record(factory.createSocket(host, port));
    }

    @Override
    public Socket createSocket(String host, int port, InetAddress localHost, int localPort) throws IOException {
        return record(factory.createSocket(host, port, localHost, localPort));
    }

    @Override
    public Socket createSocket(InetAddress host, int port) throws IOException {
        return record(factory.createSocket(host, port));
    }

    @Override
    public Socket createSocket(InetAddress address, int port, InetAddress localAddress, int localPort)
            throws IOException {
        return record(factory.createSocket(address, port, localAddress, localPort));
    }
}
