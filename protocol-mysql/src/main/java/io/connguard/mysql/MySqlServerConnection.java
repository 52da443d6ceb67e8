package io.connguard.mysql;

import io.connguard.core.api.ClientIdentity;
import io.connguard.core.api.ServerConnectionContext;
import io.connguard.core.api.ServerConnectionProtocol;
import io.netty.buffer.ByteBuf;

import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;

import static io.connguard.mysql.MySqlCapabilities.CLIENT_CONNECT_ATTRS;
import static io.connguard.mysql.MySqlCapabilities.CLIENT_CONNECT_WITH_DB;
import static io.connguard.mysql.MySqlCapabilities.CLIENT_DEPRECATE_EOF;
import static io.connguard.mysql.MySqlCapabilities.CLIENT_MULTI_RESULTS;
import static io.connguard.mysql.MySqlCapabilities.CLIENT_MULTI_STATEMENTS;
import static io.connguard.mysql.MySqlCapabilities.CLIENT_MYSQL;
import static io.connguard.mysql.MySqlCapabilities.CLIENT_PLUGIN_AUTH;
import static io.connguard.mysql.MySqlCapabilities.CLIENT_PROTOCOL_41;
import static io.connguard.mysql.MySqlCapabilities.CLIENT_SECURE_CONNECTION;
import static io.connguard.mysql.MySqlCapabilities.CLIENT_SSL;
import static io.connguard.mysql.MySqlCapabilities.CLIENT_TRANSACTIONS;

/**
 * The MySQL / MariaDB half of one pooled server connection (session mode): logs in with
 * {@link MySqlServerLogin} as the pool's user to its database, with the capabilities and collation of the
 * client it is opened for (so the server frames responses exactly as that client negotiated), and between
 * clients resets it: {@code COM_RESET_CONNECTION} (rolls back, drops temporary tables, user variables,
 * prepared statements, locks; session variables back to the globals), the character set of its login set
 * again, and the pool's schema selected again ({@code COM_INIT_DB}) or, for a pool without a database,
 * checked to be none ({@code SELECT DATABASE()}; a connection on which a client selected one is closed, as
 * MySQL cannot unselect a schema). The three go as one pipelined write.
 *
 * <p>MySQL checks a password for every account (an empty one too), so a login always reports that the
 * database asked for one: later clients of the pool are asked theirs.
 *
 * @see <a href="https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_com_reset_connection.html">COM_RESET_CONNECTION</a>
 */
final class MySqlServerConnection implements ServerConnectionProtocol {

    /** What the client session a connection is opened for tells its login. */
    interface Client {
        /** The capabilities of the client's HandshakeResponse41. */
        long capabilities();

        /** The collation id of the client's HandshakeResponse41. */
        int collation();

        /** The client's connection attributes as it sent them (key/value bytes), or empty. */
        byte[] attributes();

        /** The sequence id of the next packet the client expects from connguard (for a refusal). */
        int nextSequenceId();
    }

    /** Capabilities of a connection opened without a client ({@code minIdle} with {@code auth.usersFile}). */
    static final long WITHOUT_CLIENT = CLIENT_MYSQL | 4L /* CLIENT_LONG_FLAG */ | CLIENT_PROTOCOL_41 | CLIENT_TRANSACTIONS
            | CLIENT_SECURE_CONNECTION | CLIENT_MULTI_STATEMENTS | CLIENT_MULTI_RESULTS | (1L << 18) /* PS_MULTI_RESULTS */
            | CLIENT_PLUGIN_AUTH | CLIENT_DEPRECATE_EOF;
    /** utf8mb4_general_ci, for a connection opened without a client. */
    static final int DEFAULT_COLLATION = 45;
    /** What two logins may differ in and still frame every response the same way. */
    private static final long NOT_COMPARED = CLIENT_CONNECT_WITH_DB | CLIENT_CONNECT_ATTRS | CLIENT_SSL;
    private static final int SERVER_STATUS_AUTOCOMMIT = 0x0002;
    private static final int MAX_PACKET = 64 * 1024;
    private static final byte[] COM_QUIT = {1, 0, 0, 0, MySqlCommand.COM_QUIT};
    private static final byte COM_INIT_DB = 0x02;
    private static final byte COM_RESET_CONNECTION = 0x1F;

