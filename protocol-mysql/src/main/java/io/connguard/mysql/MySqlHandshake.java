package io.connguard.mysql;

import io.connguard.core.api.ClientIdentity;
import io.connguard.core.api.EarlyUpstream;
import io.connguard.core.api.ListenerInfo.ClientTlsMode;
import io.connguard.core.api.ProxyError;
import io.connguard.core.api.SessionContext;
import io.netty.buffer.ByteBuf;

import java.util.function.Consumer;

import static io.connguard.mysql.MySqlCapabilities.CLIENT_MYSQL;
import static io.connguard.mysql.MySqlCapabilities.CLIENT_PLUGIN_AUTH;
import static io.connguard.mysql.MySqlCapabilities.CLIENT_PROTOCOL_41;
import static io.connguard.mysql.MySqlCapabilities.CLIENT_SSL;

/**
 * The connection phase of one session. While the listener is under its cap, core opens the upstream before
 * the client is identified: the client is greeted with the server's own greeting (its real thread id and
 * scramble), its HandshakeResponse41 reports the identity, and once core keeps that upstream (admitted, or
 * on probation) the response goes to the server as it is, after the SSL request and TLS handshake if the
 * listener says so.
 *
 * <p>Otherwise (the listener is at its cap, or core closed the early upstream because the client must
 * wait) the client holds an id the proxy gave it, mapped to its real thread id once known: the proxy greets
 * it from a cached greeting with a minted id and its own scramble, and once admitted reads the real
 * greeting, does the SSL request and TLS handshake if the listener says so, and sends the client's response
 * with no auth data and a plugin name no account uses: the server answers with an AuthSwitchRequest
 * carrying its real scramble. On both paths every authentication packet is then relayed with sequence ids
 * translated.
 *
 * @see <a href="https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_connection_phase.html">Connection phase</a>
 * @see <a href="https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_connection_phase_packets_protocol_auth_switch_request.html">AuthSwitchRequest</a>
 * @see <a href="https://mariadb.com/kb/en/connection/">MariaDB connection</a>
 */
final class MySqlHandshake {

    /** What the command phase starts from; the leftovers (owned by the receiver) may be null. */
    record Result(long capabilities, int charset, int status, ClientIdentity identity, ByteBuf clientLeftover,
                  ByteBuf serverLeftover) {
    }

    private enum Phase {
        EARLY_CONNECTING, EARLY_GREETING, AWAIT_GREETING, AWAIT_RESPONSE, AWAIT_ADMISSION, UPSTREAM_GREETING,
        UPSTREAM_TLS, AUTHENTICATING, DONE
    }

    private static final int MAX_PACKET = 64 * 1024;
    /** caching_sha2_password's AuthMoreData status: the server needs the password itself. */
    private static final int CACHING_SHA2_PERFORM_FULL_AUTHENTICATION = 0x04;

    private final MySqlModule module;
    private final SessionContext context;
    private final MySqlThreadIds threadIds;
    private final Consumer<Result> done;
    private final MySqlPacketAssembler clientPackets;
    private final MySqlPacketAssembler serverPackets;
    private Phase phase = Phase.AWAIT_GREETING;
    private MySqlHandshakeResponse response;
    /** The client's HandshakeResponse41 as sent, kept while it may still go to the early upstream. */
    private ByteBuf clientResponse;
    /** The greeting of the upstream opened before identification, while that upstream is there. */
    private MySqlGreeting earlyGreeting;
    /** The connection id the client was greeted with, and the real thread id registered for it (-1: none). */
    private long givenId = -1;
    private long realId = -1;
    private ClientIdentity identity;
    private long capabilities;
    /** Server-leg sequence id minus client-leg sequence id during authentication (TLS on either leg shifts one). */
    private int sequenceDelta;
    /** The sequence id of the client's HandshakeResponse41: 2 after an SSLRequest and TLS on the client leg. */
    private int clientResponseSequence = 1;
    private int nextClientSequence = 2;
    /**
     * The server's last authentication packet asks for the password in clear (caching_sha2_password full
     * authentication, sha256_password, mysql_clear_password): a client on a TLS leg sends it as it is.
     */
    private boolean cleartextAsked;
    /** The server's last "perform full authentication" (caching_sha2_password) is waiting for the password. */
    private boolean fullAuthAsked;
    /** The scramble the client answers: the server's greeting's, or its last AuthSwitchRequest's. */
    private byte[] scramble;
    /** Where connguard stands in an RSA exchange it does for one leg (see relayClientPackets). */
    private RsaStep rsaStep = RsaStep.NONE;
    /** The client's password (NUL-terminated) while connguard waits for the server's RSA key; wiped after. */
    private byte[] password;

