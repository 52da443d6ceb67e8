package io.connguard.postgres;

import io.connguard.core.api.SessionContext;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.channel.Channel;
import io.netty.util.concurrent.Future;

import java.util.Locale;

/**
 * The upstream leg's TLS negotiation of a {@link PgSession} on a listener with {@code upstreamTls}: the
 * proxy's own SSLRequest, the server's one-byte answer to it, and the handshake core runs after an 'S'.
 * Only static helpers taking the session: the negotiation's one piece of state is the session's phase, so
 * a session carries nothing for it.
 *
 * @see <a href="https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-SSL">SSL session encryption</a>
 */
final class PgUpstreamTls {

    private static final int SSL_REQUEST_LENGTH = 8;

    private PgUpstreamTls() {
    }

    /** The proxy's SSLRequest: the first bytes on the upstream connection. */
    static ByteBuf sslRequest(ByteBufAllocator alloc) {
        return alloc.buffer(SSL_REQUEST_LENGTH).writeInt(SSL_REQUEST_LENGTH).writeInt(PgStartupParser.SSL_REQUEST_CODE);
    }

    /**
     * The server's one-byte answer to our SSLRequest ({@code bytes}, released here): an 'S' starts the
     * handshake, anything else fails the session saying why. Bytes after an 'S' would have been sent in
     * plaintext before the handshake: refused, as libpq refuses them (CVE-2021-23222).
     */
    static void answer(PgSession session, SessionContext context, ByteBuf bytes) {
        if (!bytes.isReadable()) {
            bytes.release();
            return;
        }
        byte answer = bytes.getByte(bytes.readerIndex());
        int extra = bytes.readableBytes() - 1;
        bytes.release();
        if (answer == 'S' && extra == 0) {
            session.upstreamTlsStarted();
            context.startUpstreamTls().addListener(handshake -> handshakeDone(session, context, handshake));
            return;
        }
        if (answer == 'S') {
            session.upstreamFailed("server sent unencrypted data after accepting TLS");
        } else if (answer == 'N') {
            session.upstreamFailed("server does not support TLS (it answered the SSLRequest with N) but upstreamTls.mode is "
                    + context.listener().upstreamTls().name().toLowerCase(Locale.ROOT).replace('_', '-'));
        } else {
            session.upstreamFailed(String.format("unexpected answer 0x%02x to SSLRequest", answer & 0xFF));
        }
    }

    private static void handshakeDone(PgSession session, SessionContext context, Future<? super Channel> handshake) {
        if (!context.eventLoop().inEventLoop()) {
            context.eventLoop().execute(() -> handshakeDone(session, context, handshake));
            return;
        }
        // On failure core has ended the session already.
        if (handshake.isSuccess()) {
            session.upstreamTlsReady();
        }
    }
}
