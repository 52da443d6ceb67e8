package io.connguard.mysql;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;

import java.nio.charset.StandardCharsets;
import java.security.PublicKey;
import java.util.Arrays;

import static io.connguard.mysql.MySqlCapabilities.CLIENT_CONNECT_ATTRS;
import static io.connguard.mysql.MySqlCapabilities.CLIENT_CONNECT_WITH_DB;
import static io.connguard.mysql.MySqlCapabilities.CLIENT_MYSQL;
import static io.connguard.mysql.MySqlCapabilities.CLIENT_PLUGIN_AUTH;
import static io.connguard.mysql.MySqlCapabilities.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA;
import static io.connguard.mysql.MySqlCapabilities.CLIENT_PROTOCOL_41;
import static io.connguard.mysql.MySqlCapabilities.CLIENT_SECURE_CONNECTION;
import static io.connguard.mysql.MySqlCapabilities.CLIENT_SESSION_TRACK;
import static io.connguard.mysql.MySqlCapabilities.CLIENT_SSL;

/**
 * connguard's own login to a MySQL / MariaDB server with a password it knows, for pooled server
 * connections; and the COM_CHANGE_USER exchange that re-authenticates a connection as another user. A
 * state machine on whole packets (handshake packets are small; frame them with
 * {@link MySqlPacketAssembler}): feed each server packet to {@link #onPacket}; after each returned
 * {@link Step#SEND} or {@link Step#START_TLS} send {@link #takeOutput()}; after {@link Step#START_TLS} start
 * TLS on the channel and call {@link #tlsEstablished()}. It ends in {@link Step#DONE} (the server's OK) or
 * {@link Step#FAILED} ({@link #errorCode()}: the server's ERR, such as 1045 for a wrong password, or 2000+
 * for what connguard refused: an unknown plugin, a cleartext password without TLS, a malformed packet).
 *
 * <p>HandshakeResponse41 carries {@code CLIENT_SESSION_TRACK} when the server has it, the capabilities the
 * pooler asks for (those a client's framing depends on) that the server offers, and the client's
 * connection attributes. Plugins: mysql_native_password; caching_sha2_password (fast path; full path with
 * the password over TLS, or RSA-encrypted with a configured or requested server key); sha256_password
 * likewise; MariaDB client_ed25519; mysql_clear_password over TLS only; any number of auth switches.
 * The password stays the caller's (a pool logs in many connections with it); copies made here are wiped.
 *
 * @see <a href="https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_connection_phase.html">Connection phase</a>
 * @see <a href="https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_com_change_user.html">COM_CHANGE_USER</a>
 */
final class MySqlServerLogin {

    /** What the pooler does next. */
    enum Step { SEND, START_TLS, WAIT, DONE, FAILED }

    /**
     * Who logs in: {@code password} UTF-8 (not modified); {@code collation} the client's (its handshake's
     * charset byte); {@code attributes} the connection attributes' key/value bytes as the client sent them
     * ({@link MySqlHandshakeResponse#attributes()}), or empty.
     */
    record Credentials(String user, byte[] password, String database, int collation, byte[] attributes) {
    }

    /** Capabilities always asked for when the server has them: what this login itself needs. */
    static final long REQUIRED = CLIENT_PROTOCOL_41 | CLIENT_SECURE_CONNECTION | CLIENT_PLUGIN_AUTH
            | CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA | CLIENT_SESSION_TRACK;
    /** What the login needs without session tracking (session mode: responses framed as its client negotiated). */
    static final long REQUIRED_UNTRACKED = REQUIRED & ~CLIENT_SESSION_TRACK;
    static final int MAX_PACKET = 1 << 24;

    /** connguard's own refusals (the client library's range, as libmysqlclient reports them). */
    static final int CR_UNKNOWN_ERROR = 2000, CR_AUTH_PLUGIN_CANNOT_LOAD = 2059, CR_SSL_CONNECTION_ERROR = 2026,
            CR_MALFORMED_PACKET = 2027;

