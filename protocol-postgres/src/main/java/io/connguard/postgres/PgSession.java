package io.connguard.postgres;

import io.connguard.core.api.ClientIdentity;
import io.connguard.core.api.ClientTlsSession;
import io.connguard.core.api.ListenerInfo.ClientTlsMode;
import io.connguard.core.api.ProtocolSession;
import io.connguard.core.api.ProxyError;
import io.connguard.core.api.SessionContext;
import io.netty.buffer.ByteBuf;
import io.netty.channel.Channel;
import io.netty.util.concurrent.Future;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.net.InetSocketAddress;
import java.util.Locale;

/**
 * The PostgreSQL half of one client session: it answers the client's encryption requests (TLS through
 * core when the listener's {@code clientTls} offers it, by SSLRequest or direct TLS), reads the
 * StartupMessage and names the client to core before any upstream connection exists, forwards cancel
 * requests, negotiates TLS with the server when the listener asks for it, and then relays both streams
 * buffer by buffer while {@link PgSessionTracker} watches the message headers.
 *
 * @see <a href="https://www.postgresql.org/docs/current/protocol-flow.html">Message flow</a>,
 *     <a href="https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-SSL">SSL session encryption</a>
 */
final class PgSession implements ProtocolSession, PgSessionTracker.Owner, PgTransactionMode.Client, PgCancelRouter.Target {

    private enum Phase {
        /** Reading SSLRequest / GSSENCRequest / CancelRequest / StartupMessage. */
        STARTUP,
        /** Core runs the TLS handshake with the client; decrypted bytes are held for STARTUP. */
        CLIENT_TLS,
        /** Identified; core is admitting the session and opening the upstream connection. */
        ADMISSION,
        /** Our SSLRequest is on its way to the server; its one-byte answer is awaited. */
        UPSTREAM_SSL_REQUEST,
        /** The server accepted TLS; core runs the handshake. */
        UPSTREAM_TLS_HANDSHAKE,
        /** The StartupMessage went upstream; both streams are relayed. */
        RELAY,
        /** Pooled: the client was asked for its password (AuthenticationCleartextPassword). */
        PASSWORD,
        /** Pooled: the lent server connection is being set to the client's start-up parameters. */
        APPLYING,
        /** A CancelRequest is being forwarded; nothing else happens on this connection. */
        CANCEL,
        /** Core was told of a violation or an unusable upstream and will ask for the error, then close. */
        FAILED,
        CLOSED
    }

    private static final VarHandle CANCEL_TO;

