package io.connguard.core.session;

import io.connguard.core.admission.ClientPolicy;
import io.connguard.core.api.ClientIdentity;
import io.connguard.core.api.ClientTlsSession;
import io.connguard.core.api.ProxyError;
import io.connguard.core.metrics.CloseReason;
import io.connguard.core.server.ClientTlsContext;
import io.connguard.core.session.Session.Phase;
import io.netty.buffer.ByteBuf;
import io.netty.channel.Channel;
import io.netty.handler.ssl.SslHandler;
import io.netty.util.ReferenceCountUtil;
import io.netty.util.concurrent.Future;
import io.netty.util.concurrent.Promise;
import org.slf4j.event.Level;

import java.nio.channels.ClosedChannelException;

/**
 * TLS as a {@link Session}'s protocol asks for it: starting TLS on the upstream channel, starting it on the
 * client channel (through {@link ClientTlsLeg}) with its metrics and log lines, and the refusals when the
 * client and the listener's clientTls.mode disagree (logged once per client).
 *
 * <p>Owns whether client TLS was started and whether its handshake is still running (the close then sends
 * no error packet). Runs on the session's event loop.
 */
final class SessionTls {

    private final Session s;
    private boolean clientTlsStarted;
    private boolean clientTlsHandshaking;

    SessionTls(Session session) {
        this.s = session;
    }

    /** Whether the TLS handshake with the client is running now (no plaintext error can be sent). */
    boolean clientHandshaking() {
        return clientTlsHandshaking;
    }

    /** The protocol starts TLS with the server on the upstream channel; a failure closes the session. */
    Future<Channel> startUpstreamTls() {
        if (s.upstream == null) {
            return s.loop().newFailedFuture(new IllegalStateException("no upstream connection yet"));
        }
        s.upstream.flush();
        return UpstreamConnector.startTls(s.upstream, s.listener).addListener(done -> {
            if (!done.isSuccess()) {
                s.upstreamFailed(UpstreamConnector.describeTlsFailure(done.cause(), s.listener));
            } else if (s.phase == Phase.CONNECTED) {
                s.upstream.read();
            }
        });
    }

    /** The protocol starts TLS with the client, fed the bytes it already read; a failure closes the session. */
    Future<ClientTlsSession> startClientTls(ByteBuf alreadyRead) {
        ClientTlsContext tls = s.listener.clientTls();
        if (s.phase == Phase.CLOSED || clientTlsStarted || tls == null) {
            ReferenceCountUtil.release(alreadyRead);
            String why = clientTlsStarted ? "client TLS started twice"
                    : "listener " + s.listener.name() + " does not offer TLS to clients";
            if (s.phase != Phase.CLOSED) {
                s.log().at(Level.WARN).log("cannot start TLS with the client: {}", why);
                s.close(s.identity == null ? null : CloseReason.PROTOCOL_ERROR, null);
            }
            return s.loop().newFailedFuture(new IllegalStateException(why));
        }
        s.client.flush(); // the protocol's plaintext answer ('S') goes out before the handshake
        clientTlsStarted = true;
        clientTlsHandshaking = true;
        Promise<ClientTlsSession> result = s.loop().newPromise();
        SslHandler handler = ClientTlsLeg.start(s.client, tls, alreadyRead);
        handler.handshakeFuture().addListener(done -> {
            clientTlsHandshaking = false;
            s.listener.meters().clientTlsHandshake(done.isSuccess());
            if (done.isSuccess()) {
                ClientTlsSession agreed = ClientTlsLeg.describe(handler);
                s.debug("client TLS established: {}", agreed);
                result.trySuccess(agreed);
                return;
            }
            if (!(s.phase == Phase.CLOSED && done.cause() instanceof ClosedChannelException)) {
                // (else the session closed the connection itself, handshakeTimeout or a kill, and said why)
                s.log().at(Level.INFO).addKeyValue("reason", "client_tls")
                        .log("TLS handshake with the client failed: {}", ClientTlsLeg.describeFailure(done.cause()));
            }
            s.close(s.identity == null ? null : CloseReason.CLIENT, null);
            result.tryFailure(done.cause());
        });
        return result;
    }

    /** The client asked for TLS on a listener that does not offer it: counted, logged once per client. */
    void clientTlsRefused(ClientIdentity who, String request) {
        s.listener.meters().clientTlsRefused();
        String client = describeForLog(who);
        if (s.listener.tlsMismatchLogged().first("tls " + request + " " + client)) {
            s.log().at(Level.WARN).addKeyValue("reason", "client_tls_refused").log("client {} asked for TLS ({}) but "
                    + "listener {} does not offer TLS to clients (clientTls.mode: disable); set clientTls.mode to "
                    + "allow or require on this listener, or connect without requiring TLS", client, request,
                    s.listener.name());
        }
    }

    /** The client came without TLS to a listener that requires it: counted, logged once, refused. */
    void plaintextRefused(ClientIdentity who) {
        if (s.phase == Phase.CLOSED) {
            return;
        }
        s.listener.meters().clientPlaintextRefused();
        String client = describeForLog(who);
        if (s.listener.tlsMismatchLogged().first("plaintext " + client)) {
            s.log().at(Level.WARN).addKeyValue("reason", "client_plaintext_refused").log("client {} connected without "
                    + "TLS but listener {} requires it (clientTls.mode: require); refused", client, s.listener.name());
        }
        s.close(null, new ProxyError(ProxyError.Kind.TLS_REQUIRED, "connection without TLS refused: connguard listener "
                + s.listener.name() + " accepts only TLS connections (clientTls.mode: require)",
                "Connect with TLS (PostgreSQL sslmode=require, MySQL sslMode=REQUIRED)."));
    }

    /** The client key for a once-per-client log line, or its address before it is named. */
    private String describeForLog(ClientIdentity who) {
        if (who == null) {
            return "at " + s.address();
        }
        ClientPolicy policy = s.services.policy();
        return policy.key(s.listener.name(), who, s.address()).describe(policy.identity());
    }
}