    /** Statements kept prepared per server connection in transaction mode (least recently used closed beyond). */
    static final int SERVER_STATEMENTS = 250;

    private enum Phase { LOGIN, TRACKING, READY, RESET, CLOSED }

    private final ServerConnectionContext context;
    private final MySqlModule module;
    private final ClientIdentity who;
    private final Client client;
    private final MySqlPacketAssembler packets;
    private final int loginCollation;
    private MySqlServerLogin login;
    private byte[] password;
    /** The server's greeting, held while the login waits for the client's password. */
    private ByteBuf greeting;
    private Phase phase = Phase.LOGIN;
    private long capabilities;
    private long serverCapabilities;
    private long threadId = -1;
    private int status = SERVER_STATUS_AUTOCOMMIT;
    /** The collation id the connection's character set variables are set to; -1: not known. */
    private int collation;
    /** Reset: responses still expected, and where the schema check's result set stands. */
    private int resetAnswers;
    private int resultPacket = -1;
    private boolean schemaIsNone;
    private boolean charsetUnknown;
    /** The server's reset sets the login's character set again (MariaDB 10.5+): the reset need not. */
    private boolean resetKeepsCharset;
    /** Reset: the index of the charset statement's answer ({@link #resetIndex}); -1: not sent. */
    private int charsetIndex = -1;
    /** Transaction mode: the connection follows each client's session state (null otherwise). */
    private final boolean transactions;
    private final MySqlSessionState state;
    private final MySqlServerStatements statements;
    private final MySqlOkCapture okCapture;
    /**
     * Transaction mode: the start of a COM_STMT_PREPARE response's first packet, held back from the client until
     * its statement id has come whole (the lessee rewrites it); kept here, with the stream it belongs to.
     */
    private ByteBuf heldPrepare;
    /** Reset: which answer comes next (0: COM_RESET_CONNECTION's). */
    private int resetIndex;

    MySqlServerConnection(ServerConnectionContext context, ClientIdentity who, char[] password, Client client) {
        this(context, who, password, client, null);
    }

    /** {@code module} (may be null) learns the passwords its logins are accepted or refused with. */
    MySqlServerConnection(ServerConnectionContext context, ClientIdentity who, char[] password, Client client,
                          MySqlModule module) {
        this.context = context;
        this.module = module;
        this.who = who;
        this.client = client;
        this.password = password == null ? null : utf8(password);
        this.loginCollation = client == null ? DEFAULT_COLLATION : client.collation() & 0xFF;
        this.collation = loginCollation;
        this.packets = new MySqlPacketAssembler(context.alloc(), MAX_PACKET);
        this.transactions = context.transactionPooled();
        this.state = transactions ? new MySqlSessionState(who.database()) : null;
        this.statements = transactions ? new MySqlServerStatements(SERVER_STATEMENTS) : null;
        this.okCapture = transactions ? new MySqlOkCapture() : null;
    }

    @Override
    public void onConnected() {
        // The server speaks first: its greeting.
    }

    @Override
    public void onServerBytes(ByteBuf bytes) {
        if (phase == Phase.CLOSED) {
            bytes.release();
            return;
        }
        packets.add(bytes);
        try {
            ByteBuf packet;
            while (phase != Phase.CLOSED && (phase != Phase.LOGIN || greeting == null) && (packet = packets.next()) != null) {
                switch (phase) {
                    case LOGIN -> loginPacket(packet);
                    case RESET -> resetPacket(packet);
                    case TRACKING -> trackingPacket(packet);
                    default -> idlePacket(packet);
                }
            }
        } catch (MalformedPacketException e) {
            fail("malformed packet from the server: " + e.getMessage());
        }
    }

