package io.connguard.core.testing;

import io.connguard.core.api.ClientIdentity;
import io.connguard.core.api.ClientTlsSession;
import io.connguard.core.api.ListenerInfo;
import io.connguard.core.api.SessionContext;
import io.connguard.core.api.SessionLog;
import io.connguard.core.api.SessionState;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandler;
import io.netty.channel.EventLoop;
import io.netty.util.concurrent.Future;

import java.net.InetSocketAddress;

/**
 * A {@link SessionContext} for micro-benchmarks of a protocol session: it counts the bytes relayed each
 * way and the state reports, releases what it is given and allocates nothing, so that a benchmark
 * measures the protocol's own cost. The first lost sync, violation or upstream failure is kept for the
 * benchmark to check. Single-threaded, like a real session.
 */
public final class CountingSessionContext implements SessionContext {

    private static final SessionLog QUIET = new SessionLog() {
        @Override
        public void debug(String message, Object... args) {
        }

        @Override
        public void info(String message, Object... args) {
        }

        @Override
        public void warn(String message, Object... args) {
        }
    };

    private final ListenerInfo listener;

    public long toClientBytes;
    public long toUpstreamBytes;
    public long stateReports;
    public SessionState state;
    public ClientIdentity identity;
    /** The first lostSync, violation or upstreamFailed report, or null. */
    public String problem;

    public CountingSessionContext(ListenerInfo listener) {
        this.listener = listener;
    }

    @Override
    public long id() {
        return 1;
    }

    @Override
    public ListenerInfo listener() {
        return listener;
    }

    @Override
    public InetSocketAddress clientAddress() {
        return null;
    }

    @Override
    public ByteBufAllocator alloc() {
        return PooledByteBufAllocator.DEFAULT;
    }

    @Override
    public EventLoop eventLoop() {
        throw new UnsupportedOperationException("no event loop in a micro-benchmark");
    }

    @Override
    public SessionLog log() {
        return QUIET;
    }

    @Override
    public void identified(ClientIdentity who) {
        identity = who;
    }

    @Override
    public void stateChanged(SessionState reported) {
        state = reported;
        stateReports++;
    }

    @Override
    public void lostSync(String reason) {
        problem("lost sync: " + reason);
    }

    @Override
    public void violation(String reason) {
        problem("violation: " + reason);
    }

    @Override
    public void upstreamFailed(String reason) {
        problem("upstream failed: " + reason);
    }

    private void problem(String what) {
        if (problem == null) {
            problem = what;
        }
    }

    @Override
    public void toClient(ByteBuf bytes) {
        toClientBytes += bytes.readableBytes();
        bytes.release();
    }

    @Override
    public void toUpstream(ByteBuf bytes) {
        toUpstreamBytes += bytes.readableBytes();
        bytes.release();
    }

    @Override
    public Future<Channel> startUpstreamTls() {
        throw new UnsupportedOperationException("no TLS in a micro-benchmark");
    }

    @Override
    public Future<ClientTlsSession> startClientTls(ByteBuf alreadyRead) {
        throw new UnsupportedOperationException("no TLS in a micro-benchmark");
    }

    @Override
    public void clientTlsRefused(ClientIdentity identity, String request) {
        problem("client TLS refused: " + request);
    }

    @Override
    public void plaintextRefused(ClientIdentity identity) {
        problem("plaintext refused");
    }

    @Override
    public Future<Channel> connectAside(InetSocketAddress target, ChannelHandler handler) {
        throw new UnsupportedOperationException("no side connections in a micro-benchmark");
    }

    @Override
    public void close() {
        problem("closed by the protocol");
    }
}
