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
final class MySqlSession implements ProtocolSession, MySqlCommandScanner.Output {

    private static final byte[] COM_QUIT = {1, 0, 0, 0, MySqlCommand.COM_QUIT};

    private final SessionContext context;
    private final MySqlThreadIds threadIds;
    private final MySqlStatementCapture capture = new MySqlStatementCapture();
    /** The connection phase; dropped when it is done (an idle client keeps none of it). */
    private MySqlHandshake handshake;
    private MySqlCommandTracker tracker;
    private MySqlCommandScanner commands;
    private MySqlPacketScanner responses;
    private long capabilities;
    private int charset;
    /** The client's HandshakeResponse41 as sent (after the handshake): its capabilities and attributes (or null). */
    private long clientCapabilities;
    private byte[] attributes;
    /**
     * The id the client was greeted with, and the thread registered for it in {@link MySqlThreadIds} (0: none,
     * {@link MySqlThreadIds#NO_THREAD}); both unsigned 32-bit, as the protocol's connection ids are.
     */
    private int givenId;
    private int realId;
    /** Authenticating or running cancels without a slot of its own: commands other than KILL wait for one. */
    private boolean probation;
    private boolean closed;
    /** Pooled: the client's COM_QUIT was held back (the server connection goes back to the pool). */
    private boolean quitHeld;
    /** Transaction mode: borrowing a server connection per transaction (null otherwise). */
    private MySqlTransactionMode transactions;

    MySqlSession(MySqlModule module, SessionContext context) {
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
        } else if (handshake != null) {
            handshake.onClientBytes(bytes);
        } else {
            bytes.release();
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
        } else if (handshake != null) {
            handshake.onUpstreamBytes(bytes);
        } else {
            bytes.release();
        }
    }

    @Override
    public void onUpstreamConnected() {
        if (!closed && handshake != null) {
            handshake.onUpstreamConnected();
        }
    }

    @Override
    public void earlyUpstream(EarlyUpstream outcome) {
        if (!closed && handshake != null) {
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
        clientCapabilities = result.clientCapabilities();
        attributes = result.attributes();
        givenId = (int) result.givenId();
        realId = result.realId() < 0 ? (int) MySqlThreadIds.NO_THREAD : (int) result.realId();
        handshake.close();                                      // done: its buffers were handed over in the result
        handshake = null;
        tracker = new MySqlCommandTracker(context, result.identity());
        boolean transactionMode = !probation && context.transactionPooled();
        responses = transactionMode ? null : new MySqlPacketScanner(); // transaction mode takes one per lend
        commands = new MySqlCommandScanner(context.alloc(), tracker, threadIds.killRewriter(), capture, this);
        if (probation) {
            commands.gate(new ProbationGate());
        } else if (transactionMode) {
            transactions = new MySqlTransactionMode(context, this, tracker, commands, capabilities,
                    tracker.identity().database());
        } else if (context.listener().pooled()) {
            commands.gate(new PooledGate());
        }
        tracker.start(capabilities, result.status());
        if (result.serverLeftover() != null) {
            onUpstreamBytes(result.serverLeftover());
        }
        if (transactions != null) {
            transactions.started(result.server(), result.status()); // gives the connection back until the first command
        }
        if (result.clientLeftover() != null) {
            commands.scan(result.clientLeftover());
        }
    }

    @Override
    public void toUpstream(ByteBuf bytes) {
        if (!bytes.isReadable()) {
            bytes.release(); // a command transaction mode dropped
            return;
        }
        context.toUpstream(bytes);
    }

    /** The collation id of the client's handshake (its character set, which transaction mode replays). */
    int collation() {
        return charset & 0xFF;
    }

    /** Transaction mode: the client's COM_QUIT ends the session without reaching a server connection. */
    void quit() {
        quitHeld = true;
        context.close();
    }

    /** Transaction mode: a KILL of the client's id reaches thread {@code real} while it serves the client. */
    void threadLent(long real) {
        threadReturned();
        threadIds.register(Integer.toUnsignedLong(givenId), real);
        realId = (int) real;
    }

    /** Transaction mode: the client holds no server thread; a KILL of its id reaches none. */
    void threadReturned() {
        if (realId != MySqlThreadIds.NO_THREAD) {
            threadIds.unregister(Integer.toUnsignedLong(givenId), Integer.toUnsignedLong(realId));
            realId = (int) MySqlThreadIds.NO_THREAD;
        }
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
        if (!closed && handshake != null) {
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
        } else if (handshake != null) {
            handshake.serverLent((MySqlServerConnection) server);
        }
    }

    @Override
    public boolean serverFits(ServerConnectionProtocol server) {
        MySqlHandshakeResponse response = handshake == null ? null : handshake.response();
        if (handshake != null && response == null) {
            return false;
        }
        return server instanceof MySqlServerConnection mysql
                && mysql.fits(response != null ? response.capabilities() : clientCapabilities);
    }

    @Override
    public boolean serverReusable() {
        return tracker != null && !tracker.lost() && tracker.idle()
                && responsesAtBoundary() && commands.atBoundary()
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

    /**
     * What a pooled server connection opened for this client logs in with: the client's HandshakeResponse41,
     * from the handshake while it runs and from what the session kept of it afterwards.
     */
    MySqlServerConnection.Client loginClient() {
        return new MySqlServerConnection.Client() {
            @Override
            public long capabilities() {
                return handshake != null ? handshake.response().capabilities() : clientCapabilities;
            }

            @Override
            public int collation() {
                return handshake != null ? handshake.response().charset() : charset;
            }

            @Override
            public byte[] attributes() {
                byte[] sent = handshake != null ? handshake.response().attributes() : attributes;
                return sent == null ? new byte[0] : sent;
            }

            @Override
            public int nextSequenceId() {
                return handshake != null ? handshake.nextSequenceId() : tracker.nextSequenceId();
            }
        };
    }

    /** Whether the server's stream stands between packets (transaction mode: the lent connection's, if any). */
    private boolean responsesAtBoundary() {
        return transactions != null ? transactions.responsesAtBoundary() : responses.atBoundary();
    }

    /** COM_CHANGE_USER on a relay listener: the switch the server gets, and the identity it will give the session. */
    @Override
    public ByteBuf rewriteChangeUser(ByteBuf buf, int payloadIndex, int payloadLength) {
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
        if (tracker == null) {
            return handshake == null ? null : handshake.clientError(error);
        }
        if (!responsesAtBoundary()) {
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
        if (closed || tracker == null || !tracker.idle() || !responsesAtBoundary() || commands.holdingBack()) {
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
        if (handshake != null) {
            handshake.close();
        }
        threadReturned();
        if (commands != null) {
            commands.close();
        }
        if (transactions != null) {
            transactions.close();
        }
    }
}
