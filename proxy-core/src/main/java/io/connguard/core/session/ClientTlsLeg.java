package io.connguard.core.session;

import io.connguard.core.api.ClientTlsSession;
import io.connguard.core.server.ClientTlsContext;
import io.netty.buffer.ByteBuf;
import io.netty.channel.Channel;
import io.netty.handler.codec.DecoderException;
import io.netty.handler.ssl.NotSslRecordException;
import io.netty.handler.ssl.SslHandler;

import javax.net.ssl.SSLSession;
import java.nio.channels.ClosedChannelException;

/**
 * Puts TLS in front of a session's client channel: an {@link SslHandler} at the head of the pipeline, fed
 * the bytes the protocol already read, and the words for how its handshake ended. The session keeps
 * reading the client while the handshake runs (it has no upstream yet), and the handler reads for itself
 * while a record is incomplete, so auto-read stays off and backpressure stays the session's.
 */
final class ClientTlsLeg {

    static final String HANDLER_NAME = "client-tls";

    private ClientTlsLeg() {
    }

    /** Installs the handler and hands it {@code alreadyRead} (released when empty); returns the handler. */
    static SslHandler start(Channel client, ClientTlsContext tls, ByteBuf alreadyRead) {
        SslHandler handler = tls.newHandler(client.alloc());
        handler.setHandshakeTimeoutMillis(0); // the session's handshakeTimeout covers the TLS handshake too
        client.pipeline().addFirst(HANDLER_NAME, handler);
        if (alreadyRead != null && alreadyRead.isReadable()) {
            client.pipeline().fireChannelRead(alreadyRead);
            // This read batch began before the handler was there, so its end will not flush the handler's
            // answer (ServerHello): flush it now.
            client.flush();
        } else if (alreadyRead != null) {
            alreadyRead.release();
        }
        return handler;
    }

    /** What the finished handshake agreed on. */
    static ClientTlsSession describe(SslHandler handler) {
        SSLSession session = handler.engine().getSession();
        String alpn = handler.applicationProtocol();
        return new ClientTlsSession(session.getProtocol(), session.getCipherSuite(), alpn == null ? "" : alpn);
    }

    static String describeFailure(Throwable cause) {
        Throwable root = cause instanceof DecoderException && cause.getCause() != null ? cause.getCause() : cause;
        if (root instanceof ClosedChannelException) {
            return "the client closed the connection during the handshake";
        }
        if (root instanceof NotSslRecordException) {
            return "the client did not send TLS";
        }
        String message = root.getMessage();
        return message == null ? root.getClass().getSimpleName() : message;
    }
}