    private static final int AUTH_MORE_DATA = 0x01, FAST_AUTH_SUCCESS = 0x03, PERFORM_FULL_AUTHENTICATION = 0x04;

    private enum State { GREETING, TLS, AUTH, DONE, FAILED }

    private Credentials credentials;
    private final long wanted;
    private final long required;
    private final boolean tls;
    private final ByteBufAllocator alloc;
    private PublicKey serverKey;

    private State state = State.GREETING;
    private MySqlGreeting greeting;
    private long capabilities;
    private String plugin;
    private byte[] scramble;
    private boolean awaitingKey;
    private ByteBuf output;
    private int errorCode;
    private String sqlState;
    private String errorMessage;

    /**
     * @param wanted    capabilities the pooler wants (the framing flags of the clients it will serve, such as
     *                  a client's {@link MySqlHandshakeResponse#capabilities()}); compression, query
     *                  attributes and COM_MULTI are never asked for
     * @param tls       upstreamTls: SSLRequest and TLS before the response; the server must offer it
     * @param serverKey the server's RSA public key for caching_sha2 / sha256 full authentication without
     *                  TLS; null: asked from the server when needed
     */
    MySqlServerLogin(Credentials credentials, long wanted, boolean tls, PublicKey serverKey, ByteBufAllocator alloc) {
        this(credentials, wanted, true, tls, serverKey, alloc);
    }

    /** As above; {@code track}: ask for {@code CLIENT_SESSION_TRACK} even when {@code wanted} has not. */
    MySqlServerLogin(Credentials credentials, long wanted, boolean track, boolean tls, PublicKey serverKey,
                     ByteBufAllocator alloc) {
        this.credentials = credentials;
        this.wanted = wanted;
        this.required = track ? REQUIRED : REQUIRED_UNTRACKED;
        this.tls = tls;
        this.serverKey = serverKey;
        this.alloc = alloc;
    }

    /** A whole server packet: payload {@code [payloadIndex, payloadIndex + payloadLength)}, its sequence id. */
    Step onPacket(ByteBuf buf, int payloadIndex, int payloadLength, int sequenceId) {
        try {
            return switch (state) {
                case GREETING -> greeting(buf, payloadIndex, payloadLength);
                case AUTH -> auth(buf, payloadIndex, payloadLength, sequenceId);
                case TLS -> fail(CR_MALFORMED_PACKET, "a packet from the server before the TLS handshake");
                case DONE, FAILED -> throw new IllegalStateException("the login is over");
            };
        } catch (MalformedPacketException e) {
            return fail(CR_MALFORMED_PACKET, "malformed packet from the server: " + e.getMessage());
        }
    }

    /** TLS is up after {@link Step#START_TLS}: the HandshakeResponse41 follows (send {@link #takeOutput()}). */
    Step tlsEstablished() {
        if (state != State.TLS) {
            throw new IllegalStateException("no TLS handshake was asked for");
        }
        state = State.AUTH;
        return respond(2);
    }

    /**
     * The capabilities a login asks for {@code wanted} (with {@code required}) from a server that offers
     * {@code server}, without TLS, schema and connection attributes (they depend on the credentials).
     */
    static long capabilitiesFor(long wanted, long required, long server) {
        long asked = (wanted | required) & ~CLIENT_SSL & ~CLIENT_CONNECT_WITH_DB & ~CLIENT_CONNECT_ATTRS
                & ~MySqlCapabilities.HIDDEN_FROM_CLIENT;
        if ((server & CLIENT_MYSQL) != 0) {
            asked &= 0xFFFFFFFFL;                               // MariaDB extensions only for a MariaDB server
        } else {
            asked &= ~CLIENT_MYSQL;
        }
        return asked & server;
    }