    private enum RsaStep { NONE, AWAIT_SERVER_KEY, AWAIT_CLIENT_BLOB }
    private boolean closed;

    MySqlHandshake(MySqlModule module, SessionContext context, Consumer<Result> done) {
        this.module = module;
        this.context = context;
        this.threadIds = module.threadIds(context.listener());
        this.done = done;
        this.clientPackets = new MySqlPacketAssembler(context.alloc(), MAX_PACKET);
        this.serverPackets = new MySqlPacketAssembler(context.alloc(), MAX_PACKET);
    }

    /**
     * Greets the client with the greeting of an upstream opened for it now, or, when core cannot open one
     * before admission, from the cached greeting (or after probing the server for one) with a minted id.
     */
    void greet() {
        if (context.openUpstreamEarly()) {
            phase = Phase.EARLY_CONNECTING;
            return;
        }
        givenId = module.nextConnectionId();
        MySqlGreeting cached = module.cachedGreeting(context.listener());
        if (cached != null) {
            sendGreeting(cached);
            return;
        }
        module.probe(context).whenComplete((greeting, failure) -> context.eventLoop().execute(() -> {
            if (closed || phase != Phase.AWAIT_GREETING) {
                return;
            }
            if (greeting != null) {
                sendGreeting(greeting);
            } else {
                context.upstreamFailed("could not read the server's greeting: " + failure.getMessage());
            }
        }));
    }

    private void sendGreeting(MySqlGreeting serverGreeting) {
        context.toClient(serverGreeting.forClient(givenId, offersTls()).encode(context.alloc(), 0));
        phase = Phase.AWAIT_RESPONSE;
    }

    void onClientBytes(ByteBuf bytes) {
        clientPackets.add(bytes);
        try {
            switch (phase) {
                case AWAIT_RESPONSE -> readResponse();
                case AUTHENTICATING -> relayClientPackets();
                case DONE -> { }
                default -> context.violation("the client sent data before the server could answer (" + phase + ")");
            }
        } catch (MalformedPacketException e) {
            context.violation(e.getMessage());
        }
    }

    void onUpstreamConnected() {
        phase = phase == Phase.EARLY_CONNECTING ? Phase.EARLY_GREETING : Phase.UPSTREAM_GREETING;
    }

    void onUpstreamBytes(ByteBuf bytes) {
        serverPackets.add(bytes);
        try {
            if (phase == Phase.EARLY_GREETING) {
                readEarlyGreeting();
            } else if (phase == Phase.UPSTREAM_GREETING) {
                readServerGreeting();
            } else if (phase == Phase.AUTHENTICATING) {
                relayServerPackets();
            }
        } catch (MalformedPacketException e) {
            context.upstreamFailed("malformed server handshake: " + e.getMessage());
        }
    }

    /** The server greeted the upstream opened before identification: the client gets that greeting. */
    private void readEarlyGreeting() {
        ByteBuf packet = serverPackets.next();
        if (packet == null) {
            return;
        }
        if (packet.readableBytes() > MySqlWire.HEADER_SIZE && packet.getUnsignedByte(packet.readerIndex() + MySqlWire.HEADER_SIZE) == MySqlWire.ERR) {
            phase = Phase.DONE; // the server refuses (too many connections, host blocked): its ERR is in the pre-greeting form
            context.toClient(packet);
            context.close();
            return;
        }
        MySqlGreeting greeting;
        try {
            greeting = MySqlGreeting.decode(packet, packet.readerIndex() + MySqlWire.HEADER_SIZE, packet.readableBytes() - MySqlWire.HEADER_SIZE);
        } finally {
            packet.release();
        }
        module.remember(context.listener(), greeting);
        earlyGreeting = greeting;
        scramble = greeting.scramble();
        register(greeting.connectionId(), greeting.connectionId());
        context.toClient(greeting.relayed(offersTls()).encode(context.alloc(), 0));
        phase = Phase.AWAIT_RESPONSE;
    }