    static {
        try {
            CANCEL_TO = MethodHandles.lookup().findVarHandle(PgSession.class, "cancelTo", PgBackendKey.class);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    private static final int SSL_REQUEST_LENGTH = 8;
    private static final byte[] SCRAM_PLUS = "SCRAM-SHA-256-PLUS\0".getBytes(java.nio.charset.StandardCharsets.US_ASCII);
    /** The ALPN protocol name of PostgreSQL over TLS. */
    static final String ALPN = "postgresql";

    private final SessionContext context;
    private final PgCancelRouter router;
    /** Reads the start-up packets and keeps early bytes; dropped when the relay starts (null from then on). */
    private PgStartupParser startupParser;
    private final PgSessionTracker tracker;
    // The two directions' scanners are the tracker's (tracker.clientScanner, tracker.serverScanner): not
    // repeated here, nor the statement capture, which the tracker holds too (8 bytes of every session).

    private Phase phase = Phase.STARTUP;
    private boolean sslAnswered;
    private boolean gssAnswered;
    /** TLS with the client has started (by SSLRequest or directly): what follows is decrypted. */
    private boolean encrypted;
    private boolean directTls;
    /** Both legs are TLS: the client's first password message is looked at for a channel-binding choice. */
    private boolean watchSaslChoice;
    /** The SSLRequest was answered 'N' ({@code clientTls: disable}). */
    private boolean sslRefused;
    /** A start-up packet refused as the server refuses it; {@link #clientError} then gives the server's reply. */
    private PgInvalidPacket refused;
    /** Core ended the session before the StartupMessage (and logged why). */
    private boolean endedByCore;
    /** The client's StartupMessage, held until the server is ready for it; released in {@link #close()}. */
    private ByteBuf startup;
    private PgBackendKey backendKey;
    /**
     * Pooled listeners: the key of the server connection a cancel with {@link #backendKey} reaches now (in
     * transaction mode, null between transactions). Read by other event loops' cancel requests ({@link #CANCEL_TO}).
     */
    @SuppressWarnings("unused") // through CANCEL_TO
    private PgBackendKey cancelTo;
    /** Who the StartupMessage named; a later application_name from the server re-keys the session. */
    private ClientIdentity identity;
    /** Pooled listeners: the start-up connguard answers itself, and the server connection lent. */
    private PgPooledStart pooled;
    private PgServerConnection server;
    /** Pooled: the client's Terminate was split across reads, so part of it reached the server. */
    private boolean terminateLeaked;
    /** Transaction mode: the client's side of borrowing a server connection per transaction (null otherwise). */
    private PgTransactionMode transactions;

    PgSession(SessionContext context, PgCancelRouter router) {
        this.context = context;
        this.router = router;
        this.startupParser = new PgStartupParser(context.alloc());
        this.tracker = new PgSessionTracker(context, new PgStatementCapture(), this);
    }

    // ---------------------------------------------------------------- client → server

    @Override
    public void onClientBytes(ByteBuf bytes) {
        switch (phase) {
            case RELAY -> {
                if (watchSaslChoice) {
                    checkSaslChoice(bytes);
                }
                tracker.clientScanner.scan(bytes);
                if (transactions != null) {
                    transactionBytes(bytes);
                } else if (server != null && tracker.terminated()) {
                    withoutTerminate(bytes);
                } else {
                    context.toUpstream(bytes);
                }
            }
            case PASSWORD -> {
                char[] password = pooled.feedPassword(bytes);
                if (password != null && phase == Phase.PASSWORD) {
                    phase = Phase.ADMISSION;
                    ByteBuf early = pooled.takeEarly();
                    if (early != null && !startupParser.feed(early)) {
                        fail("client sent too much before the server answered");
                        return;
                    }
                    context.passwordGiven(password);
                }
            }
            case STARTUP -> {
                // Packets are checked before the bound, so a bad length is refused as the server refuses it.
                startupParser.feed(bytes);
                readStartupPackets();
                // The relay may have started meanwhile (a pooled start-up answered at once): no parser then.
                if (startupParser != null && !startupParser.withinBound() && phase != Phase.FAILED
                        && phase != Phase.CLOSED) {
                    fail("client sent more than " + PgStartupParser.MAX_EARLY_BYTES
                            + " bytes before the server answered its StartupMessage");
                }
            }
            case CLIENT_TLS, ADMISSION, APPLYING, UPSTREAM_SSL_REQUEST, UPSTREAM_TLS_HANDSHAKE -> {
                // A conforming client waits for the server; keep what it sends anyway, within a bound.
                if (!startupParser.feed(bytes)) {
                    fail("client sent more than " + PgStartupParser.MAX_EARLY_BYTES
                            + " bytes before the server answered its StartupMessage");
                }
            }
            case CANCEL, FAILED, CLOSED -> bytes.release();
        }
    }

    private void readStartupPackets() {
        while (phase == Phase.STARTUP) {
            PgInitialPacket packet = startupParser.next();
            if (packet == null) {
                return;
            }
            if (packet == PgNegotiationRequest.SSL_REQUEST) {
                answerSslRequest();
            } else if (packet == PgNegotiationRequest.GSSENC_REQUEST) {
                refuseGssEncryption();
            } else if (packet == PgNegotiationRequest.DIRECT_TLS) {
                directTls();
            } else if (packet instanceof PgCancelRequest cancel) {
                phase = Phase.CANCEL;
                router.forward(context, cancel.key(), startupParser.lastPacketBytes());
            } else if (packet instanceof PgStartupMessage message) {
                if (!encrypted && context.listener().clientTls() == ClientTlsMode.REQUIRE) {
                    phase = Phase.FAILED;
                    context.plaintextRefused(message.identity());
                    return;
                }
                startup = startupParser.lastPacketBytes();
                if (context.listener().pooled()) {
                    startup.release(); // never forwarded: connguard answers the start-up itself
                    startup = null;
                    pooled = PgPooledStart.of(context, message);
                    if (pooled == null) {
                        phase = Phase.FAILED;
                        return;
                    }
                }
                phase = Phase.ADMISSION;
                context.log().debug("StartupMessage, protocol {}.{}", message.major(), message.minor());
                identity = message.identity();
                context.identified(identity);
            } else if (packet instanceof PgInvalidPacket invalid) {
                refuse(invalid);
            }
        }
    }

    /**
     * Ends the session as the server ends a connection whose start-up packet it refuses: with its FATAL
     * error, or (bad lengths, incomplete packets) without a word. Core logs and counts it as a protocol error.
     */
    private void refuse(PgInvalidPacket invalid) {
        refused = invalid;
        fail(invalid.reason());
    }

    /**
     * Answers SSLRequest: 'S' and TLS through core when the listener offers it, else 'N' (the proxy then
     * cannot see through encryption on the client leg, so {@code sslmode=prefer} clients continue in
     * plaintext and {@code require} clients stop with their own error). It is answered once (the parser
     * reads a second one as a StartupMessage of protocol 1234.5679, which the server refuses), and not over
     * direct TLS. Bytes the client sent after it, before the answer, were sent in plaintext and could have
     * been injected: refused as PostgreSQL refuses them (CVE-2021-23214, CVE-2021-23222).
     */
    private void answerSslRequest() {
        if (encrypted) {
            fail("SSLRequest over an encrypted connection");
            return;
        }
        sslAnswered = true;
        if (!context.listener().clientTls().enabled()) {
            sslRefused = true;
            context.toClient(context.alloc().buffer(1).writeByte('N'));
            refuseEarlyBytes("received unencrypted data after SSL request");
            return;
        }
        context.toClient(context.alloc().buffer(1).writeByte('S'));
        if (startupParser.buffered() > 0) {
            fail("received unencrypted data after SSL request");
            return;
        }
        startClientTls(null);
    }

    /** GSSENCRequest is always answered 'N' (the proxy speaks no GSSAPI); once (as above), and not over TLS. */
    private void refuseGssEncryption() {
        if (encrypted && sslAnswered) {
            // After TLS by SSLRequest the server takes no second encryption request and reads it as a version.
            refuse(PgStartupMessage.unsupportedVersion(PgStartupParser.GSSENC_REQUEST_CODE));
            return;
        }
        if (encrypted) {
            fail("GSSENCRequest over an encrypted connection");
            return;
        }
        gssAnswered = true;
        context.toClient(context.alloc().buffer(1).writeByte('N'));
        refuseEarlyBytes("received unencrypted data after GSSAPI encryption request");
    }

    /** After an 'N': what came with the request, before its answer, gets the server's FATAL error. */
    private void refuseEarlyBytes(String message) {
        if (startupParser.buffered() > 0) {
            refuse(PgInvalidPacket.fatal(new PgStartupReply("08P01", message,
                    "This could be either a client-software bug or evidence of an attempted man-in-the-middle attack.",
                    null, false)));
        }
    }

    /**
     * The client opened with a TLS ClientHello (PostgreSQL 17's {@code sslnegotiation=direct}): TLS through
     * core when the listener offers it, as the very first bytes only; the handshake must then agree on ALPN
     * {@code postgresql} (checked in {@link #clientTlsDone}).
     */
    private void directTls() {
        if (encrypted || sslAnswered || gssAnswered) {
            // Only the very first byte may open TLS; later the server reads 0x16... as a length, and closes.
            refuse(PgInvalidPacket.silent(PgInvalidPacket.INVALID_LENGTH));
            return;
        }
        if (!context.listener().clientTls().enabled()) {
            context.clientTlsRefused(null, "a direct TLS handshake, sslnegotiation=direct");
            context.log().debug("client opened with a TLS handshake (sslnegotiation=direct) but this listener "
                    + "does not accept TLS from clients (clientTls: disable); closing. Connect with "
                    + "sslmode=disable or prefer and the default sslnegotiation=postgres");
            phase = Phase.CLOSED;
            context.close();
            return;
        }
        directTls = true;
        startClientTls(startupParser.takeRemainder());
    }

    private void startClientTls(ByteBuf alreadyRead) {
        phase = Phase.CLIENT_TLS;
        encrypted = true;
        context.startClientTls(alreadyRead).addListener(this::clientTlsDone);
    }

    /** The handshake is over (on failure core has ended the session): read the decrypted start-up packets. */
    private void clientTlsDone(Future<? super ClientTlsSession> handshake) {
        if (!handshake.isSuccess() || phase != Phase.CLIENT_TLS) {
            return;
        }
        ClientTlsSession tls = (ClientTlsSession) handshake.getNow();
        if (directTls && !ALPN.equals(tls.applicationProtocol())) {
            // PostgreSQL 17 refuses the same way, over the established TLS connection.
            fail("received direct SSL connection request without ALPN protocol negotiation extension "
                    + "(a client using sslnegotiation=direct must offer ALPN \"postgresql\")");
            return;
        }
        phase = Phase.STARTUP;
        readStartupPackets();
    }

    /**
     * With TLS on both legs the server offers SCRAM-SHA-256-PLUS, and a client that takes it binds its
     * login to connguard's certificate, which the server refuses ("SCRAM channel binding check failed").
     * The proxy cannot repair that (channel binding exists to detect a party in the middle), so it says
     * what to change. Looks only at the client's first password message (SASLInitialResponse), if whole
     * in one read.
     */
    private void checkSaslChoice(ByteBuf bytes) {
        int at = bytes.readerIndex();
        if (!bytes.isReadable()) {
            return;
        }
        if (bytes.getByte(at) != 'p') {
            watchSaslChoice = false; // the client's first message is not a password message: no SCRAM
            return;
        }
        if (bytes.readableBytes() < 5 + SCRAM_PLUS.length) {
            return; // split: the check is a hint, not a rule; the next read may hold the rest
        }
        watchSaslChoice = false;
        for (int i = 0; i < SCRAM_PLUS.length; i++) {
            if (bytes.getByte(at + 5 + i) != SCRAM_PLUS[i]) {
                return;
            }
        }
        context.log().warn("the client chose SCRAM-SHA-256-PLUS (channel binding), which fails through connguard "
                + "when both legs are TLS: the server binds the login to its own certificate, the client to "
                + "connguard's. Set channel_binding=disable (libpq) or channelBinding=disable (pgjdbc) on the client");
    }

    private void fail(String reason) {
        phase = Phase.FAILED;
        context.violation(reason);
    }

    private void upstreamFailed(String reason) {
        phase = Phase.FAILED;
        context.upstreamFailed(reason);
    }

    // ---------------------------------------------------------------- pooled listeners

    /**
     * The client's Terminate ends its use of a pooled server connection, not the server's session: it is
     * cut off the end of the buffer. One split across reads has partly reached the server already; the
     * connection is then closed instead of reused.
     */
    private void withoutTerminate(ByteBuf bytes) {
        int end = bytes.writerIndex();
        if (bytes.readableBytes() >= 5 && bytes.getByte(end - 5) == 'X' && bytes.getInt(end - 4) == 4) {
            bytes.writerIndex(end - 5);
        } else {
            terminateLeaked = true;
        }
        if (bytes.isReadable()) {
            context.toUpstream(bytes);
        } else {
            bytes.release();
        }
    }

    /**
     * Transaction mode: the client's bytes go to the server connection lent now, or wait for one. Its
     * Terminate is never forwarded (it ends the client, not the server's session).
     */
    private void transactionBytes(ByteBuf bytes) {
        if (tracker.terminated()) {
            int end = bytes.writerIndex();
            if (bytes.readableBytes() >= 5 && bytes.getByte(end - 5) == 'X' && bytes.getInt(end - 4) == 4) {
                bytes.writerIndex(end - 5);
            } else {
                terminateLeaked = true;
            }
        }
        if (!bytes.isReadable() || terminateLeaked) {
            bytes.release();
            return;
        }
        transactions.clientBytes(bytes);
    }

    @Override
    public void requestPassword() {
        if (pooled == null || phase != Phase.ADMISSION) {
            return;
        }
        phase = Phase.PASSWORD;
        pooled.requestPassword();
        ByteBuf early = startupParser.takeRemainder();
        if (early != null) {
            onClientBytes(early);
        }
    }

    @Override
    public void onServerLent(io.connguard.core.api.ServerConnectionProtocol lent) {
        if (transactions != null && phase == Phase.RELAY) {
            server = (PgServerConnection) lent;
            transactions.lent(server);
            return;
        }
        if (phase != Phase.ADMISSION) {
            return;
        }
        server = (PgServerConnection) lent;
        if (context.transactionPooled()) {
            transactions = new PgTransactionMode(context, tracker, pooled.wanted(), this);
        }
        ByteBuf query = transactions != null ? transactions.startupQuery(server) : pooled.applyQuery(server);
        if (query == null) {
            answerStartup();
        } else {
            phase = Phase.APPLYING;
            context.toUpstream(query);
        }
    }

    /** Tells the client what the server would have after its StartupMessage, and relays from then on. */
    private void answerStartup() {
        phase = Phase.RELAY;
        ByteBuf answer = pooled.loginAnswer(server, PgPooledStart.mintProcessId(), PgPooledStart.mintSecret());
        pooled.release();
        if (transactions != null) {
            pooled = null; // its parameters live on in PgTransactionMode: an idle client keeps less
        }
        tracker.serverScanner.scan(answer); // the tracker sees the login complete, idle, and the minted key
        context.toClient(answer);
        if (transactions != null) {
            transactions.started(); // may give the server connection back at once
        }
        ByteBuf early = dropStartupParser();
        if (early != null) {
            onClientBytes(early);
        }
    }

    private void applyReply(ByteBuf bytes) {
        switch (transactions != null ? transactions.feedSync(bytes) : pooled.feedReply(bytes, server)) {
            case DONE -> answerStartup();
            case FAILED -> {
                phase = Phase.FAILED;
                if (transactions != null) {
                    PgErrorResponse error = transactions.syncError();
                    byte[] raw = error == null ? new byte[0] : error.bytes();
                    context.toClient(context.alloc().buffer(raw.length).writeBytes(raw));
                } else {
                    context.toClient(pooled.applyError());
                }
                context.close();
            }
            case RUNNING -> {
            }
        }
    }

    @Override
    public boolean serverReusable() {
        return phase == Phase.RELAY && server != null && !terminateLeaked && tracker.clientScanner.atBoundary()
                && tracker.serverScanner.atBoundary() && !tracker.lost()
                && (transactions == null || transactions.reusable());
    }

    @Override
    public boolean serverNeedsReset() {
        return transactions == null || transactions.needsReset();
    }

    @Override
    public boolean holdingClientBytes() {
        return transactions != null && transactions.holding();
    }

    @Override
    public String pinReason() {
        return transactions == null ? null : transactions.pinReason();
    }

    @Override
    public boolean streamsAtBoundary() {
        return tracker.clientScanner.atBoundary() && tracker.serverScanner.atBoundary();
    }

    /** Transaction mode: server bytes (rewritten for the client) on their way to it. */
    @Override
    public void transactionToClient(ByteBuf bytes) {
        tracker.serverScanner.scan(bytes);
        context.toClient(bytes);
    }

    /** Transaction mode: cancel requests with the client's key now reach the lent connection's backend. */
    @Override
    public void serverLent() {
        CANCEL_TO.setRelease(this, server == null ? null : server.backendKey());
    }

    /** Transaction mode: the connection went back; a cancel between transactions reaches nothing. */
    @Override
    public void serverReleased() {
        server = null;
        CANCEL_TO.setRelease(this, null);
    }

    // ---------------------------------------------------------------- upstream

    @Override
    public void onUpstreamConnected() {
        if (phase != Phase.ADMISSION) {
            return;
        }
        if (context.listener().upstreamTls().enabled()) {
            phase = Phase.UPSTREAM_SSL_REQUEST;
            context.toUpstream(context.alloc().buffer(SSL_REQUEST_LENGTH)
                    .writeInt(SSL_REQUEST_LENGTH).writeInt(PgStartupParser.SSL_REQUEST_CODE));
        } else {
            startRelay();
        }
    }

    /** The relay starts: the start-up parser is dropped (an idle session keeps none); returns what it held. */
    private ByteBuf dropStartupParser() {
        PgStartupParser parser = startupParser;
        startupParser = null;
        return parser == null ? null : parser.takeRemainder();
    }

    /** Sends the held StartupMessage, then whatever the client sent early, and relays from then on. */
    private void startRelay() {
        phase = Phase.RELAY;
        watchSaslChoice = encrypted && context.listener().upstreamTls().enabled();
        ByteBuf message = startup;
        startup = null;
        context.toUpstream(message);
        ByteBuf early = dropStartupParser();
        if (early != null) {
            onClientBytes(early);
        }
    }

    @Override
    public void onUpstreamBytes(ByteBuf bytes) {
        switch (phase) {
            case RELAY -> {
                if (transactions != null) {
                    if (server == null) {
                        bytes.release(); // cannot happen: a connection given back is the pool's
                    } else {
                        transactions.serverBytes(bytes);
                    }
                    return;
                }
                tracker.serverScanner.scan(bytes);
                context.toClient(bytes);
            }
            case UPSTREAM_SSL_REQUEST -> answerToSslRequest(bytes);
            case APPLYING -> applyReply(bytes);
            case UPSTREAM_TLS_HANDSHAKE -> {
                bytes.release();
                upstreamFailed("server sent data before the TLS handshake completed");
            }
            default -> bytes.release();
        }
    }

    /**
     * The server's one-byte answer to our SSLRequest. Bytes after an 'S' would have been sent in plaintext
     * before the handshake: refused, as libpq refuses them (CVE-2021-23222).
     */
    private void answerToSslRequest(ByteBuf bytes) {
        if (!bytes.isReadable()) {
            bytes.release();
            return;
        }
        byte answer = bytes.getByte(bytes.readerIndex());
        int extra = bytes.readableBytes() - 1;
        bytes.release();
        if (answer == 'S' && extra == 0) {
            phase = Phase.UPSTREAM_TLS_HANDSHAKE;
            context.startUpstreamTls().addListener(this::tlsHandshakeDone);
            return;
        }
        if (answer == 'S') {
            upstreamFailed("server sent unencrypted data after accepting TLS");
        } else if (answer == 'N') {
            upstreamFailed("server does not support TLS (it answered the SSLRequest with N) but upstreamTls.mode is "
                    + context.listener().upstreamTls().name().toLowerCase(Locale.ROOT).replace('_', '-'));
        } else {
            upstreamFailed(String.format("unexpected answer 0x%02x to SSLRequest", answer & 0xFF));
        }
    }

    private void tlsHandshakeDone(Future<? super Channel> handshake) {
        if (!context.eventLoop().inEventLoop()) {
            context.eventLoop().execute(() -> tlsHandshakeDone(handshake));
            return;
        }
        // On failure core has ended the session already.
        if (handshake.isSuccess() && phase == Phase.UPSTREAM_TLS_HANDSHAKE) {
            startRelay();
        }
    }

    /**
     * The server reported application_name (at start-up, and after a {@code SET application_name}, which
     * pgjdbc sends as its first query unless {@code assumeMinServerVersion=9.0}): core re-keys the session
     * when it differs from the name the client is counted under.
     */
    @Override
    public void applicationNameReported(String application) {
        if (identity != null && !application.equals(identity.application())) {
            identity = new ClientIdentity(identity.user(), identity.database(), application, identity.replication());
            context.identified(identity);
        }
    }

    @Override
    public void registerBackendKey(PgBackendKey key) {
        if (backendKey != null) {
            router.remove(backendKey, this);
        }
        backendKey = key;
        CANCEL_TO.setRelease(this, server == null ? null : server.backendKey());
        router.register(key, this);
    }

    // ---------------------------------------------------------------- PgCancelRouter.Target (any thread)

    @Override
    public InetSocketAddress cancelUpstream() {
        return context.listener().upstream();
    }

    @Override
    public PgBackendKey cancelServerKey() {
        return (PgBackendKey) CANCEL_TO.getAcquire(this);
    }

    @Override
    public boolean cancelsPerTransaction() {
        return transactions != null;
    }

    // ---------------------------------------------------------------- core's questions

    @Override
    public ByteBuf clientError(ProxyError error) {
        if (phase == Phase.STARTUP) {
            endedByCore = true; // core logs why (the handshake timeout, a drain); nothing more to say in close()
        }
        if (refused != null) {
            PgStartupReply reply = refused.reply();
            return reply == null ? null : reply.encode(context.alloc());
        }
        boolean safe = switch (phase) {
            case ADMISSION, PASSWORD, UPSTREAM_SSL_REQUEST, UPSTREAM_TLS_HANDSHAKE, FAILED -> true;
            // Connguard's own query is in flight: the client has not seen a byte of its reply.
            case APPLYING -> true;
            // Mid-handshake the client can read neither plaintext nor (yet) TLS records.
            case CLIENT_TLS -> false;
            case RELAY -> tracker.serverScanner.atBoundary();
            // Before its StartupMessage a client is never told anything (the server's start-up timeout and
            // shutdown just close); a cancel connection is never answered; a TLS client cannot read plaintext.
            case STARTUP, CANCEL, CLOSED -> false;
        };
        return safe ? PgErrorWriter.fatal(context.alloc(), error) : null;
    }

    @Override
    public ByteBuf upstreamGoodbye() {
        // Before the first ReadyForQuery the server is authenticating: a closed socket is its goodbye.
        if (phase != Phase.RELAY || !tracker.authenticated() || tracker.terminated() || !tracker.clientScanner.atBoundary()) {
            return null;
        }
        return context.alloc().buffer(5).writeByte('X').writeInt(4);
    }

    @Override
    public boolean clientSaidGoodbye() {
        return phase == Phase.RELAY && tracker.terminated();
    }

    @Override
    public String lastStatement() {
        return tracker.statement().fingerprint();
    }

    @Override
    public void close() {
        if (phase == Phase.STARTUP && !endedByCore && startupParser != null && startupParser.buffered() > 0) {
            // The server's words for a connection that ends mid-packet; it sends nothing either.
            context.log().info("incomplete startup packet: the connection ended after {} bytes of it",
                    startupParser.buffered());
        }
        if (sslRefused && phase == Phase.STARTUP && startupParser != null && startupParser.buffered() == 0) {
            // It hung up after the 'N' instead of going on in plaintext: it wanted TLS (sslmode=require).
            context.clientTlsRefused(null, "SSLRequest, answered N");
        }
        phase = Phase.CLOSED;
        if (startupParser != null) {
            startupParser.release();
        }
        if (pooled != null) {
            pooled.release();
        }
        if (transactions != null) {
            transactions.close();
        }
        if (startup != null) {
            startup.release();
            startup = null;
        }
        if (backendKey != null) {
            router.remove(backendKey, this);
            backendKey = null;
        }
    }
}