    /**
     * Starts a COM_CHANGE_USER as {@code as} on the connection this login opened (after {@link Step#DONE}):
     * returns the packet to send, then feed the response to {@link #onPacket} as for a login. After
     * {@link Step#FAILED} the connection is no longer authenticated: close it.
     */
    ByteBuf changeUser(Credentials as) {
        if (state != State.DONE) {
            throw new IllegalStateException("COM_CHANGE_USER needs a logged-in connection");
        }
        state = State.AUTH;
        errorCode = 0;
        credentials = as;
        byte[] auth = authResponse(as.password(), plugin);
        ByteBuf out = alloc.buffer(64 + as.user().length() + auth.length + as.attributes().length);
        int start = MySqlWire.startPacket(out, 0);
        out.writeByte(MySqlCommand.COM_CHANGE_USER);
        MySqlWire.writeNulTerminatedString(out, as.user());
        out.writeByte(auth.length).writeBytes(auth);
        MySqlWire.writeNulTerminatedString(out, as.database() == null ? "" : as.database());
        out.writeShortLE(as.collation());
        MySqlWire.writeNulTerminatedString(out, plugin);
        if ((capabilities & CLIENT_CONNECT_ATTRS) != 0) {
            MySqlWire.writeLenencInt(out, as.attributes().length);
            out.writeBytes(as.attributes());
        }
        MySqlWire.finishPacket(out, start);
        Arrays.fill(auth, (byte) 0);
        return out;
    }

    /** COM_RESET_CONNECTION: the session back to a fresh one's, same user and schema; answered by OK or ERR. */
    static ByteBuf resetConnection(ByteBufAllocator alloc) {
        ByteBuf out = alloc.buffer(5);
        int start = MySqlWire.startPacket(out, 0);
        out.writeByte(0x1F);
        MySqlWire.finishPacket(out, start);
        return out;
    }

    /** The packet to send after {@link Step#SEND} / {@link Step#START_TLS}; owned by the caller. */
    ByteBuf takeOutput() {
        ByteBuf taken = output;
        output = null;
        return taken;
    }

    MySqlGreeting greeting() {
        return greeting;
    }

    /** The capabilities of the connection (what was sent in the response). */
    long capabilities() {
        return capabilities;
    }

    /** The server's thread id (from its greeting). */
    long threadId() {
        return greeting == null ? -1 : greeting.connectionId();
    }

    /** The auth plugin in use at the end. */
    String plugin() {
        return plugin;
    }

    int errorCode() {
        return errorCode;
    }

    String sqlState() {
        return sqlState;
    }

    String errorMessage() {
        return errorMessage;
    }

    /** Releases a packet not taken. */
    void release() {
        if (output != null) {
            output.release();
            output = null;
        }
    }

    // ------------------------------------------------------------------ steps

    private Step greeting(ByteBuf buf, int index, int length) {
        if (length > 0 && buf.getUnsignedByte(index) == MySqlWire.ERR) {
            return error(buf, index, length);                   // too many connections, host blocked ...
        }
        greeting = MySqlGreeting.decode(buf, index, length);
        long server = greeting.capabilities();
        if ((server & CLIENT_PROTOCOL_41) == 0 || (server & CLIENT_PLUGIN_AUTH) == 0) {
            return fail(CR_UNKNOWN_ERROR, "the server does not speak protocol 4.1 with auth plugins");
        }
        long asked = capabilitiesFor(wanted, required, server);
        if (credentials.database() != null && !credentials.database().isEmpty()) {
            asked |= CLIENT_CONNECT_WITH_DB;
        }
        if (credentials.attributes().length > 0) {
            asked |= CLIENT_CONNECT_ATTRS;
        }
        capabilities = asked & server;
        plugin = greeting.authPluginName().isEmpty() ? MySqlAuthPlugins.NATIVE : greeting.authPluginName();
        scramble = greeting.scramble();
        if (tls) {
            if ((server & CLIENT_SSL) == 0) {
                return fail(CR_SSL_CONNECTION_ERROR, "upstreamTls is on, but the server does not offer TLS");
            }
            capabilities |= CLIENT_SSL;
            state = State.TLS;
            setOutput(MySqlHandshakeResponse.encodeSslRequest(alloc, 1, capabilities, MAX_PACKET, credentials.collation()));
            return Step.START_TLS;
        }
        state = State.AUTH;
        return respond(1);
    }