    private void readResponse() {
        ByteBuf packet = clientPackets.next();
        if (packet == null) {
            return;
        }
        boolean kept = false;
        try {
            if (packet.getUnsignedByte(3) != clientResponseSequence) {
                throw new MalformedPacketException("handshake response with sequence id " + packet.getUnsignedByte(3));
            }
            response = MySqlHandshakeResponse.decode(packet, MySqlWire.HEADER_SIZE, packet.readableBytes() - MySqlWire.HEADER_SIZE);
            if (earlyGreeting != null && !response.sslRequest()) {
                clientResponse = packet; // its auth data answers the real scramble: it may go upstream as it is
                kept = true;
            }
        } finally {
            if (!kept) {
                packet.release();
            }
        }
        if (response.sslRequest() && offersTls() && clientResponseSequence == 1) {
            startClientTls();
            return;
        }
        if (response.sslRequest()) {
            phase = Phase.DONE;
            context.clientTlsRefused(null, "SSLRequest");
            context.toClient(MySqlErrorWriter.write(context.alloc(), 2, 1043, "08S01",
                    "connguard: TLS was requested, but this listener does not offer TLS to clients (clientTls: disable);"
                            + " connect without TLS (sslMode=PREFERRED or DISABLED) or enable upstreamTls for the database leg"));
            context.close();
            return;
        }
        if ((response.capabilities() & CLIENT_PLUGIN_AUTH) == 0) {
            throw new MalformedPacketException("clients without CLIENT_PLUGIN_AUTH are not supported");
        }
        identity = new ClientIdentity(response.user(), response.database(), response.programName());
        phase = Phase.AWAIT_ADMISSION;
        if (clientResponseSequence == 1 && context.listener().clientTls() == ClientTlsMode.REQUIRE) {
            context.plaintextRefused(identity); // core ends the session with ERR 3159 naming clientTls.mode: require
            return;
        }
        context.identified(identity); // with an early upstream, earlyUpstream() is called from inside
    }

    private boolean offersTls() {
        return context.listener().clientTls().enabled();
    }

    /**
     * The client sent an SSLRequest on a listener that offers TLS: the client leg switches to TLS, and the
     * client's HandshakeResponse41 follows inside it with sequence id 2. What the client sent after its
     * SSLRequest already belongs to the TLS handshake.
     */
    private void startClientTls() {
        clientResponseSequence = 2;
        nextClientSequence = 3;
        context.startClientTls(clientPackets.takeRest());
    }

    /** What core did with the upstream opened before identification. */
    void earlyUpstream(EarlyUpstream outcome) {
        if (closed || phase != Phase.AWAIT_ADMISSION || earlyGreeting == null) {
            return;
        }
        if (outcome == EarlyUpstream.CLOSED) {
            // The client waits; its id now stands for whichever thread its next upstream gets.
            earlyGreeting = null;
            unregister();
            clientResponse.release();
            clientResponse = null;
            serverPackets.close();
            return;
        }
        MySqlGreeting greeting = earlyGreeting;
        capabilities = negotiate(response.capabilities(), greeting.capabilities());
        if (!context.listener().upstreamTls().enabled()) {
            sendClientResponse(1);
            return;
        }
        if (!startUpstreamTls(greeting)) {
            return;
        }
        context.startUpstreamTls().addListener(tls -> {
            if (tls.isSuccess() && !closed && phase == Phase.UPSTREAM_TLS) {
                sendClientResponse(2);
            }
        });
    }

