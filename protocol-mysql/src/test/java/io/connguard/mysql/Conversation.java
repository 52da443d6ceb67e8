package io.connguard.mysql;

import io.connguard.core.api.ListenerInfo;
import io.connguard.core.api.SessionState;
import io.connguard.core.testing.FuzzSession;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;

import java.net.InetSocketAddress;

import static io.connguard.mysql.Packets.packet;
import static io.connguard.mysql.Packets.payload;
import static org.assertj.core.api.Assertions.assertThat;

/** One session of a module, driven byte by byte from a test, with helpers for the handshake. */
final class Conversation {

    /** The classic capabilities libmariadb 3.3 sent in the captured fixtures, and its MariaDB extensions. */
    static final long LIBMARIADB_CAPS = 0x00bfa28cL | 0x1dL << 32;
    /** Like Connector/J: CLIENT_MYSQL set, CLIENT_DEPRECATE_EOF and lenenc auth data. */
    static final long CONNECTOR_J_CAPS = 0x01ffa20fL & ~MySqlCapabilities.CLIENT_COMPRESS & ~MySqlCapabilities.CLIENT_SSL;
    static final long REAL_THREAD_ID = 4711;

    final MySqlModule module;
    final TrackingContext context;
    final MySqlSession session;

    Conversation(MySqlModule module, ListenerInfo listener) {
        this(module, listener, null);
    }

    /**
     * A session whose core opens the upstream before identification (the listener is under its cap) and,
     * when the client is identified, does {@code early} with it; null: core opens none.
     */
    Conversation(MySqlModule module, ListenerInfo listener, io.connguard.core.api.EarlyUpstream early) {
        this.module = module;
        this.context = new TrackingContext(listener);
        context.recording.grantEarlyUpstream = early != null;
        context.earlyOutcome = early;
        this.session = (MySqlSession) module.newSession(context);
        context.session = session;
    }

    static ListenerInfo listener(ListenerInfo.UpstreamTlsMode tls) {
        return new ListenerInfo("my", InetSocketAddress.createUnresolved("127.0.0.1", 3306), tls, ListenerInfo.ClientTlsMode.DISABLE);
    }

    /** A module that already knows the captured MariaDB 10.11 greeting for listener "my". */
    static MySqlModule moduleWithGreeting() {
        MySqlModule module = new MySqlModule();
        module.remember(listener(ListenerInfo.UpstreamTlsMode.DISABLE), serverGreeting(REAL_THREAD_ID));
        return module;
    }

    /** The greeting MariaDB 10.11 sent in the fixtures, with another thread id. */
    static MySqlGreeting serverGreeting(long threadId) {
        byte[] captured = Packets.fixture("mariadb-select-transaction").get(0).bytes();
        ByteBuf buf = Unpooled.wrappedBuffer(captured);
        MySqlGreeting greeting = MySqlGreeting.decode(buf, 4, captured.length - 4);
        return new MySqlGreeting(greeting.serverVersion(), threadId, greeting.capabilities(), greeting.charset(),
                greeting.status(), greeting.authPluginName(), greeting.scramble());
    }

    static byte[] handshakeResponse(long capabilities, String user, String database, String programName) {
        byte[] attributes = payload(12, "program_name", programName.length(), programName);
        byte[] extended = (capabilities & MySqlCapabilities.CLIENT_MYSQL) == 0
                ? payload((int) (capabilities >>> 32) & 0xFF, 0, 0, 0) : new byte[4];
        return packet(1, payload((int) capabilities & 0xFF, (int) (capabilities >>> 8) & 0xFF,
                (int) (capabilities >>> 16) & 0xFF, (int) (capabilities >>> 24) & 0xFF, 0, 0, 0, 1, 45,
                new byte[19], extended, user, 0, 20, new byte[20], database, 0, "mysql_native_password", 0,
                attributes.length, attributes));
    }

    void client(byte[] bytes) {
        session.onClientBytes(context.wrap(bytes));
    }

    void server(byte[] bytes) {
        session.onUpstreamBytes(context.wrap(bytes));
    }

    byte[] toClient() {
        return context.recording.takeToClient();
    }

    byte[] toUpstream() {
        return context.recording.takeToUpstream();
    }

    SessionState state() {
        return context.recording.lastState();
    }

    /** Runs the whole handshake for a client with these capabilities; the session is then idle. */
    Conversation authenticate(long clientCapabilities) {
        toClient(); // the proxy's greeting
        client(handshakeResponse(clientCapabilities, "cg_my_native", "test", "orders-app"));
        session.onUpstreamConnected();
        server(Packets.fixture("mariadb-select-transaction").get(0).bytes());
        toUpstream();
        server(packet(2, payload(0xFE, "mysql_native_password", 0, "abcdefghij0123456789", 0)));
        assertThat(toClient()[3]).as("sequence id of the relayed AuthSwitchRequest").isEqualTo((byte) 2);
        client(packet(3, new byte[20]));
        assertThat(toUpstream()).startsWith(20, 0, 0, 3);
        server(Packets.ok(4, 0x0002));
        assertThat(toClient()).startsWith(7, 0, 0, 4);
        assertThat(state()).isEqualTo(SessionState.IDLE);
        return this;
    }

    /**
     * The handshake on an upstream opened before identification and kept: the client is greeted with the
     * server's greeting (thread {@code threadId}) and its response goes upstream as it is. The session is then idle.
     */
    Conversation authenticateEarly(long clientCapabilities, long threadId) {
        session.onUpstreamConnected();
        server(serverGreetingPacket(threadId));
        toClient();
        client(handshakeResponse(clientCapabilities, "cg_my_native", "test", "orders-app"));
        assertThat(toUpstream()[3]).as("sequence id of the client's response upstream").isEqualTo((byte) 1);
        server(Packets.ok(2, 0x0002));
        assertThat(toClient()).startsWith(7, 0, 0, 2);
        return this;
    }

    /** The captured MariaDB 10.11 greeting packet with another thread id. */
    static byte[] serverGreetingPacket(long threadId) {
        byte[] greeting = Packets.fixture("mariadb-select-transaction").get(0).bytes().clone();
        int idAt = nulAfter(greeting, 5) + 1; // after the version string
        greeting[idAt] = (byte) threadId;
        greeting[idAt + 1] = (byte) (threadId >>> 8);
        greeting[idAt + 2] = (byte) (threadId >>> 16);
        greeting[idAt + 3] = (byte) (threadId >>> 24);
        return greeting;
    }

    private static int nulAfter(byte[] bytes, int from) {
        int i = from;
        while (bytes[i] != 0) {
            i++;
        }
        return i;
    }

    /**
     * The same handshake for a session driven by {@link FuzzSession} (which plays core, closing the session
     * from inside the call that reported a violation); the session is then idle.
     */
    static void authenticate(FuzzSession fuzz, long clientCapabilities) {
        fuzz.client(handshakeResponse(clientCapabilities, "cg_my_native", "test", "fuzz"));
        fuzz.connect();
        fuzz.server(Packets.fixture("mariadb-select-transaction").get(0).bytes());
        fuzz.server(packet(2, payload(0xFE, "mysql_native_password", 0, "abcdefghij0123456789", 0)));
        fuzz.client(packet(3, new byte[20]));
        fuzz.server(Packets.ok(4, 0x0002));
        assertThat(fuzz.recording.lastState()).isEqualTo(SessionState.IDLE);
    }

    /** Closes the session and checks that every buffer made for this conversation was released. */
    void finish() {
        session.close();
        context.alloc.assertAllReleased();
    }
}
