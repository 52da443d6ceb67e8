package io.connguard.mysql;

import io.connguard.core.api.ClientIdentity;
import io.connguard.core.api.ProxyError;
import io.connguard.core.api.SessionContext;
import io.netty.buffer.ByteBuf;

import java.util.function.Consumer;

import static io.connguard.mysql.MySqlCapabilities.CLIENT_MYSQL;
import static io.connguard.mysql.MySqlCapabilities.CLIENT_PLUGIN_AUTH;
import static io.connguard.mysql.MySqlCapabilities.CLIENT_PROTOCOL_41;
import static io.connguard.mysql.MySqlCapabilities.CLIENT_SSL;

/**
 * The connection phase of one session, in two legs. Before admission the proxy greets the client itself
 * (the server's greeting with the proxy's connection id and scramble), reads its HandshakeResponse41 and
 * reports the identity; the upstream does not exist yet. Once admitted it reads the real greeting, does
 * the SSL request and TLS handshake if the listener says so, and sends the client's response with no auth
 * data and a plugin name no account uses: the server answers with an AuthSwitchRequest carrying its real
 * scramble, and from there every authentication packet is relayed with sequence ids translated.
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

    private enum Phase { AWAIT_GREETING, AWAIT_RESPONSE, AWAIT_ADMISSION, UPSTREAM_GREETING, UPSTREAM_TLS, AUTHENTICATING, DONE }

    private static final int MAX_PACKET = 64 * 1024;

    private final MySqlModule module;
    private final SessionContext context;
    private final long connectionId;
    private final Consumer<Result> done;
    private final MySqlPacketAssembler clientPackets;
    private final MySqlPacketAssembler serverPackets;
    private Phase phase = Phase.AWAIT_GREETING;
    private MySqlHandshakeResponse response;
    private ClientIdentity identity;
    private long capabilities;
    private int sequenceDelta;
    private int nextClientSequence = 2;
    private boolean closed;

    MySqlHandshake(MySqlModule module, SessionContext context, long connectionId, Consumer<Result> done) {
        this.module = module;
        this.context = context;
        this.connectionId = connectionId;
        this.done = done;
        this.clientPackets = new MySqlPacketAssembler(context.alloc(), MAX_PACKET);
        this.serverPackets = new MySqlPacketAssembler(context.alloc(), MAX_PACKET);
    }

    /** Greets the client from the cached greeting, or after probing the server for one. */
    void greet() {
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
        context.toClient(serverGreeting.forClient(connectionId).encode(context.alloc(), 0));
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
        phase = Phase.UPSTREAM_GREETING;
    }

    void onUpstreamBytes(ByteBuf bytes) {
        serverPackets.add(bytes);
        try {
            if (phase == Phase.UPSTREAM_GREETING) {
                readServerGreeting();
            } else if (phase == Phase.AUTHENTICATING) {
                relayServerPackets();
            }
        } catch (MalformedPacketException e) {
            context.upstreamFailed("malformed server handshake: " + e.getMessage());
        }
    }

    private void readResponse() {
        ByteBuf packet = clientPackets.next();
        if (packet == null) {
            return;
        }
        try {
            if (packet.getUnsignedByte(3) != 1) {
                throw new MalformedPacketException("handshake response with sequence id " + packet.getUnsignedByte(3));
            }
            response = MySqlHandshakeResponse.decode(packet, MySqlWire.HEADER_SIZE, packet.readableBytes() - MySqlWire.HEADER_SIZE);
        } finally {
            packet.release();
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
        phase = Phase.AWAIT_ADMISSION;
        identity = new ClientIdentity(response.user(), response.database(), response.programName());
        context.identified(identity);
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
        module.mapThreadId(connectionId, greeting.connectionId());
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
        if ((greeting.capabilities() & CLIENT_SSL) == 0) {
            context.upstreamFailed("the server does not offer TLS, which upstreamTls.mode "
                    + context.listener().upstreamTls().name().toLowerCase(java.util.Locale.ROOT) + " requires");
            return;
        }
        context.toUpstream(MySqlHandshakeResponse.encodeSslRequest(context.alloc(), 1, capabilities,
                response.maxPacketSize(), response.charset()));
        phase = Phase.UPSTREAM_TLS;
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
        sequenceDelta = sequenceId - 1;
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
        context.toClient(MySqlErrorWriter.write(context.alloc(), 2, code, sqlState, message));
        context.close();
    }

    private void relayClientPackets() {
        ByteBuf packet;
        while (phase == Phase.AUTHENTICATING && (packet = clientPackets.next()) != null) {
            int sequenceId = packet.getUnsignedByte(3);
            nextClientSequence = (sequenceId + 1) & 0xFF;
            packet.setByte(3, sequenceId + sequenceDelta);
            context.toUpstream(packet);
        }
    }

    private void relayServerPackets() {
        ByteBuf packet;
        while (phase == Phase.AUTHENTICATING && (packet = serverPackets.next()) != null) {
            int sequenceId = (packet.getUnsignedByte(3) - sequenceDelta) & 0xFF;
            packet.setByte(3, sequenceId);
            nextClientSequence = (sequenceId + 1) & 0xFF;
            int first = packet.readableBytes() > MySqlWire.HEADER_SIZE ? packet.getUnsignedByte(MySqlWire.HEADER_SIZE) : -1;
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
            case AWAIT_GREETING -> MySqlErrorWriter.write(context.alloc(), error, -1, false);
            case AWAIT_RESPONSE -> MySqlErrorWriter.write(context.alloc(), error, 2, false);
            case DONE -> null;
            default -> MySqlErrorWriter.write(context.alloc(), error, nextClientSequence,
                    (response.capabilities() & CLIENT_PROTOCOL_41) != 0);
        };
    }

    void close() {
        closed = true;
        clientPackets.close();
        serverPackets.close();
    }
}
