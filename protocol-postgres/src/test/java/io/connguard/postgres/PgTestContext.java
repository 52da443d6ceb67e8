package io.connguard.postgres;

import io.connguard.core.api.ClientIdentity;
import io.connguard.core.api.ListenerInfo;
import io.connguard.core.api.ProtocolSession;
import io.connguard.core.api.ProxyError;
import io.connguard.core.testing.ForwardingSessionContext;
import io.connguard.core.testing.RecordingSessionContext;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandler;
import io.netty.channel.embedded.EmbeddedChannel;
import io.netty.util.concurrent.Future;

import java.net.InetSocketAddress;
import java.util.ArrayList;
import java.util.List;

/**
 * Plays core around one PostgreSQL session in byte-level tests: a {@link RecordingSessionContext} records
 * the reports and bytes, the session's own allocations are tracked for leaks, inputs are tracked too, and
 * core's reactions are imitated synchronously (the upstream "connects" as soon as the client is
 * identified; a violation or an upstream failure is answered with the session's error packet and a close),
 * which also checks the session survives being closed from inside its own calls.
 */
final class PgTestContext extends ForwardingSessionContext {

    final TrackingAllocator sessionAlloc = new TrackingAllocator();
    final TrackingAllocator inputAlloc = new TrackingAllocator();
    final List<EmbeddedChannel> asideChannels = new ArrayList<>();
    final ProtocolSession session;

    /** connectAside succeeds with an embedded channel (else it fails, as RecordingSessionContext's does). */
    boolean asideConnects = true;
    /** The upstream is "connected" right after the client is identified, as core does when admitting. */
    boolean admitAtOnce = true;
    private boolean identifiedPending;
    private boolean sessionClosed;

    PgTestContext(PgModule module) {
        this(module, new RecordingSessionContext());
    }

    PgTestContext(PgModule module, ListenerInfo listener) {
        this(module, new RecordingSessionContext(listener));
    }

    private PgTestContext(PgModule module, RecordingSessionContext recording) {
        super(recording);
        this.session = module.newSession(this);
    }

    static ListenerInfo listener(ListenerInfo.UpstreamTlsMode tls) {
        return listener(tls, ListenerInfo.ClientTlsMode.DISABLE);
    }

    static ListenerInfo listener(ListenerInfo.UpstreamTlsMode tls, ListenerInfo.ClientTlsMode clientTls) {
        return new ListenerInfo("test", InetSocketAddress.createUnresolved("127.0.0.1", 5432), tls, clientTls);
    }

    // ---------------------------------------------------------------- driving

    void client(byte[] bytes) {
        session.onClientBytes(inputAlloc.wrap(bytes));
        if (identifiedPending && !sessionClosed) {
            identifiedPending = false;
            session.onUpstreamConnected();
        }
    }

    void server(byte[] bytes) {
        session.onUpstreamBytes(inputAlloc.wrap(bytes));
    }

    /** Replays a recorded conversation chunk by chunk. */
    void replay(PgTrace trace) {
        for (PgTrace.Chunk chunk : trace.chunks()) {
            if (chunk.fromClient()) {
                client(chunk.bytes());
            } else {
                server(chunk.bytes());
            }
        }
    }

    /** Ends the session as core does and checks that every buffer is back. */
    void closeAndCheckBuffers() {
        closeSession();
        for (EmbeddedChannel channel : asideChannels) {
            channel.finishAndReleaseAll();
        }
        inputAlloc.assertAllReleased();
        sessionAlloc.assertAllReleased();
    }

    private void closeSession() {
        if (!sessionClosed) {
            sessionClosed = true;
            session.close();
        }
    }

    boolean sessionClosed() {
        return sessionClosed;
    }

    private void endWith(ProxyError.Kind kind, String reason) {
        ByteBuf error = session.clientError(new ProxyError(kind, reason, ""));
        if (error != null) {
            toClient(error);
        }
        closeSession();
    }

    // ---------------------------------------------------------------- SessionContext

    @Override
    public ByteBufAllocator alloc() {
        return sessionAlloc;
    }

    @Override
    public void identified(ClientIdentity identity) {
        recording.identified(identity);
        identifiedPending = admitAtOnce;
    }

    @Override
    public void violation(String reason) {
        recording.violation(reason);
        endWith(ProxyError.Kind.PROTOCOL_VIOLATION, "protocol violation: " + reason);
    }

    @Override
    public void upstreamFailed(String reason) {
        recording.upstreamFailed(reason);
        endWith(ProxyError.Kind.UPSTREAM_UNAVAILABLE, "upstream unavailable: " + reason);
    }

    @Override
    public void plaintextRefused(ClientIdentity identity) {
        recording.plaintextRefused(identity);
        endWith(ProxyError.Kind.TLS_REQUIRED, "connection without TLS refused");
    }

    @Override
    public Future<Channel> connectAside(InetSocketAddress target, ChannelHandler handler) {
        if (!asideConnects) {
            return recording.connectAside(target, handler);
        }
        recording.asideTargets.add(target);
        EmbeddedChannel channel = new EmbeddedChannel(handler);
        asideChannels.add(channel);
        return channel.eventLoop().newSucceededFuture(channel);
    }

    @Override
    public void close() {
        recording.close();
        closeSession();
    }
}