    private Step respond(int sequenceId) {
        byte[] auth = initialResponse(plugin);
        if (auth == null) {
            return state == State.FAILED ? Step.FAILED : fail(CR_AUTH_PLUGIN_CANNOT_LOAD, "unsupported plugin " + plugin);
        }
        byte[] user = credentials.user().getBytes(StandardCharsets.UTF_8);
        ByteBuf out = alloc.buffer(64 + user.length + auth.length + credentials.attributes().length);
        int start = MySqlWire.startPacket(out, sequenceId);
        out.writeIntLE((int) capabilities).writeIntLE(MAX_PACKET).writeByte(credentials.collation()).writeZero(19);
        out.writeIntLE((capabilities & CLIENT_MYSQL) == 0 ? (int) (capabilities >>> 32) : 0);
        out.writeBytes(user).writeByte(0);
        MySqlWire.writeLenencInt(out, auth.length);
        out.writeBytes(auth);
        if ((capabilities & CLIENT_CONNECT_WITH_DB) != 0) {
            MySqlWire.writeNulTerminatedString(out, credentials.database());
        }
        MySqlWire.writeNulTerminatedString(out, plugin);
        if ((capabilities & CLIENT_CONNECT_ATTRS) != 0) {
            MySqlWire.writeLenencInt(out, credentials.attributes().length);
            out.writeBytes(credentials.attributes());
        }
        MySqlWire.finishPacket(out, start);
        setOutput(out);
        return Step.SEND;
    }

    private Step auth(ByteBuf buf, int index, int length, int sequenceId) {
        int end = index + length;
        int header = MySqlWire.readInt1(buf, index, end);
        switch (header) {
            case MySqlWire.OK -> {
                state = State.DONE;
                        return Step.DONE;
            }
            case MySqlWire.ERR -> {
                return error(buf, index, length);
            }
            case MySqlWire.EOF -> {
                if (length == 1) {
                    return fail(CR_AUTH_PLUGIN_CANNOT_LOAD, "the server asks for the pre-4.1 password hash");
                }
                int nul = MySqlWire.nulIndex(buf, index + 1, end);
                plugin = buf.toString(index + 1, nul - index - 1, StandardCharsets.US_ASCII);
                // 20 bytes and a NUL for the SHA plugins; ed25519's 32 random bytes have no terminator (and may end in 0)
                int dataEnd = !MySqlAuthPlugins.ED25519.equals(plugin) && end > nul + 1 && buf.getByte(end - 1) == 0
                        ? end - 1 : end;
                scramble = new byte[Math.max(0, dataEnd - nul - 1)];
                buf.getBytes(nul + 1, scramble);
                awaitingKey = false;
                byte[] auth = initialResponse(plugin);
                if (auth == null) {
                    return state == State.FAILED ? Step.FAILED : fail(CR_AUTH_PLUGIN_CANNOT_LOAD, "unsupported plugin " + plugin);
                }
                return send(sequenceId + 1, auth);
            }
            case AUTH_MORE_DATA -> {
                return moreData(buf, index + 1, end, sequenceId);
            }
            default -> {
                return fail(CR_MALFORMED_PACKET, "unexpected packet 0x" + Integer.toHexString(header) + " during authentication");
            }
        }
    }

    private Step moreData(ByteBuf buf, int index, int end, int sequenceId) {
        boolean sha2 = MySqlAuthPlugins.CACHING_SHA2.equals(plugin);
        if (!sha2 && !MySqlAuthPlugins.SHA256.equals(plugin)) {
            return fail(CR_MALFORMED_PACKET, "AuthMoreData for plugin " + plugin);
        }
        if (awaitingKey) {
            byte[] pem = new byte[end - index];
            buf.getBytes(index, pem);
            serverKey = MySqlRsa.parsePem(pem);
            awaitingKey = false;
            return send(sequenceId + 1, MySqlRsa.encrypt(nulTerminated(), scramble, serverKey));
        }
        int status = MySqlWire.readInt1(buf, index, end);
        if (sha2 && status == FAST_AUTH_SUCCESS) {
            return Step.WAIT;                                   // the OK follows
        }
        if (sha2 && status == PERFORM_FULL_AUTHENTICATION) {
            return fullAuthentication(sequenceId + 1);
        }
        return fail(CR_MALFORMED_PACKET, "unexpected AuthMoreData status " + status);
    }