    /** The client's own response, after the proxy's SSLRequest when {@code sequenceId} is 2. */
    private void sendClientResponse(int sequenceId) {
        ByteBuf packet = clientResponse;
        clientResponse = null;
        int flags = packet.readerIndex() + MySqlWire.HEADER_SIZE;
        long classic = packet.getUnsignedIntLE(flags);
        long sent = classic & ~MySqlCapabilities.HIDDEN_FROM_CLIENT | (sequenceId == 2 ? CLIENT_SSL : 0);
        packet.setIntLE(flags, (int) sent);
        if ((classic & CLIENT_MYSQL) == 0) {
            int extended = flags + 28;
            packet.setIntLE(extended, (int) (packet.getUnsignedIntLE(extended) & ~(MySqlCapabilities.HIDDEN_FROM_CLIENT >>> 32)));
        }
        packet.setByte(packet.readerIndex() + 3, sequenceId);
        context.toUpstream(packet);
        sequenceDelta = sequenceId - clientResponseSequence;
        phase = Phase.AUTHENTICATING;
        relayClientPackets();
        relayServerPackets();
    }

    /** Sends the SSLRequest; false (the session is ending) when the server does not offer TLS. */
    private boolean startUpstreamTls(MySqlGreeting greeting) {
        if ((greeting.capabilities() & CLIENT_SSL) == 0) {
            context.upstreamFailed("the server does not offer TLS, which upstreamTls.mode "
                    + context.listener().upstreamTls().name().toLowerCase(java.util.Locale.ROOT) + " requires");
            return false;
        }
        context.toUpstream(MySqlHandshakeResponse.encodeSslRequest(context.alloc(), 1, capabilities,
                response.maxPacketSize(), response.charset()));
        phase = Phase.UPSTREAM_TLS;
        return true;
    }

    private void register(long given, long real) {
        unregister();
        threadIds.register(given, real);
        givenId = given;
        realId = real;
    }

    private void unregister() {
        if (realId >= 0) {
            threadIds.unregister(givenId, realId);
            realId = -1;
        }
    }

    private void readServerGreeting() {
        ByteBuf packet = serverPackets.next();
        if (packet == null) {
            return;
        }
        MySqlGreeting greeting;
        try {
            if (packet.readableBytes() > MySqlWire.HEADER_SIZE && packet.getUnsignedByte(MySqlWire.HEADER_SIZE) == MySqlWire.ERR) {
                relayRefusal(packet);
                return;
            }
            greeting = MySqlGreeting.decode(packet, MySqlWire.HEADER_SIZE, packet.readableBytes() - MySqlWire.HEADER_SIZE);
        } finally {
            packet.release();
        }
        module.remember(context.listener(), greeting);
        register(givenId, greeting.connectionId());
        scramble = greeting.scramble();
        capabilities = negotiate(response.capabilities(), greeting.capabilities());
        long missing = response.capabilities() & MySqlCapabilities.FRAMING & ~capabilities;
        if (missing != 0) {
            context.upstreamFailed("the server no longer offers capabilities 0x" + Long.toHexString(missing)
                    + " it offered when its greeting was cached; reconnect");
            return;
        }
        if (!context.listener().upstreamTls().enabled()) {
            sendResponse(1);
            return;
        }
        if (!startUpstreamTls(greeting)) {
            return;
        }
        context.startUpstreamTls().addListener(tls -> {
            if (tls.isSuccess() && !closed && phase == Phase.UPSTREAM_TLS) {
                sendResponse(2);
            }
        });
    }

    /** What the proxy tells the server: the client's flags it can relay, the server's MariaDB extensions. */
    static long negotiate(long client, long server) {
        long classic = client & 0xFFFF_FFFFL & (server | CLIENT_MYSQL) & ~MySqlCapabilities.HIDDEN_FROM_CLIENT;
        boolean mariaDbBoth = (classic & CLIENT_MYSQL) == 0 && (server & CLIENT_MYSQL) == 0;
        long extended = mariaDbBoth ? client & server & ~0xFFFF_FFFFL & ~MySqlCapabilities.HIDDEN_FROM_CLIENT : 0;
        return classic | extended;
    }

    private void sendResponse(int sequenceId) {
        long upstream = capabilities | (sequenceId == 2 ? CLIENT_SSL : 0);
        context.toUpstream(response.encodeForUpstream(context.alloc(), sequenceId, upstream));
        sequenceDelta = sequenceId - clientResponseSequence;
        phase = Phase.AUTHENTICATING;
        relayClientPackets();
        relayServerPackets();
    }

