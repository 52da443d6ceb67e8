package io.connguard.postgres;

import io.connguard.core.api.ClientTlsSession;
import io.connguard.core.api.SessionContext;
import io.netty.buffer.ByteBuf;
import io.netty.util.concurrent.Future;

import java.nio.charset.StandardCharsets;

/**
 * The client leg's encryption negotiation of one {@link PgSession}: it answers SSLRequest ('S' and TLS
 * through core when the listener's {@code clientTls} offers it, else 'N') and GSSENCRequest (always 'N'),
 * takes a TLS ClientHello sent as the very first bytes (direct TLS) and checks its ALPN, and, with TLS on
 * both legs, looks at the client's SASL choice for channel binding. The session creates it at the
 * client's first encryption request (a plaintext client never has one) and drops it when the relay
 * starts, or after the client's first message when that SASL choice is watched: an idle session keeps none.
 *
 * @see <a href="https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-SSL">SSL session encryption</a>
 */
final class PgClientEncryption {

    private static final byte[] SCRAM_PLUS = "SCRAM-SHA-256-PLUS\0".getBytes(StandardCharsets.US_ASCII);
    /** The ALPN protocol name of PostgreSQL over TLS. */
    static final String ALPN = "postgresql";

    private final PgSession session;
    private final SessionContext context;
    private boolean sslAnswered;
    private boolean gssAnswered;
    /** TLS with the client has started (by SSLRequest or directly): what follows is decrypted. */
    private boolean encrypted;
    private boolean directTls;
    /** The SSLRequest was answered 'N' ({@code clientTls: disable}). */
    private boolean sslRefused;

    PgClientEncryption(PgSession session, SessionContext context) {
        this.session = session;
        this.context = context;
    }

    /** Answers one encryption request; {@code parser} holds what the client sent after it. */
    void answer(PgNegotiationRequest request, PgStartupParser parser) {
        switch (request) {
            case SSL_REQUEST -> answerSslRequest(parser);
            case GSSENC_REQUEST -> refuseGssEncryption(parser);
            case DIRECT_TLS -> directTls(parser);
        }
    }

    /** TLS with the client has started: the start-up packets that follow are decrypted. */
    boolean encrypted() {
        return encrypted;
    }

    /** The SSLRequest was answered 'N': a client that hangs up now wanted TLS. */
    boolean sslRefused() {
        return sslRefused;
    }

    /**
     * The relay starts (the client's StartupMessage went to the server): returns whether the client's first
     * message is to be watched ({@link #checkSaslChoice}), which is when both legs are TLS; if not, the
     * session drops this object.
     */
    boolean watchSaslChoice(boolean upstreamTls) {
        return encrypted && upstreamTls;
    }

    /**
     * Answers SSLRequest: 'S' and TLS through core when the listener offers it, else 'N' (the proxy then
     * cannot see through encryption on the client leg, so {@code sslmode=prefer} clients continue in
     * plaintext and {@code require} clients stop with their own error). It is answered once (the parser
     * reads a second one as a StartupMessage of protocol 1234.5679, which the server refuses), and not over
     * direct TLS. Bytes the client sent after it, before the answer, were sent in plaintext and could have
     * been injected: refused as PostgreSQL refuses them (CVE-2021-23214, CVE-2021-23222).
     */
    private void answerSslRequest(PgStartupParser parser) {
        if (encrypted) {
            session.fail("SSLRequest over an encrypted connection");
            return;
        }
        sslAnswered = true;
        if (!context.listener().clientTls().enabled()) {
            sslRefused = true;
            context.toClient(context.alloc().buffer(1).writeByte('N'));
            refuseEarlyBytes(parser, "received unencrypted data after SSL request");
            return;
        }
        context.toClient(context.alloc().buffer(1).writeByte('S'));
        if (parser.buffered() > 0) {
            session.fail("received unencrypted data after SSL request");
            return;
        }
        startClientTls(null);
    }