    @Override
    public void password(char[] given) {
        if (phase != Phase.LOGIN || password != null) {
            return;
        }
        password = utf8(given);
        ByteBuf held = greeting;
        greeting = null;
        if (held != null) {
            loginPacket(held);
            onServerBytes(context.alloc().buffer(0)); // packets that came while it waited
        }
    }

    private void loginPacket(ByteBuf packet) {
        try {
            if (password == null) {
                greeting = packet.retain();
                context.passwordNeeded();
                return;
            }
            if (login == null) {
                int length = packet.readableBytes() - MySqlWire.HEADER_SIZE;
                if (length > 0 && packet.getUnsignedByte(MySqlWire.HEADER_SIZE) != MySqlWire.ERR) {
                    MySqlGreeting greeting = MySqlGreeting.decode(packet, MySqlWire.HEADER_SIZE, length);
                    serverCapabilities = greeting.capabilities();
                    resetKeepsCharset = greeting.resetRestoresLoginCharset();
                }
                long wanted = client == null ? WITHOUT_CLIENT : client.capabilities();
                byte[] attributes = client == null ? new byte[0] : client.attributes();
                login = new MySqlServerLogin(new MySqlServerLogin.Credentials(who.user(), password, who.database(),
                        loginCollation, attributes), wanted, transactions, false, null, context.alloc());
            }
            step(login.onPacket(packet, MySqlWire.HEADER_SIZE, packet.readableBytes() - MySqlWire.HEADER_SIZE,
                    packet.getUnsignedByte(3)));
        } finally {
            packet.release();
        }
    }

    private void step(MySqlServerLogin.Step step) {
        switch (step) {
            case SEND -> context.toServer(login.takeOutput());
            case START_TLS -> {
                login.release();
                fail("upstreamTls is not supported on pooled MySQL listeners yet");
            }
            case WAIT -> { }
            case DONE -> {
                capabilities = login.capabilities();
                threadId = login.threadId();
                if (module != null) {
                    module.accepted(poolKey(), password);
                }
                wipe();
                if (transactions) {
                    phase = Phase.TRACKING; // the OK packets report each client's changes from now on
                    ByteBuf out = context.alloc().buffer(128);
                    command(out, (byte) MySqlCommand.COM_QUERY, MySqlSessionState.ENABLE_TRACKING);
                    context.toServer(out);
                    return;
                }
                phase = Phase.READY;
                context.loggedIn(true); // MySQL checks a password for every account, an empty one too
            }
            case FAILED -> {
                int code = login.errorCode();
                String sqlState = login.sqlState() == null ? "HY000" : login.sqlState();
                String message = login.errorMessage();
                if (module != null && code == 1045) {
                    module.refused(poolKey(), password);
                }
                wipe();
                phase = Phase.CLOSED;
                if (code >= 2000) {
                    context.failed("connguard's login failed: " + code + " " + message);
                    return;
                }
                ByteBuf error = client == null ? null
                        : MySqlErrorWriter.write(context.alloc(), client.nextSequenceId(), code, sqlState, message);
                context.loginRefused(error, code == 1045, "ERROR " + code + " (" + sqlState + "): " + message);
            }
        }
    }

    /** Transaction mode: the answer to {@link MySqlSessionState#ENABLE_TRACKING} after the login. */
    private void trackingPacket(ByteBuf packet) {
        try {
            int first = packet.readableBytes() > MySqlWire.HEADER_SIZE ? packet.getUnsignedByte(MySqlWire.HEADER_SIZE) : -1;
            if (first != MySqlWire.OK) {
                fail("the server refused session-state tracking, which transaction mode needs: " + describe(packet));
                return;
            }
            status = MySqlHandshake.okStatus(packet);
            phase = Phase.READY;
            context.loggedIn(true);
        } finally {
            packet.release();
        }
    }

    /** A packet from an idle connection: the server ends it (a shutdown, a KILL from elsewhere). */
    private void idlePacket(ByteBuf packet) {
        String what = describe(packet);
        packet.release();
        fail("the server ended the idle connection: " + what);
    }

