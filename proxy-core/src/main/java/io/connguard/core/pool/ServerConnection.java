package io.connguard.core.pool;

import io.connguard.core.api.ClientIdentity;
import io.connguard.core.api.ListenerInfo;
import io.connguard.core.api.ServerConnectionContext;
import io.connguard.core.api.ServerConnectionProtocol;
import io.connguard.core.api.SessionLog;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.channel.Channel;
import io.netty.channel.EventLoop;
import io.netty.util.ReferenceCountUtil;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.Arrays;

/**
 * One pooled server connection: it owns its channel, its protocol half (login, reset, goodbye) and its
 * lifetime, and is either logging in, idle in its pool, lent to one client session, or resetting after a
 * client gave it back. While lent, the server's bytes go to the lessee; otherwise to the protocol half.
 * Confined to its pool's event loop.
 */
public final class ServerConnection implements ServerConnectionContext {

    private static final Logger LOG = LoggerFactory.getLogger("io.connguard.pool");

    enum State { CONNECTING, LOGIN, IDLE, LENT, RESETTING, CLOSED }

    private final long id;
    private final ServerPool pool;
    private final long openedNanos;
    private final Log log = new Log();
    private Channel channel;
    private ServerConnectionProtocol protocol;
    private State state = State.CONNECTING;
    private long idleSince;
    /** The session this connection is opened for or lent to. */
    private Lessee lessee;
    /** The password this connection logged in (or is logging in) with; cleared once the pool has used it. */
    private char[] password;
    private boolean passwordAsked;
    private boolean reading;
    /** Transaction mode: why its lessee is pinned to it (reasons, comma-separated), or null. */
    private String pinned;
    /** Where this connection is in its pool's {@link BusyConnections}, or -1 when it is not there. */
    int busyIndex = -1;

    ServerConnection(long id, ServerPool pool, long openedNanos) {
        this.id = id;
        this.pool = pool;
        this.openedNanos = openedNanos;
    }

    void open(Channel channel, ClientIdentity who, char[] password) {
        this.channel = channel;
        this.password = password == null ? null : password.clone();
        this.protocol = pool.listener().module().newServerConnection(this, who, password,
                lessee == null ? null : lessee.protocolSession());
        state = State.LOGIN;
        channel.read();
        protocol.onConnected();
    }

    // ------------------------------------------------------------------ channel events

    void active() {
        // The login starts from the connect promise (open), which fires after channelActive.
    }

    void read(ByteBuf bytes) {
        reading = true;
        try {
            switch (state) {
                case LENT -> lessee.serverRead(bytes);
                case LOGIN, IDLE, RESETTING -> protocol.onServerBytes(bytes);
                default -> bytes.release();
            }
        } catch (RuntimeException e) {
            LOG.atWarn().setCause(e).addKeyValue("serverConnection", id).log("server connection failed");
            ReferenceCountUtil.safeRelease(bytes);
            failed("internal error: " + e);
        }
    }

    void readComplete() {
        reading = false;
        if (state == State.LENT) {
            lessee.serverReadComplete();
        } else if (state != State.CLOSED && channel.isActive()) {
            channel.read();
        }
    }

    void writabilityChanged() {
        if (state == State.LENT) {
            lessee.serverWritabilityChanged();
        }
    }

    void closed() {
        State was = state;
        if (was == State.CLOSED) {
            return;
        }
        state = State.CLOSED;
        clearPassword();
        if (protocol != null) {
            protocol.close();
        }
        if (was == State.LOGIN && lessee != null) {
            pool.loginFailed(this, "the database closed the connection during the login");
        }
        pool.closed(this, was);
        if (was == State.LENT && lessee != null) {
            Lessee l = lessee;
            lessee = null;
            l.serverClosed();
        }
    }

    // ------------------------------------------------------------------ pool's commands

    void lend(Lessee to) {
        lessee = to;
        state = State.LENT;
        to.lent(this);
    }

    /** Given back by its lessee: reset (full or not) and then idle, or closed when it is not reusable. */
    void giveBack(boolean reusable, boolean fullReset) {
        lessee = null;
        if (state != State.LENT) {
            return;
        }
        if (!reusable) {
            close();
            return;
        }
        state = State.RESETTING;
        channel.read();
        protocol.reset(fullReset);
    }