    /** GSSENCRequest is always answered 'N' (the proxy speaks no GSSAPI); once (as above), and not over TLS. */
    private void refuseGssEncryption(PgStartupParser parser) {
        if (encrypted && sslAnswered) {
            // After TLS by SSLRequest the server takes no second encryption request and reads it as a version.
            session.refuse(PgStartupMessage.unsupportedVersion(PgStartupParser.GSSENC_REQUEST_CODE));
            return;
        }
        if (encrypted) {
            session.fail("GSSENCRequest over an encrypted connection");
            return;
        }
        gssAnswered = true;
        context.toClient(context.alloc().buffer(1).writeByte('N'));
        refuseEarlyBytes(parser, "received unencrypted data after GSSAPI encryption request");
    }

    /** After an 'N': what came with the request, before its answer, gets the server's FATAL error. */
    private void refuseEarlyBytes(PgStartupParser parser, String message) {
        if (parser.buffered() > 0) {
            session.refuse(PgInvalidPacket.fatal(new PgStartupReply("08P01", message,
                    "This could be either a client-software bug or evidence of an attempted man-in-the-middle attack.",
                    null, false)));
        }
    }

    /**
     * The client opened with a TLS ClientHello (PostgreSQL 17's {@code sslnegotiation=direct}): TLS through
     * core when the listener offers it, as the very first bytes only; the handshake must then agree on ALPN
     * {@code postgresql} (checked in {@link #clientTlsDone}).
     */
    private void directTls(PgStartupParser parser) {
        if (encrypted || sslAnswered || gssAnswered) {
            // Only the very first byte may open TLS; later the server reads 0x16... as a length, and closes.
            session.refuse(PgInvalidPacket.silent(PgInvalidPacket.INVALID_LENGTH));
            return;
        }
        if (!context.listener().clientTls().enabled()) {
            context.clientTlsRefused(null, "a direct TLS handshake, sslnegotiation=direct");
            context.log().debug("client opened with a TLS handshake (sslnegotiation=direct) but this listener "
                    + "does not accept TLS from clients (clientTls: disable); closing. Connect with "
                    + "sslmode=disable or prefer and the default sslnegotiation=postgres");
            session.closeNow();
            return;
        }
        directTls = true;
        startClientTls(parser.takeRemainder());
    }

    private void startClientTls(ByteBuf alreadyRead) {
        session.clientTlsStarted();
        encrypted = true;
        context.startClientTls(alreadyRead).addListener(this::clientTlsDone);
    }

    /** The handshake is over (on failure core has ended the session): read the decrypted start-up packets. */
    private void clientTlsDone(Future<? super ClientTlsSession> handshake) {
        if (!handshake.isSuccess() || !session.inClientTls()) {
            return;
        }
        ClientTlsSession tls = (ClientTlsSession) handshake.getNow();
        if (directTls && !ALPN.equals(tls.applicationProtocol())) {
            // PostgreSQL 17 refuses the same way, over the established TLS connection.
            session.fail("received direct SSL connection request without ALPN protocol negotiation extension "
                    + "(a client using sslnegotiation=direct must offer ALPN \"postgresql\")");
            return;
        }
        session.clientTlsReady();
    }

    /**
     * With TLS on both legs the server offers SCRAM-SHA-256-PLUS, and a client that takes it binds its
     * login to connguard's certificate, which the server refuses ("SCRAM channel binding check failed").
     * The proxy cannot repair that (channel binding exists to detect a party in the middle), so it says
     * what to change. Looks only at the client's first password message (SASLInitialResponse), if whole
     * in one read. Returns whether to go on watching (nothing read yet, or the message is split).
     */
    boolean checkSaslChoice(ByteBuf bytes) {
        int at = bytes.readerIndex();
        if (!bytes.isReadable()) {
            return true;
        }
        if (bytes.getByte(at) != 'p') {
            return false; // the client's first message is not a password message: no SCRAM
        }
        if (bytes.readableBytes() < 5 + SCRAM_PLUS.length) {
            return true; // split: the check is a hint, not a rule; the next read may hold the rest
        }
        for (int i = 0; i < SCRAM_PLUS.length; i++) {
            if (bytes.getByte(at + 5 + i) != SCRAM_PLUS[i]) {
                return false;
            }
        }
        context.log().warn("the client chose SCRAM-SHA-256-PLUS (channel binding), which fails through connguard "
                + "when both legs are TLS: the server binds the login to its own certificate, the client to "
                + "connguard's. Set channel_binding=disable (libpq) or channelBinding=disable (pgjdbc) on the client");
        return false;
    }
}
