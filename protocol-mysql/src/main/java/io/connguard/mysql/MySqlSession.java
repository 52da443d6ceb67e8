package io.connguard.mysql;

import io.connguard.core.api.ClientIdentity;
import io.connguard.core.api.EarlyUpstream;
import io.connguard.core.api.ProtocolSession;
import io.connguard.core.api.ProxyError;
import io.connguard.core.api.ServerConnectionProtocol;
import io.connguard.core.api.SessionContext;
import io.netty.buffer.ByteBuf;

import static io.connguard.mysql.MySqlCapabilities.CLIENT_PROTOCOL_41;

/**
 * One client session: the handshake in {@link MySqlHandshake} (greet the client, learn who it is, then
 * authenticate through the real server), then the command phase, where {@link MySqlCommandScanner} and
 * {@link MySqlPacketScanner} read headers of the two streams and {@link MySqlCommandTracker} reports state.
 *
 * @see <a href="https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_connection_lifecycle.html">Connection lifecycle</a>
 */
final class MySqlSession implements ProtocolSession {

    private static final byte[] COM_QUIT = {1, 0, 0, 0, MySqlCommand.COM_QUIT};

    private final MySqlModule module;
    private final SessionContext context;
    private final MySqlThreadIds threadIds;
    private final MySqlStatementCapture capture = new MySqlStatementCapture();
    private final MySqlHandshake handshake;
    private MySqlCommandTracker tracker;
    private MySqlCommandScanner commands;
    private MySqlPacketScanner responses;
    private long capabilities;
    private int charset;
    /** Authenticating or running cancels without a slot of its own: commands other than KILL wait for one. */
    private boolean probation;
    private boolean closed;
    /** Pooled: the client's COM_QUIT was held back (the server connection goes back to the pool). */
    private boolean quitHeld;
    /** Transaction mode: borrowing a server connection per transaction (null otherwise). */
    private MySqlTransactionMode transactions;
    /** Pooled: the server connection the handshake was answered on. */
    private MySqlServerConnection firstServer;

    MySqlSession(MySqlModule module, SessionContext context) {
        this.module = module;
        this.context = context;
        this.threadIds = module.threadIds(context.listener());
        this.handshake = new MySqlHandshake(module, context, this::authenticated);
        handshake.greet();
    }

    @Override
    public void onClientBytes(ByteBuf bytes) {
        if (closed) {
            bytes.release();
        } else if (commands != null) {
            commands.scan(bytes);
            if (transactions != null && !closed) {
                transactions.checkRelease(); // a command without a response (COM_STMT_CLOSE) may end a lend
            }
        } else {
            handshake.onClientBytes(bytes);
        }
    }

    @Override
    public void onUpstreamBytes(ByteBuf bytes) {
        if (closed) {
            bytes.release();
        } else if (transactions != null) {
            transactions.serverBytes(bytes);
        } else if (responses != null) {
            responses.scan(bytes, tracker);
            context.toClient(bytes);
        } else {
            handshake.onUpstreamBytes(bytes);
        }
    }

    @Override
    public void onUpstreamConnected() {
        if (!closed) {
            handshake.onUpstreamConnected();
        }
    }

    @Override
    public void earlyUpstream(EarlyUpstream outcome) {
        if (!closed) {
            probation = outcome == EarlyUpstream.PROBATION;
            handshake.earlyUpstream(outcome);
        }
    }

    @Override
    public void slotGranted() {
        if (closed || !probation) {
            return;
        }
        probation = false;
        if (commands != null) {
            tracker.reportAgain(); // core counts the session from now on, in the state it is in
            commands.open();
        }
    }

    /** The server accepted the client: from here on both streams are relayed and tracked. */
    private void authenticated(MySqlHandshake.Result result) {
        capabilities = result.capabilities();
        charset = result.charset();
        tracker = new MySqlCommandTracker(context, result.identity());
        responses = new MySqlPacketScanner();
        commands = new MySqlCommandScanner(context.alloc(), tracker, new MySqlKillRewriter(threadIds::resolve),
                capture, this::rewriteChangeUser, this::toUpstream);
        if (probation) {
            commands.gate(new ProbationGate());
        } else if (context.transactionPooled()) {
            transactions = new MySqlTransactionMode(context, handshake, tracker, commands, responses, capabilities,
                    charset, tracker.identity().database(), this::quit);
        } else if (context.listener().pooled()) {
            commands.gate(new PooledGate());
        }
        tracker.start(capabilities, result.status());
        if (result.serverLeftover() != null) {
            onUpstreamBytes(result.serverLeftover());
        }
        if (transactions != null) {
            transactions.started(firstServer, result.status()); // gives the connection back until the first command
            firstServer = null;
        }
        if (result.clientLeftover() != null) {
            commands.scan(result.clientLeftover());
        }
    }

    private void toUpstream(ByteBuf bytes) {
        if (!bytes.isReadable()) {
            bytes.release(); // a command transaction mode dropped
            return;
        }
        context.toUpstream(bytes);
    }

    /** Transaction mode: the client's COM_QUIT ends the session without reaching a server connection. */
    private void quit() {
        quitHeld = true;
        context.close();
    }

