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

    MySqlHandshake(MySqlModule module, SessionContext context, Consumer<Result> done) {
        this.module = module;
        this.context = context;
        this.threadIds = module.threadIds(context.listener());
        this.done = done;
        this.clientPackets = new MySqlPacketAssembler(context.alloc(), MAX_PACKET);
        this.passwordExchange = new MySqlPasswordExchange(module, context, new ExchangeLegs());
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