    @Override
    public void reset(boolean full) {
        if (phase != Phase.READY) {
            context.failed("reset in the wrong phase " + phase);
            return;
        }
        if (!full) {
            if (!transactions) {
                collation = -1; // pool.reset: none; what the client set is not known
            } // transaction mode: the state is known (state()), the next client's replay sets what differs
            context.resetDone();
            return;
        }
        phase = Phase.RESET;
        ByteBuf out = context.alloc().buffer(256);
        command(out, COM_RESET_CONNECTION, null);
        int answers = 1;
        charsetIndex = -1;
        if (!resetKeepsCharset) {
            command(out, (byte) MySqlCommand.COM_QUERY, charsetStatement(loginCollation));
            charsetIndex = answers++;
        }
        if (transactions) {
            command(out, (byte) MySqlCommand.COM_QUERY, MySqlSessionState.ENABLE_TRACKING); // the reset turned it off
            answers++;
        }
        String schema = who.database() == null ? "" : who.database();
        schemaIsNone = schema.isEmpty();
        if (schemaIsNone) {
            command(out, (byte) MySqlCommand.COM_QUERY, "SELECT DATABASE()");
        } else {
            command(out, COM_INIT_DB, schema);
        }
        resetAnswers = answers + 1;
        resetIndex = 0;
        resultPacket = -1;
        charsetUnknown = false;
        context.toServer(out);
    }

    private void resetPacket(ByteBuf packet) {
        try {
            int first = packet.readableBytes() > MySqlWire.HEADER_SIZE ? packet.getUnsignedByte(MySqlWire.HEADER_SIZE) : -1;
            if (resetIndex == charsetIndex && first == MySqlWire.ERR) {
                charsetUnknown = true; // a collation id this server does not know: its login fell back to the default
                answered();
                return;
            }
            if (resultPacket < 0 && first == MySqlWire.ERR) {
                fail("reset failed: " + describe(packet));
                return;
            }
            if (resetAnswers == 1 && schemaIsNone) {
                schemaRow(packet, first);
                return;
            }
            if (first != MySqlWire.OK) {
                fail("reset failed: unexpected packet 0x" + Integer.toHexString(first));
                return;
            }
            status = MySqlHandshake.okStatus(packet);
            answered();
        } finally {
            packet.release();
        }
    }

    /** The result set of {@code SELECT DATABASE()}: one column, one row, NULL when no schema is selected. */
    private void schemaRow(ByteBuf packet, int first) {
        resultPacket++;
        int row = (capabilities & CLIENT_DEPRECATE_EOF) != 0 ? 2 : 3;
        if (resultPacket == row && first != 0xFB) {
            fail("a client selected a schema, which MySQL cannot unselect on a pool without a database");
        } else if (resultPacket == row + 1) {
            if (first == MySqlWire.EOF || first == MySqlWire.OK) {
                status = first == MySqlWire.EOF && packet.readableBytes() < MySqlWire.HEADER_SIZE + 9
                        ? packet.getUnsignedShortLE(MySqlWire.HEADER_SIZE + 3) : MySqlHandshake.okStatus(packet);
            }
            answered();
        }
    }

    private void answered() {
        resetIndex++;
        if (--resetAnswers == 0) {
            phase = Phase.READY;
            collation = charsetUnknown ? -1 : loginCollation;
            if (transactions) {
                state.reset();
                statements.forgetAll();
            }
            context.resetDone();
        }
    }

    @Override
    public ByteBuf goodbye() {
        return context.alloc().buffer(COM_QUIT.length).writeBytes(COM_QUIT);
    }

    @Override
    public void close() {
        phase = Phase.CLOSED;
        if (heldPrepare != null) {
            heldPrepare.release();
            heldPrepare = null;
        }
        wipe();
        packets.close();
        if (greeting != null) {
            greeting.release();
            greeting = null;
        }
    }

