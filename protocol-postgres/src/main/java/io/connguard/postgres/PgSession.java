package io.connguard.postgres;

import io.connguard.core.api.ClientIdentity;
import io.connguard.core.api.ListenerInfo.ClientTlsMode;
import io.connguard.core.api.ProtocolSession;
import io.connguard.core.api.ProxyError;
import io.connguard.core.api.SessionContext;
import io.netty.buffer.ByteBuf;

import java.net.InetSocketAddress;

/**
 * The PostgreSQL half of one client session: it reads the start-up packets (encryption requests go to
 * {@link PgClientEncryption}), names the client to core from its StartupMessage before any upstream
 * connection exists, forwards cancel requests (its own route is {@link PgCancelTarget}'s), has TLS
 * negotiated with the server when the listener asks for it ({@link PgUpstreamTls}), answers the start-up
 * itself on pooled listeners ({@link PgPooledStart}, {@link PgTransactionMode}), and then relays both
 * streams buffer by buffer while {@link PgSessionTracker} watches the message headers.
 *
 * @see <a href="https://www.postgresql.org/docs/current/protocol-flow.html">Message flow</a>,
 *     <a href="https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-SSL">SSL session encryption</a>
 */
final class PgSession extends PgCancelTarget implements ProtocolSession, PgSessionTracker.Owner, PgTransactionMode.Client {

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

    private final SessionContext context;
    /** Reads the start-up packets and keeps early bytes; dropped when the relay starts (null from then on). */
    private PgStartupParser startupParser;
    private final PgSessionTracker tracker;
    // The two directions' scanners are the tracker's (tracker.clientScanner, tracker.serverScanner): not
    // repeated here, nor the statement capture, which the tracker holds too (8 bytes of every session).

    private Phase phase = Phase.STARTUP;
    /**
     * The client's encryption requests and TLS: made at the first request, dropped when the relay starts (or
     * in it after the client's first message, when both legs are TLS and its SASL choice is watched).
     */
    private PgClientEncryption encryption;
    /** A start-up packet refused as the server refuses it; {@link #clientError} then gives the server's reply. */
    private PgInvalidPacket refused;
    /** Core ended the session before the StartupMessage (and logged why). */
    private boolean endedByCore;
    /** The client's StartupMessage, held until the server is ready for it; released in {@link #close()}. */
    private ByteBuf startup;
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
        super(router);
        this.context = context;
        this.startupParser = new PgStartupParser(context.alloc());
        this.tracker = new PgSessionTracker(context, new PgStatementCapture(), this);
    }

    // ---------------------------------------------------------------- client → server

    @Override
    public void onClientBytes(ByteBuf bytes) {
        switch (phase) {
            case RELAY -> {
                if (encryption != null && !encryption.checkSaslChoice(bytes)) {
                    encryption = null;
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
            if (packet instanceof PgNegotiationRequest request) {
                if (encryption == null) {
                    encryption = new PgClientEncryption(this, context);
                }
                encryption.answer(request, startupParser);
            } else if (packet instanceof PgCancelRequest cancel) {
                phase = Phase.CANCEL;
                router.forward(context, cancel.key(), startupParser.lastPacketBytes());
            } else if (packet instanceof PgStartupMessage message) {
                if ((encryption == null || !encryption.encrypted())
                        && context.listener().clientTls() == ClientTlsMode.REQUIRE) {
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
    void refuse(PgInvalidPacket invalid) {
        refused = invalid;
        fail(invalid.reason());
    }

    /** Malformed or unsupported client input: core sends the error ({@link #clientError}) and closes. */
    void fail(String reason) {
        phase = Phase.FAILED;
        context.violation(reason);
    }

    // ---------------------------------------------------------------- PgClientEncryption's calls

    /** Core runs the TLS handshake with the client; what the client sends meanwhile is held. */
    void clientTlsStarted() {
        phase = Phase.CLIENT_TLS;
    }

    /** The session still waits for the client's TLS handshake (it did not fail or close meanwhile). */
    boolean inClientTls() {
        return phase == Phase.CLIENT_TLS;
    }

    /** The client's TLS handshake succeeded: the start-up packets are read again, decrypted. */
    void clientTlsReady() {
        phase = Phase.STARTUP;
        readStartupPackets();
    }

    /** Closes without a word (a direct TLS hello on a listener without {@code clientTls}). */
    void closeNow() {
        phase = Phase.CLOSED;
        context.close();
    }

    /** The upstream is unusable: core counts it, sends the client 08006 ({@link #clientError}) and closes. */
    void upstreamFailed(String reason) {
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
        cutTerminate(bytes);
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
            cutTerminate(bytes);
        }
        if (!bytes.isReadable() || terminateLeaked) {
            bytes.release();
            return;
        }
        transactions.clientBytes(bytes);
    }

    /** Cuts the client's Terminate off the end of {@code bytes}, or notes that it was split across reads. */
    private void cutTerminate(ByteBuf bytes) {
        int end = bytes.writerIndex();
        if (bytes.readableBytes() >= 5 && bytes.getByte(end - 5) == 'X' && bytes.getInt(end - 4) == 4) {
            bytes.writerIndex(end - 5);
        } else {
            terminateLeaked = true;
        }
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
        encryption = null; // connguard asked for the password itself: no SASL choice to watch
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
        cancelTo(server == null ? null : server.backendKey());
    }

    /** Transaction mode: the connection went back; a cancel between transactions reaches nothing. */
    @Override
    public void serverReleased() {
        server = null;
        cancelTo(null);
    }

    // ---------------------------------------------------------------- upstream

    @Override
    public void onUpstreamConnected() {
        if (phase != Phase.ADMISSION) {
            return;
        }
        if (context.listener().upstreamTls().enabled()) {
            phase = Phase.UPSTREAM_SSL_REQUEST;
            context.toUpstream(PgUpstreamTls.sslRequest(context.alloc()));
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
        if (encryption != null && !encryption.watchSaslChoice(context.listener().upstreamTls().enabled())) {
            encryption = null;
        }
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
            case UPSTREAM_SSL_REQUEST -> PgUpstreamTls.answer(this, context, bytes);
            case APPLYING -> applyReply(bytes);
            case UPSTREAM_TLS_HANDSHAKE -> {
                bytes.release();
                upstreamFailed("server sent data before the TLS handshake completed");
            }
            default -> bytes.release();
        }
    }

    // ---------------------------------------------------------------- PgUpstreamTls's calls

    /** The server accepted TLS and core runs the handshake; server bytes meanwhile fail the session. */
    void upstreamTlsStarted() {
        phase = Phase.UPSTREAM_TLS_HANDSHAKE;
    }

    /** The upstream TLS handshake succeeded: the StartupMessage goes to the server, encrypted. */
    void upstreamTlsReady() {
        if (phase == Phase.UPSTREAM_TLS_HANDSHAKE) {
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
        routeCancels(key, server == null ? null : server.backendKey());
    }

    // ---------------------------------------------------------------- PgCancelRouter.Target (any thread)

    @Override
    public InetSocketAddress cancelUpstream() {
        return context.listener().upstream();
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
        if (encryption != null && encryption.sslRefused() && phase == Phase.STARTUP && startupParser != null && startupParser.buffered() == 0) {
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
        removeCancelRoute();
    }
}
