package io.connguard.mysql;

import io.connguard.core.api.ClientIdentity;
import io.connguard.core.api.EarlyUpstream;
import io.connguard.core.api.ListenerInfo.ClientTlsMode;
import io.connguard.core.api.ProxyError;
import io.connguard.core.api.SessionContext;
import io.netty.buffer.ByteBuf;

import java.util.Arrays;
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

    /**
     * What the command phase starts from; the leftovers (owned by the receiver) may be null. The client's id
     * {@code givenId} stands for thread {@code realId} (-1: none) in the listener's {@link MySqlThreadIds}; the
     * receiver unregisters it. {@code clientCapabilities} and {@code attributes} (null: none) are the client's
     * HandshakeResponse41 as it sent them, for the logins of pooled server connections opened for it later.
     * {@code server} is the pooled server connection the client was answered on (null: relayed).
     */
    record Result(long capabilities, int charset, int status, ClientIdentity identity, ByteBuf clientLeftover,
                  ByteBuf serverLeftover, long givenId, long realId, long clientCapabilities, byte[] attributes,
                  MySqlServerConnection server) {
    }

    private enum Phase {
        EARLY_CONNECTING, EARLY_GREETING, AWAIT_GREETING, AWAIT_RESPONSE, AWAIT_ADMISSION, UPSTREAM_GREETING,
        UPSTREAM_TLS, AUTHENTICATING, DONE,
        /** Pooled: connguard asks the client for its password; then it waits for a server connection. */
        PASSWORD, AWAIT_SERVER, APPLYING
    }

    /** Pooled: where the password exchange with the client stands. */
    private enum PasswordStep { SWITCHED, FULL_AUTH, KEY_SENT }

    private static final int MAX_PACKET = 64 * 1024;

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
    /** The password step when the two legs differ in security (caching_sha2_password's RSA exchange). */
    private final MySqlPasswordExchange passwordExchange;

    private boolean closed;
    /** Pooled listener: the client is authenticated by connguard and gets a pooled server connection. */
    private final boolean pooled;
    private MySqlGreeting greetedWith;
    private PasswordStep passwordStep;
    private byte[] passwordScramble;
    private MySqlServerConnection lent;

    MySqlHandshake(MySqlModule module, SessionContext context, Consumer<Result> done) {
        this.module = module;
        this.context = context;
        this.threadIds = module.threadIds(context.listener());
        this.done = done;
        this.clientPackets = new MySqlPacketAssembler(context.alloc(), MAX_PACKET);
        this.passwordExchange = new MySqlPasswordExchange(module, context, new ExchangeLegs());
        this.serverPackets = new MySqlPacketAssembler(context.alloc(), MAX_PACKET);
        this.pooled = context.listener().pooled();
    }

    /**
     * Greets the client with the greeting of an upstream opened for it now, or, when core cannot open one
     * before admission, from the cached greeting (or after probing the server for one) with a minted id.
     */
    void greet() {
        if (!pooled && context.openUpstreamEarly()) {
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
        greetedWith = serverGreeting.forClient(givenId, offersTls());
        context.toClient(greetedWith.encode(context.alloc(), 0));
        phase = Phase.AWAIT_RESPONSE;
    }

    void onClientBytes(ByteBuf bytes) {
        clientPackets.add(bytes);
        try {
            switch (phase) {
                case AWAIT_RESPONSE -> readResponse();
                case AUTHENTICATING -> relayClientPackets();
                case PASSWORD -> readPassword();
                case DONE, AWAIT_SERVER, APPLYING -> { } // kept: the command phase reads them

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
            } else if (phase == Phase.APPLYING) {
                readApplied();
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
        passwordExchange.scramble(greeting.scramble());
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
        identity = MySqlClientShares.identity(new ClientIdentity(response.user(), response.database(),
                response.programName()));
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
        passwordExchange.scramble(greeting.scramble());
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
            if (passwordExchange.takeClientPacket(packet, clientResponseSequence == 2,
                    context.listener().upstreamTls().enabled())) {
                if (passwordExchange.waitingForOwnKey()) {
                    return; // the client's next packet answers a key it does not have yet
                }
                continue;
            }
            packet.setByte(3, sequenceId + sequenceDelta);
            context.toUpstream(packet);
        }
    }

    private void relayServerPackets() {
        ByteBuf packet;
        while (phase == Phase.AUTHENTICATING && (packet = serverPackets.next()) != null) {
            if (passwordExchange.takeServerPacket(packet)) {
                continue;
            }
            int sequenceId = (packet.getUnsignedByte(3) - sequenceDelta) & 0xFF;
            packet.setByte(3, sequenceId);
            nextClientSequence = (sequenceId + 1) & 0xFF;
            int first = packet.readableBytes() > MySqlWire.HEADER_SIZE ? packet.getUnsignedByte(MySqlWire.HEADER_SIZE) : -1;
            passwordExchange.observeServerPacket(packet, first);
            if (first == MySqlWire.OK) {
                int status = okStatus(packet);
                context.toClient(packet);
                phase = Phase.DONE;
                done.accept(result(status));
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

    /** The status flags of an OK packet (header at index 0). */
    static int okStatus(ByteBuf packet) {
        int end = packet.writerIndex();
        int i = MySqlWire.HEADER_SIZE + 1;
        for (int field = 0; field < 2 && i < end; field++) {
            i += Math.max(1, MySqlWire.lenencSize(packet.getUnsignedByte(i)));
        }
        return i + 2 <= end ? packet.getUnsignedShortLE(i) : 0;
    }

    // ---------------------------------------------------------------- pooled listeners

    /**
     * Asks the client for its password: over a TLS client leg with an AuthSwitchRequest to
     * mysql_clear_password; over a plaintext one with caching_sha2_password's full authentication, the password
     * RSA-encrypted with connguard's own key (the client asks for it: Connector/J needs
     * {@code allowPublicKeyRetrieval=true}), or the key it was given.
     */
    void requestPassword() {
        if (closed || (phase != Phase.AWAIT_ADMISSION && phase != Phase.AWAIT_SERVER)) {
            return;
        }
        if (phase == Phase.AWAIT_ADMISSION && proven()) {
            phase = Phase.AWAIT_SERVER;
            context.passwordProven(); // a new server connection for it asks again: then the exchange follows
            return;
        }
        boolean tlsLeg = clientResponseSequence == 2;
        if (MySqlAuthPlugins.CACHING_SHA2.equals(response.authPlugin())) {
            // Its response already answers the greeting's scramble with caching_sha2_password (Connector/J 9
            // keeps that plugin's state across a switch to the same plugin): ask for the full authentication.
            passwordScramble = greetedWith.scramble();
            phase = Phase.PASSWORD;
            passwordStep = PasswordStep.FULL_AUTH;
            moreData(new byte[] {0x04});
            return;
        }
        String plugin = tlsLeg ? MySqlAuthPlugins.CLEAR : MySqlAuthPlugins.CACHING_SHA2;
        passwordScramble = MySqlGreeting.freshScramble();
        ByteBuf out = context.alloc().buffer(64);
        int start = MySqlWire.startPacket(out, nextClientSequence);
        out.writeByte(MySqlWire.EOF);
        MySqlWire.writeNulTerminatedString(out, plugin);
        out.writeBytes(passwordScramble).writeByte(0);
        MySqlWire.finishPacket(out, start);
        nextClientSequence = (nextClientSequence + 1) & 0xFF;
        phase = Phase.PASSWORD;
        passwordStep = PasswordStep.SWITCHED;
        context.toClient(out);
    }

    /** Whether the client's response to the greeting proves the password its pool last logged in with. */
    private boolean proven() {
        MySqlPasswordProof proof = module.proof(MySqlModule.poolKey(context.listener().name(), response.user(),
                response.database()));
        return proof != null && proof.proves(response.authPlugin(), response.authData(), greetedWith.scramble());
    }

    private void readPassword() {
        ByteBuf packet;
        while (phase == Phase.PASSWORD && (packet = clientPackets.next()) != null) {
            try {
                int sequenceId = packet.getUnsignedByte(3);
                if (sequenceId != nextClientSequence) {
                    throw new MalformedPacketException("authentication packet with sequence id " + sequenceId
                            + ", expected " + nextClientSequence);
                }
                nextClientSequence = (sequenceId + 1) & 0xFF;
                int length = packet.readableBytes() - MySqlWire.HEADER_SIZE;
                byte[] data = new byte[length];
                packet.getBytes(MySqlWire.HEADER_SIZE, data);
                packet.setZero(0, packet.capacity());
                passwordPacket(data);
            } finally {
                packet.release();
            }
        }
    }

    /** One answer of the client in the password exchange (its payload; wiped here). */
    private void passwordPacket(byte[] data) {
        boolean clear = clientResponseSequence == 2;
        switch (passwordStep) {
            case SWITCHED -> {
                if (clear || data.length == 0) {
                    give(data); // mysql_clear_password, or caching_sha2_password's empty password
                    return;
                }
                Arrays.fill(data, (byte) 0);
                passwordStep = PasswordStep.FULL_AUTH;
                moreData(new byte[] {0x04}); // AuthMoreData: perform full authentication
            }
            case FULL_AUTH -> {
                if (clear || (data.length == 1 && data[0] == 0)) {
                    give(data);
                } else if (data.length == 1 && data[0] == 0x02) {
                    passwordStep = PasswordStep.KEY_SENT;
                    sendOwnKey();
                } else {
                    decrypt(data); // the client had connguard's key already
                }
            }
            case KEY_SENT -> decrypt(data);
        }
    }

    /**
     * Decrypts the client's password off the event loop (RSA blinding reads the system's random source) and
     * gives it to core back on the loop.
     */
    private void decrypt(byte[] blob) {
        java.util.concurrent.CompletableFuture<java.security.KeyPair> key = module.ownRsaKey();
        if (!key.isDone()) {
            throw new MalformedPacketException("an encrypted password before connguard's key was offered");
        }
        phase = Phase.AWAIT_SERVER;
        byte[] scramble = passwordScramble;
        java.util.concurrent.CompletableFuture.supplyAsync(() -> MySqlRsa.decrypt(blob, scramble, key.join().getPrivate()))
                .whenComplete((password, failure) -> context.eventLoop().execute(() -> {
                    if (closed) {
                        if (password != null) {
                            Arrays.fill(password, (byte) 0);
                        }
                    } else if (password == null) {
                        context.violation("the client's RSA-encrypted password cannot be read");
                    } else {
                        give(password);
                    }
                }));
    }

    private void sendOwnKey() {
        java.util.concurrent.CompletableFuture<java.security.KeyPair> key = module.ownRsaKey();
        Runnable send = () -> {
            moreData(MySqlRsa.pem(key.join().getPublic()).getBytes(java.nio.charset.StandardCharsets.US_ASCII));
        };
        if (key.isDone()) {
            send.run();
        } else {
            key.whenComplete((pair, failure) -> context.eventLoop().execute(() -> {
                if (!closed && phase == Phase.PASSWORD) {
                    if (pair == null) {
                        context.upstreamFailed("connguard's RSA key could not be made: " + failure);
                    } else {
                        send.run();
                    }
                }
            }));
        }
    }

    /** An AuthMoreData packet: its 0x01 marker, then {@code data}; without the marker for whom it must be. */
    private void moreData(byte[] data) {
        if (markerlessMoreData()) {
            toClientPacket(data);
            return;
        }
        byte[] payload = new byte[1 + data.length];
        payload[0] = 0x01;
        System.arraycopy(data, 0, payload, 1, data.length);
        toClientPacket(payload);
    }

    /**
     * MySQL Connector/J reads MariaDB's server version "5.5.5-10..." as 5.5.5, older than 5.5.16, whose
     * AuthMoreData packets had no 0x01 marker, and so takes the marker for data: it gets them without.
     */
    private boolean markerlessMoreData() {
        byte[] attributes = response.attributes();
        if (!greetedWith.serverVersion().startsWith("5.5.5-") || attributes == null || attributes.length == 0) {
            return false;
        }
        try {
            return "MySQL Connector/J".equals(MySqlHandshakeResponse.attribute(
                    io.netty.buffer.Unpooled.wrappedBuffer(attributes), 0, attributes.length, "_client_name"));
        } catch (MalformedPacketException | IndexOutOfBoundsException e) {
            return false;
        }
    }

    private void toClientPacket(byte[] payload) {
        ByteBuf out = context.alloc().buffer(MySqlWire.HEADER_SIZE + payload.length);
        int start = MySqlWire.startPacket(out, nextClientSequence);
        out.writeBytes(payload);
        MySqlWire.finishPacket(out, start);
        nextClientSequence = (nextClientSequence + 1) & 0xFF;
        context.toClient(out);
    }

    /** The client's password (UTF-8, perhaps NUL-terminated; wiped here) goes to core. */
    private void give(byte[] password) {
        int length = password.length > 0 && password[password.length - 1] == 0 ? password.length - 1 : password.length;
        java.nio.CharBuffer chars = java.nio.charset.StandardCharsets.UTF_8.decode(java.nio.ByteBuffer.wrap(password, 0, length));
        char[] given = new char[chars.remaining()];
        chars.get(given);
        Arrays.fill(password, (byte) 0);
        if (chars.hasArray()) {
            Arrays.fill(chars.array(), '\0');
        }
        phase = Phase.AWAIT_SERVER;
        context.passwordGiven(given);
    }

    /** Transaction mode: a KILL of the client's id reaches thread {@code real} while it serves the client. */
    void threadLent(long real) {
        register(givenId, real);
    }

    /** Transaction mode: the client holds no server thread; a KILL of its id reaches none. */
    void threadReturned() {
        unregister();
    }

    /** The sequence id the client expects next from connguard during the connection phase. */
    int nextSequenceId() {
        return nextClientSequence;
    }

    /** The client's HandshakeResponse41 (pooled: what its server connection's login uses), or null before it. */
    MySqlHandshakeResponse response() {
        return response;
    }

    /**
     * Pooled: a server connection is lent to the client. Its thread id stands behind the client's id (KILL),
     * the client's character set is set on it when the connection has another, and the client gets its OK.
     */
    void serverLent(MySqlServerConnection server) {
        if (closed || (phase != Phase.AWAIT_SERVER && phase != Phase.AWAIT_ADMISSION)) {
            return;
        }
        lent = server;
        register(givenId, server.threadId());
        capabilities = negotiate(response.capabilities(), greetedWith.capabilities());
        int wanted = response.charset() & 0xFF;
        if (server.collation() != wanted) {
            ByteBuf out = context.alloc().buffer(128);
            int start = MySqlWire.startPacket(out, 0);
            out.writeByte(MySqlCommand.COM_QUERY);
            out.writeCharSequence(MySqlServerConnection.charsetStatement(wanted), java.nio.charset.StandardCharsets.US_ASCII);
            MySqlWire.finishPacket(out, start);
            phase = Phase.APPLYING;
            context.toUpstream(out);
            return;
        }
        finishLend();
    }

    /** The answer to the character set statement. */
    private void readApplied() {
        ByteBuf packet = serverPackets.next();
        if (packet == null) {
            return;
        }
        try {
            int first = packet.readableBytes() > MySqlWire.HEADER_SIZE ? packet.getUnsignedByte(MySqlWire.HEADER_SIZE) : -1;
            // An ERR: a collation id this server does not know; its own login would have fallen back the same way.
            lent.collation(first == MySqlWire.OK ? response.charset() & 0xFF : -1);
        } finally {
            packet.release();
        }
        finishLend();
    }

    private void finishLend() {
        int status = lent.status();
        ByteBuf ok = context.alloc().buffer(MySqlWire.HEADER_SIZE + 7);
        int start = MySqlWire.startPacket(ok, nextClientSequence);
        ok.writeByte(MySqlWire.OK).writeByte(0).writeByte(0).writeShortLE(status).writeShortLE(0);
        MySqlWire.finishPacket(ok, start);
        context.toClient(ok);
        phase = Phase.DONE;
        done.accept(result(status));
    }

    /**
     * The handshake is done: what the command phase needs, the thread id registration handed over with it.
     * The handshake is not used after this; the session drops it.
     */
    private Result result(int status) {
        byte[] attributes = response.attributes();
        Result result = new Result(capabilities, response.charset(), status, identity, clientPackets.takeRest(),
                serverPackets.takeRest(), givenId, realId, response.capabilities(),
                MySqlClientShares.attributes(attributes), lent);
        realId = -1;                                            // the session unregisters it now
        return result;
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

    /** The handshake's side of the password exchange. */
    private final class ExchangeLegs implements MySqlPasswordExchange.Legs {
        @Override
        public void toServer(ByteBuf packet) {
            context.toUpstream(packet);
        }

        @Override
        public void toClient(ByteBuf packet) {
            context.toClient(packet);
        }

        @Override
        public int delta() {
            return sequenceDelta;
        }

        @Override
        public void shift(int by) {
            sequenceDelta += by;
        }

        @Override
        public void clientExpects(int sequenceId) {
            nextClientSequence = sequenceId & 0xFF;
        }

        @Override
        public boolean authenticating() {
            return !closed && phase == Phase.AUTHENTICATING;
        }

        @Override
        public void relayClient() {
            relayClientPackets();
        }

        @Override
        public void refuse(ByteBuf err) {
            phase = Phase.DONE;
            context.toClient(err);
            context.close();
        }
    }

    void close() {
        closed = true;
        passwordExchange.close();
        clientPackets.close();
        serverPackets.close();
        if (clientResponse != null) {
            clientResponse.release();
            clientResponse = null;
        }
        unregister();
    }
}