    /**
     * What a connection on probation may run without a slot of its own: a cancel (a COM_QUERY that is one
     * bare KILL, or COM_PROCESS_KILL) of a live thread of the same listener, and COM_QUIT. Anything else
     * is held back and the connection asks core for its slot.
     */
    private final class ProbationGate implements MySqlCommandScanner.Gate {
        @Override
        public boolean allows(ByteBuf buf, int index, int need) {
            int length = buf.getUnsignedMediumLE(index);
            int payload = index + MySqlWire.HEADER_SIZE;
            if (need < MySqlWire.HEADER_SIZE + length) {
                return false; // not whole: too long to be a KILL
            }
            return switch (buf.getUnsignedByte(payload)) {
                case MySqlCommand.COM_QUIT -> true;
                case MySqlCommand.COM_QUERY -> {
                    long id = MySqlKillRewriter.soleKill(buf, payload + 1, length - 1);
                    yield id >= 0 && threadIds.isLive(id);
                }
                case MySqlCommand.COM_PROCESS_KILL -> length == 5 && threadIds.isLive(buf.getUnsignedIntLE(payload + 1));
                default -> false;
            };
        }

        @Override
        public void stopped() {
            context.requestSlot();
        }

        @Override
        public void overflow() {
            context.violation("more than " + MySqlCommandScanner.MAX_HELD_BACK
                    + " bytes sent while waiting for a connection slot");
        }
    }

    /**
     * Pooled listeners: the client's COM_QUIT ends the session without reaching the server connection, which
     * goes back to the pool; COM_CHANGE_USER is refused (the connection belongs to the pool of one user).
     */
    private final class PooledGate implements MySqlCommandScanner.Gate {
        private boolean quit;

        @Override
        public boolean allows(ByteBuf buf, int index, int need) {
            int command = buf.getUnsignedByte(index + MySqlWire.HEADER_SIZE);
            quit = command == MySqlCommand.COM_QUIT;
            return !quit && command != MySqlCommand.COM_CHANGE_USER;
        }

        @Override
        public void stopped() {
            if (quit) {
                quitHeld = true;
                context.close();
            } else {
                context.violation("COM_CHANGE_USER is not supported on a pooled listener (pool.mode: session): "
                        + "connect as the other user instead");
            }
        }

        @Override
        public void overflow() {
            context.violation("bytes sent after COM_QUIT");
        }
    }

    // ---------------------------------------------------------------- pooled listeners

    @Override
    public void requestPassword() {
        if (!closed) {
            handshake.requestPassword();
        }
    }

    @Override
    public void onServerLent(ServerConnectionProtocol server) {
        if (closed) {
            return;
        }
        if (transactions != null) {
            transactions.lent((MySqlServerConnection) server);
        } else {
            firstServer = (MySqlServerConnection) server;
            handshake.serverLent(firstServer);
        }
    }

    @Override
    public boolean serverFits(ServerConnectionProtocol server) {
        MySqlHandshakeResponse response = handshake.response();
        return response != null && server instanceof MySqlServerConnection mysql && mysql.fits(response.capabilities());
    }

    @Override
    public boolean serverReusable() {
        return tracker != null && !tracker.lost() && tracker.idle()
                && responses.atBoundary() && commands.atBoundary()
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

    /** What a pooled server connection opened for this client logs in with. */
    MySqlServerConnection.Client loginClient() {
        return new MySqlServerConnection.Client() {
            @Override
            public long capabilities() {
                return handshake.response().capabilities();
            }

            @Override
            public int collation() {
                return handshake.response().charset();
            }

            @Override
            public byte[] attributes() {
                byte[] attributes = handshake.response().attributes();
                return attributes == null ? new byte[0] : attributes;
            }

            @Override
            public int nextSequenceId() {
                return handshake.nextSequenceId();
            }
        };
    }

    private ByteBuf rewriteChangeUser(ByteBuf buf, int payloadIndex, int payloadLength) {
        try {
            MySqlChangeUser changeUser = MySqlChangeUser.decode(buf, payloadIndex, payloadLength, capabilities);
            String application = changeUser.programName() != null ? changeUser.programName()
                    : tracker.identity().application();
            tracker.expectChangeUser(new ClientIdentity(changeUser.user(), changeUser.database(), application));
            return changeUser.encodeForSwitch(context.alloc(), capabilities, charset);
        } catch (MalformedPacketException e) {
            context.violation("malformed COM_CHANGE_USER: " + e.getMessage());
            return null;
        }
    }

    @Override
    public ByteBuf clientError(ProxyError error) {
        if (closed) {
            return null;
        }
        if (responses == null) {
            return handshake.clientError(error);
        }
        if (!responses.atBoundary()) {
            return null; // inside a server packet: an inserted ERR would corrupt what the client reads
        }
        return MySqlErrorWriter.write(context.alloc(), error, tracker.nextSequenceId(),
                (capabilities & CLIENT_PROTOCOL_41) != 0);
    }

    /**
     * MySQL Connector/J skips whatever is readable before it sends a command, so the ERR of a kill sent
     * while it was idle never reaches it; the same ERR, as the response to its next command (sequence id
     * 1), does.
     */
    @Override
    public ByteBuf errorForNextRequest(ProxyError error) {
        if (closed || tracker == null || !tracker.idle() || !responses.atBoundary() || commands.holdingBack()) {
            return null; // a held-back command is answered by clientError's ERR itself
        }
        return MySqlErrorWriter.write(context.alloc(), error, 1, (capabilities & CLIENT_PROTOCOL_41) != 0);
    }

    @Override
    public ByteBuf upstreamGoodbye() {
        if (closed || context.listener().pooled() || commands == null || !commands.atBoundary() || tracker.quit()
                || tracker.clientMode() != MySqlCommandTracker.ClientMode.COMMANDS) {
            return null;
        }
        return context.alloc().buffer(COM_QUIT.length).writeBytes(COM_QUIT);
    }

    @Override
    public boolean clientSaidGoodbye() {
        return tracker != null && (tracker.quit() || quitHeld);
    }

    @Override
    public String lastStatement() {
        return capture.fingerprint();
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        handshake.close();
        if (commands != null) {
            commands.close();
        }
        if (transactions != null) {
            transactions.close();
        }
    }
}