    /** The server refused before its greeting (too many connections, host blocked): tell the client. */
    private void relayRefusal(ByteBuf packet) {
        int end = packet.writerIndex();
        int code = MySqlWire.readInt2(packet, MySqlWire.HEADER_SIZE + 1, end);
        String message = packet.toString(MySqlWire.HEADER_SIZE + 3, end - MySqlWire.HEADER_SIZE - 3,
                java.nio.charset.StandardCharsets.UTF_8);
        String sqlState = (response.capabilities() & CLIENT_PROTOCOL_41) == 0 ? null : code == 1040 ? "08004" : "HY000";
        phase = Phase.DONE;
        context.toClient(MySqlErrorWriter.write(context.alloc(), clientResponseSequence + 1, code, sqlState, message));
        context.close();
    }

    private void relayClientPackets() {
        ByteBuf packet;
        while (phase == Phase.AUTHENTICATING && (packet = clientPackets.next()) != null) {
            int sequenceId = packet.getUnsignedByte(3);
            nextClientSequence = (sequenceId + 1) & 0xFF;
            boolean upstreamTls = context.listener().upstreamTls().enabled();
            boolean clientTls = clientResponseSequence == 2;
            if (rsaStep == RsaStep.AWAIT_CLIENT_BLOB) {
                sendDecryptedPassword(packet);
                continue;
            }
            if (fullAuthAsked && clientTls && !upstreamTls) {
                askServerKey(packet);
                continue;
            }
            if (fullAuthAsked && !clientTls && upstreamTls && isPublicKeyRequest(packet)) {
                packet.release();
                offerOwnKey(sequenceId);
                return;
            }
            if (cleartextAsked && !fullAuthAsked && clientTls && !upstreamTls) {
                packet.release();
                refuseCleartextUpstream();
                return;
            }
            fullAuthAsked = false;
            packet.setByte(3, sequenceId + sequenceDelta);
            context.toUpstream(packet);
        }
    }

    private void relayServerPackets() {
        ByteBuf packet;
        while (phase == Phase.AUTHENTICATING && (packet = serverPackets.next()) != null) {
            if (rsaStep == RsaStep.AWAIT_SERVER_KEY && packet.readableBytes() > MySqlWire.HEADER_SIZE
                    && packet.getUnsignedByte(MySqlWire.HEADER_SIZE) == 0x01) {
                sendEncryptedPassword(packet);
                continue;
            }
            int sequenceId = (packet.getUnsignedByte(3) - sequenceDelta) & 0xFF;
            packet.setByte(3, sequenceId);
            nextClientSequence = (sequenceId + 1) & 0xFF;
            int first = packet.readableBytes() > MySqlWire.HEADER_SIZE ? packet.getUnsignedByte(MySqlWire.HEADER_SIZE) : -1;
            cleartextAsked = asksForCleartext(packet, first);
            fullAuthAsked = first == 0x01 && cleartextAsked;
            if (first == 0xFE) {
                scramble = switchScramble(packet);
            }
            if (first == MySqlWire.OK) {
                int status = okStatus(packet);
                context.toClient(packet);
                phase = Phase.DONE;
                done.accept(new Result(capabilities, response.charset(), status, identity, clientPackets.takeRest(),
                        serverPackets.takeRest()));
                return;
            }
            context.toClient(packet);
            if (first == MySqlWire.ERR) {
                phase = Phase.DONE; // the server's own answer, e.g. 1045 for a wrong password; it closes next
                context.close();
                return;
            }
        }
    }