    /** Ends the connection politely (Terminate) and closes it. */
    void close() {
        if (state == State.CLOSED || channel == null) {
            if (channel == null) {
                state = State.CLOSED;
            }
            return;
        }
        ByteBuf goodbye = state == State.IDLE || state == State.RESETTING ? protocol.goodbye() : null;
        if (goodbye != null && channel.isActive()) {
            channel.writeAndFlush(goodbye).addListener(done -> channel.close());
        } else {
            ReferenceCountUtil.release(goodbye);
            channel.close();
        }
    }

    void idle(long now) {
        state = State.IDLE;
        idleSince = now;
        channel.read(); // an idle connection still hears the server (a shutdown notice, a FATAL)
    }

    void openedFor(Lessee who) {
        lessee = who;
    }

    Lessee lessee() {
        return lessee;
    }

    /** The password the server asked for, from the client; resumes the paused login. */
    public void password(char[] given) {
        if (state != State.LOGIN) {
            return;
        }
        password = given.clone();
        protocol.password(given);
    }

    // ------------------------------------------------------------------ ServerConnectionContext

    @Override
    public long id() {
        return id;
    }

    @Override
    public ListenerInfo listener() {
        return pool.listener().info();
    }

    @Override
    public boolean transactionPooled() {
        return pool.poolConfig().mode() == io.connguard.core.config.PoolConfig.Mode.TRANSACTION;
    }

    @Override
    public ByteBufAllocator alloc() {
        return channel.alloc();
    }

    @Override
    public EventLoop eventLoop() {
        return channel.eventLoop();
    }

    @Override
    public SessionLog log() {
        return log;
    }

    @Override
    public void toServer(ByteBuf bytes) {
        if (channel == null || !channel.isActive()) {
            bytes.release();
            return;
        }
        channel.writeAndFlush(bytes, channel.voidPromise());
    }

    @Override
    public void loggedIn(boolean asked) {
        if (state != State.LOGIN) {
            return;
        }
        passwordAsked = asked;
        pool.loggedIn(this, asked, password);
        clearPassword();
    }

    @Override
    public void passwordNeeded() {
        if (state == State.LOGIN) {
            pool.passwordNeeded(this);
        }
    }

    @Override
    public void loginRefused(ByteBuf clientError, boolean credentials, String reason) {
        if (state != State.LOGIN) {
            ReferenceCountUtil.release(clientError);
            return;
        }
        log.info("the database refused the login: {}", reason);
        pool.loginRefused(this, clientError, credentials, password, reason);
        clearPassword();
        close();
    }

    @Override
    public void resetDone() {
        if (state == State.RESETTING) {
            pool.resetDone(this);
        }
    }

    @Override
    public void failed(String reason) {
        if (state == State.CLOSED) {
            return;
        }
        log.info("server connection closed: {}", reason);
        if (state == State.LOGIN && lessee != null) {
            pool.loginFailed(this, reason);
        }
        close();
    }

    // ------------------------------------------------------------------ views

    public Channel channel() {
        return channel;
    }

    /** The protocol half, for the client's protocol session to read what the connection is set to. */
    public ServerConnectionProtocol protocol() {
        return protocol;
    }

    State state() {
        return state;
    }

    long openedNanos() {
        return openedNanos;
    }

    long idleSince() {
        return idleSince;
    }

    boolean passwordAsked() {
        return passwordAsked;
    }

    boolean pinned() {
        return pinned != null;
    }

    String pinReason() {
        return pinned;
    }

    void pinned(String reasons) {
        pinned = reasons;
    }

    boolean reading() {
        return reading;
    }

    private void clearPassword() {
        if (password != null) {
            Arrays.fill(password, '\0');
            password = null;
        }
    }

    private final class Log implements SessionLog {
        @Override
        public void debug(String message, Object... args) {
            if (LOG.isDebugEnabled()) {
                LOG.atDebug().addKeyValue("serverConnection", id).addKeyValue("listener", pool.key().listener())
                        .addKeyValue("user", pool.key().user()).log(message, args);
            }
        }

        @Override
        public void info(String message, Object... args) {
            LOG.atInfo().addKeyValue("serverConnection", id).addKeyValue("listener", pool.key().listener())
                    .addKeyValue("user", pool.key().user()).log(message, args);
        }

        @Override
        public void warn(String message, Object... args) {
            LOG.atWarn().addKeyValue("serverConnection", id).addKeyValue("listener", pool.key().listener())
                    .addKeyValue("user", pool.key().user()).log(message, args);
        }
    }
}