    private Step fullAuthentication(int sequenceId) {
        if (tls) {
            return send(sequenceId, nulTerminated());
        }
        if (serverKey != null) {
            return send(sequenceId, MySqlRsa.encrypt(nulTerminated(), scramble, serverKey));
        }
        awaitingKey = true;
        return send(sequenceId, new byte[] {MySqlAuthPlugins.SHA256.equals(plugin) ? (byte) 0x01 : (byte) 0x02});
    }

    /** The auth data for {@code name} over the current scramble; null (after failing) when refused or unknown. */
    private byte[] initialResponse(String name) {
        byte[] password = password();
        switch (name) {
            case MySqlAuthPlugins.NATIVE:
                return MySqlAuthPlugins.nativePassword(password, scramble);
            case MySqlAuthPlugins.CACHING_SHA2:
                return MySqlAuthPlugins.cachingSha2(password, scramble);
            case MySqlAuthPlugins.ED25519:
                return MySqlAuthPlugins.ed25519(password, scramble);
            case MySqlAuthPlugins.SHA256:
                if (password.length == 0) {
                    return new byte[] {0};
                }
                if (tls) {
                    return nulTerminated();
                }
                if (serverKey != null) {
                    return MySqlRsa.encrypt(nulTerminated(), scramble, serverKey);
                }
                awaitingKey = true;
                return new byte[] {0x01};
            case MySqlAuthPlugins.CLEAR:
                if (!tls) {
                    fail(CR_AUTH_PLUGIN_CANNOT_LOAD, "the server asks for mysql_clear_password, which connguard sends over TLS only");
                    return null;
                }
                return nulTerminated();
            default:
                return null;
        }
    }

    /** The auth data of a COM_CHANGE_USER for {@code name} with {@code password} over the last scramble. */
    private byte[] authResponse(byte[] password, String name) {
        return switch (name) {
            case MySqlAuthPlugins.CACHING_SHA2 -> MySqlAuthPlugins.cachingSha2(password, scramble);
            case MySqlAuthPlugins.ED25519 -> new byte[0];       // the server switches and sends a fresh scramble
            default -> MySqlAuthPlugins.nativePassword(password, scramble);
        };
    }

    private byte[] password() {
        return credentials.password();
    }

    private byte[] nulTerminated() {
        return Arrays.copyOf(password(), password().length + 1);
    }

    private Step send(int sequenceId, byte[] data) {
        ByteBuf out = alloc.buffer(MySqlWire.HEADER_SIZE + data.length);
        int start = MySqlWire.startPacket(out, sequenceId & 0xFF);
        out.writeBytes(data);
        MySqlWire.finishPacket(out, start);
        Arrays.fill(data, (byte) 0);
        setOutput(out);
        return Step.SEND;
    }

    private Step error(ByteBuf buf, int index, int length) {
        int end = index + length;
        errorCode = MySqlWire.readInt2(buf, index + 1, end);
        int i = index + 3;
        if (i < end && buf.getByte(i) == '#' && i + 6 <= end) {
            sqlState = buf.toString(i + 1, 5, StandardCharsets.US_ASCII);
            i += 6;
        }
        errorMessage = buf.toString(i, end - i, StandardCharsets.UTF_8);
        state = State.FAILED;
        return Step.FAILED;
    }

    private Step fail(int code, String message) {
        errorCode = code;
        sqlState = "HY000";
        errorMessage = message;
        state = State.FAILED;
        return Step.FAILED;
    }

    private void setOutput(ByteBuf buf) {
        if (output != null) {
            output.release();
        }
        output = buf;
    }
}