    /**
     * Whether a server authentication packet makes a client on a secure leg send its password as it is:
     * AuthMoreData "perform full authentication" (caching_sha2_password), or a switch to sha256_password or
     * mysql_clear_password.
     *
     * @see <a href="https://dev.mysql.com/doc/dev/mysql-server/latest/page_caching_sha2_authentication_exchanges.html">caching_sha2_password exchanges</a>
     */
    static boolean asksForCleartext(ByteBuf packet, int first) {
        int payload = packet.readerIndex() + MySqlWire.HEADER_SIZE;
        int end = packet.writerIndex();
        if (first == 0x01) {
            return end - payload == 2 && packet.getUnsignedByte(payload + 1) == CACHING_SHA2_PERFORM_FULL_AUTHENTICATION;
        }
        if (first == 0xFE && end - payload > 1) {
            int nul = packet.indexOf(payload + 1, end, (byte) 0);
            String plugin = packet.toString(payload + 1, (nul < 0 ? end : nul) - payload - 1, java.nio.charset.StandardCharsets.US_ASCII);
            return plugin.equals("sha256_password") || plugin.equals("mysql_clear_password");
        }
        return false;
    }

    /** The plugin data of an AuthSwitchRequest (the new scramble), without its trailing NUL. */
    private byte[] switchScramble(ByteBuf packet) {
        int end = packet.writerIndex();
        int nul = packet.indexOf(MySqlWire.HEADER_SIZE + 1, end, (byte) 0);
        if (nul < 0) {
            return scramble;
        }
        int dataEnd = end > nul + 1 && packet.getByte(end - 1) == 0 ? end - 1 : end;
        byte[] data = new byte[dataEnd - nul - 1];
        packet.getBytes(nul + 1, data);
        return data.length == 0 ? scramble : data;
    }

    private static boolean isPublicKeyRequest(ByteBuf packet) {
        return packet.readableBytes() == MySqlWire.HEADER_SIZE + 1 && packet.getUnsignedByte(MySqlWire.HEADER_SIZE) == 0x02;
    }

    /**
     * Full authentication, the client on TLS, the server leg plaintext: the client sent its password as it is.
     * connguard keeps it and asks the server for its RSA key, as a plaintext client would.
     */
    private void askServerKey(ByteBuf packet) {
        int sequenceId = packet.getUnsignedByte(3);
        password = new byte[packet.readableBytes() - MySqlWire.HEADER_SIZE];
        packet.getBytes(MySqlWire.HEADER_SIZE, password);
        packet.setZero(0, packet.capacity());
        packet.release();
        fullAuthAsked = false;
        rsaStep = RsaStep.AWAIT_SERVER_KEY;
        ByteBuf request = context.alloc().buffer(MySqlWire.HEADER_SIZE + 1);
        int start = MySqlWire.startPacket(request, (sequenceId + sequenceDelta) & 0xFF);
        request.writeByte(0x02);
        MySqlWire.finishPacket(request, start);
        context.toUpstream(request);
    }

    /** The server's RSA key arrived: the password goes to it encrypted, two packets later than the client counts. */
    private void sendEncryptedPassword(ByteBuf keyPacket) {
        int sequenceId = keyPacket.getUnsignedByte(3);
        byte[] pem = new byte[keyPacket.readableBytes() - MySqlWire.HEADER_SIZE - 1];
        keyPacket.getBytes(MySqlWire.HEADER_SIZE + 1, pem);
        keyPacket.release();
        byte[] blob;
        try {
            blob = MySqlRsa.encrypt(password, scramble, MySqlRsa.parsePem(pem));
        } finally {
            java.util.Arrays.fill(password, (byte) 0);
            password = null;
        }
        rsaStep = RsaStep.NONE;
        ByteBuf out = context.alloc().buffer(MySqlWire.HEADER_SIZE + blob.length);
        int start = MySqlWire.startPacket(out, (sequenceId + 1) & 0xFF);
        out.writeBytes(blob);
        MySqlWire.finishPacket(out, start);
        context.toUpstream(out);
        sequenceDelta += 2; // the server's answer comes two packets later than the client expects it
    }

    /**
     * Full authentication, the client plaintext, the server leg TLS: the client asked for the server's RSA
     * key, but a server on a secure connection wants the password itself. connguard answers with its own
     * key, and sends the password the client encrypts with it to the server over TLS.
     */
    private void offerOwnKey(int requestSequence) {
        fullAuthAsked = false;
        rsaStep = RsaStep.AWAIT_CLIENT_BLOB;
        java.util.concurrent.CompletableFuture<java.security.KeyPair> key = module.ownRsaKey();
        if (key.isDone()) {
            sendOwnKey(key.join(), requestSequence);
        } else {
            key.whenComplete((pair, failure) -> context.eventLoop().execute(() -> {
                if (!closed && phase == Phase.AUTHENTICATING) {
                    sendOwnKey(pair, requestSequence);
                }
            }));
        }
    }