    // ---------------------------------------------------------------- for the client's MySqlSession

    /** Whether a client that sent {@code clientCapabilities} gets responses framed as it negotiated here. */
    boolean fits(long clientCapabilities) {
        long wanted = MySqlServerLogin.capabilitiesFor(clientCapabilities,
                transactions ? MySqlServerLogin.REQUIRED : MySqlServerLogin.REQUIRED_UNTRACKED, serverCapabilities);
        return (wanted & ~NOT_COMPARED) == (capabilities & ~NOT_COMPARED);
    }

    long threadId() {
        return threadId;
    }

    /** The status flags of the last OK (autocommit), for the OK the client gets. */
    int status() {
        return status;
    }

    int collation() {
        return collation;
    }

    /** The client's own character set was set ({@code id}), or could not be ({@code -1}). */
    void collation(int id) {
        collation = id;
        if (state != null) {
            state.forgetLoginVariables(); // what a login with that collation has: no change to replay
        }
    }

    /** Transaction mode: the session state this connection holds now (what its clients changed). */
    MySqlSessionState state() {
        return state;
    }

    /** Transaction mode: the statements prepared on this connection. */
    MySqlServerStatements statements() {
        return statements;
    }

    /** Transaction mode: the held start of a prepare response (see {@link #holdPrepare}), or null. */
    ByteBuf heldPrepare() {
        return heldPrepare;
    }

    /** Transaction mode: holds (or, with null, forgets without releasing) the start of a prepare response. */
    void holdPrepare(ByteBuf bytes) {
        heldPrepare = bytes;
    }

    /** Transaction mode: reads the session state of this connection's OK packets. */
    MySqlOkCapture okCapture() {
        return okCapture;
    }

    /** The capabilities this connection logged in with (its response framing). */
    long capabilities() {
        return capabilities;
    }

    /**
     * The statement that sets the character set variables as a login with collation {@code id} does: client,
     * connection and results to its character set, collation_connection to it. The server takes ids for them.
     */
    static String charsetStatement(int id) {
        return "SET character_set_client = " + id + ", character_set_connection = " + id
                + ", character_set_results = " + id + ", collation_connection = " + id;
    }

    // ---------------------------------------------------------------- helpers

    private String poolKey() {
        return MySqlModule.poolKey(context.listener().name(), who.user(), who.database());
    }

    private static void command(ByteBuf out, byte command, String argument) {
        int start = MySqlWire.startPacket(out, 0);
        out.writeByte(command);
        if (argument != null) {
            out.writeCharSequence(argument, StandardCharsets.UTF_8);
        }
        MySqlWire.finishPacket(out, start);
    }

    private static String describe(ByteBuf packet) {
        int end = packet.writerIndex();
        if (end - packet.readerIndex() < MySqlWire.HEADER_SIZE + 3 || packet.getUnsignedByte(MySqlWire.HEADER_SIZE) != MySqlWire.ERR) {
            return "an unexpected packet";
        }
        int code = packet.getUnsignedShortLE(MySqlWire.HEADER_SIZE + 1);
        int text = MySqlWire.HEADER_SIZE + 3;
        if (text < end && packet.getByte(text) == '#') {
            text = Math.min(end, text + 6);
        }
        return "ERROR " + code + ": " + packet.toString(text, end - text, StandardCharsets.UTF_8);
    }

    private void fail(String reason) {
        phase = Phase.CLOSED;
        context.failed(reason);
    }

    private void wipe() {
        if (password != null) {
            Arrays.fill(password, (byte) 0);
            password = null;
        }
        if (login != null) {
            login.release();
        }
    }

    private static byte[] utf8(char[] chars) {
        ByteBuffer encoded = StandardCharsets.UTF_8.encode(CharBuffer.wrap(chars));
        byte[] bytes = new byte[encoded.remaining()];
        encoded.get(bytes);
        if (encoded.hasArray()) {
            Arrays.fill(encoded.array(), (byte) 0);
        }
        return bytes;
    }
}