    private void sendOwnKey(java.security.KeyPair pair, int requestSequence) {
        byte[] pem = MySqlRsa.pem(pair.getPublic()).getBytes(java.nio.charset.StandardCharsets.US_ASCII);
        ByteBuf out = context.alloc().buffer(MySqlWire.HEADER_SIZE + 1 + pem.length);
        int start = MySqlWire.startPacket(out, (requestSequence + 1) & 0xFF);
        out.writeByte(0x01).writeBytes(pem);
        MySqlWire.finishPacket(out, start);
        context.toClient(out);
        nextClientSequence = (requestSequence + 2) & 0xFF;
        relayClientPackets(); // the client may have answered already
    }

    private void sendDecryptedPassword(ByteBuf packet) {
        int sequenceId = packet.getUnsignedByte(3);
        byte[] blob = new byte[packet.readableBytes() - MySqlWire.HEADER_SIZE];
        packet.getBytes(MySqlWire.HEADER_SIZE, blob);
        packet.release();
        byte[] clear = MySqlRsa.decrypt(blob, scramble, module.ownRsaKey().join().getPrivate());
        rsaStep = RsaStep.NONE;
        sequenceDelta -= 2; // two packets of the client's exchange with connguard never reach the server
        ByteBuf out = context.alloc().buffer(MySqlWire.HEADER_SIZE + clear.length);
        int start = MySqlWire.startPacket(out, (sequenceId + sequenceDelta) & 0xFF);
        out.writeBytes(clear);
        MySqlWire.finishPacket(out, start);
        java.util.Arrays.fill(clear, (byte) 0);
        context.toUpstream(out);
    }

    /**
     * The client, on its TLS leg, is about to send its password in clear to a plugin other than
     * caching_sha2_password (whose RSA exchange connguard does itself), and the server leg is plaintext:
     * connguard does not put a password on the network in clear; the login is refused with a message that
     * says what to change.
     */
    private void refuseCleartextUpstream() {
        phase = Phase.DONE;
        context.log().warn("refused to forward a cleartext password to the plaintext upstream of listener {}",
                context.listener().name());
        context.toClient(MySqlErrorWriter.write(context.alloc(), nextClientSequence, 1251, "08004",
                "connguard: the server asked for the password in clear (sha256_password or mysql_clear_password), which the client sends "
                        + "because its leg to connguard is TLS; listener " + context.listener().name()
                        + " speaks to the database in plaintext (upstreamTls.mode: disable), so connguard does not forward "
                        + "it. Enable upstreamTls, or connect to connguard without TLS so the client uses the server's RSA key"));
        context.close();
    }

    private static int okStatus(ByteBuf packet) {
        int end = packet.writerIndex();
        int i = MySqlWire.HEADER_SIZE + 1;
        for (int field = 0; field < 2 && i < end; field++) {
            i += Math.max(1, MySqlWire.lenencSize(packet.getUnsignedByte(i)));
        }
        return i + 2 <= end ? packet.getUnsignedShortLE(i) : 0;
    }

    ByteBuf clientError(ProxyError error) {
        return switch (phase) {
            case EARLY_CONNECTING, EARLY_GREETING, AWAIT_GREETING -> MySqlErrorWriter.write(context.alloc(), error, -1, false);
            case AWAIT_RESPONSE -> MySqlErrorWriter.write(context.alloc(), error, clientResponseSequence + 1, false);
            case DONE -> null;
            default -> MySqlErrorWriter.write(context.alloc(), error, nextClientSequence,
                    (response.capabilities() & CLIENT_PROTOCOL_41) != 0);
        };
    }

    void close() {
        closed = true;
        if (password != null) {
            java.util.Arrays.fill(password, (byte) 0);
            password = null;
        }
        clientPackets.close();
        serverPackets.close();
        if (clientResponse != null) {
            clientResponse.release();
            clientResponse = null;
        }
        unregister();
    }
}
