package io.connguard.core.testing;

import io.connguard.core.api.ClientIdentity;
import io.connguard.core.api.ClientTlsSession;
import io.connguard.core.api.ListenerInfo;
import io.connguard.core.api.SessionContext;
import io.connguard.core.api.SessionLog;
import io.connguard.core.api.SessionState;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandler;
import io.netty.channel.EventLoop;
import io.netty.channel.embedded.EmbeddedChannel;
import io.netty.util.concurrent.Future;
import io.netty.util.concurrent.Promise;

import java.net.InetSocketAddress;
import java.util.ArrayList;
import java.util.List;

/**
 * A {@link SessionContext} for byte-level tests of a protocol session: it records every report and
 * collects the bytes sent each way (copying and releasing what it is given, so a test's leak check
 * sees only the protocol's own buffers). Single-threaded, like a real session.
 */
public final class RecordingSessionContext implements SessionContext {

    private final EmbeddedChannel loop = new EmbeddedChannel();
    private final ListenerInfo listener;
    private final InetSocketAddress clientAddress;

    public final List<ClientIdentity> identities = new ArrayList<>();
    public final List<SessionState> states = new ArrayList<>();
    public final List<String> lostSync = new ArrayList<>();
    public final List<String> violations = new ArrayList<>();
    public final List<String> upstreamFailures = new ArrayList<>();
    public final List<String> logLines = new ArrayList<>();
    public final List<InetSocketAddress> asideTargets = new ArrayList<>();
    public final ByteBuf toClient = Unpooled.buffer();
    public final ByteBuf toUpstream = Unpooled.buffer();
    public int tlsStarts;
    /** One entry per startClientTls call: the bytes handed over with it (empty when none). */
    public final List<byte[]> clientTlsStarts = new ArrayList<>();
    /** The last client TLS handshake started, left pending for the test to complete or fail. */
    public Promise<ClientTlsSession> clientTlsHandshake;
    public final List<String> clientTlsRefusals = new ArrayList<>();
    public final List<ClientIdentity> plaintextRefusals = new ArrayList<>();
    public boolean closed;
    /** Whether {@link #openUpstreamEarly()} grants the early upstream (the listener is under its cap). */
    public boolean grantEarlyUpstream;
    public int earlyUpstreamRequests;
    public int slotRequests;

    public RecordingSessionContext() {
        this(new ListenerInfo("test", InetSocketAddress.createUnresolved("127.0.0.1", 5432),
                ListenerInfo.UpstreamTlsMode.DISABLE, ListenerInfo.ClientTlsMode.DISABLE));
    }

    public RecordingSessionContext(ListenerInfo listener) {
        this.listener = listener;
        this.clientAddress = new InetSocketAddress("127.0.0.1", 40000);
    }

    public SessionState lastState() {
        return states.isEmpty() ? null : states.get(states.size() - 1);
    }

    /** The bytes sent to the client so far, removed from the record. */
    public byte[] takeToClient() {
        return take(toClient);
    }

    /** The bytes sent to the upstream so far, removed from the record. */
    public byte[] takeToUpstream() {
        return take(toUpstream);
    }

    private static byte[] take(ByteBuf buf) {
        byte[] bytes = new byte[buf.readableBytes()];
        buf.readBytes(bytes);
        buf.discardReadBytes();
        return bytes;
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
        return clientAddress;
    }

    @Override
    public ByteBufAllocator alloc() {
        return ByteBufAllocator.DEFAULT;
    }

    @Override
    public EventLoop eventLoop() {
        return loop.eventLoop();
    }

    @Override
    public SessionLog log() {
        return new SessionLog() {
            @Override
            public void debug(String message, Object... args) {
                logLines.add("DEBUG " + message);
            }

            @Override
            public void info(String message, Object... args) {
                logLines.add("INFO " + message);
            }

            @Override
            public void warn(String message, Object... args) {
                logLines.add("WARN " + message);
            }
        };
    }

    @Override
    public void identified(ClientIdentity identity) {
        identities.add(identity);
    }

    @Override
    public void stateChanged(SessionState state) {
        states.add(state);
    }

    @Override
    public void lostSync(String reason) {
        lostSync.add(reason);
        states.add(SessionState.UNKNOWN);
    }

    @Override
    public void violation(String reason) {
        violations.add(reason);
    }

    @Override
    public void upstreamFailed(String reason) {
        upstreamFailures.add(reason);
    }

    @Override
    public void toClient(ByteBuf bytes) {
        try {
            toClient.writeBytes(bytes);
        } finally {
            bytes.release();
        }
    }

    @Override
    public void toUpstream(ByteBuf bytes) {
        try {
            toUpstream.writeBytes(bytes);
        } finally {
            bytes.release();
        }
    }

    @Override
    public Future<Channel> startUpstreamTls() {
        tlsStarts++;
        Promise<Channel> promise = loop.eventLoop().newPromise();
        promise.setSuccess(loop);
        return promise;
    }

    @Override
    public Future<ClientTlsSession> startClientTls(ByteBuf alreadyRead) {
        byte[] bytes = new byte[0];
        if (alreadyRead != null) {
            bytes = new byte[alreadyRead.readableBytes()];
            alreadyRead.readBytes(bytes);
            alreadyRead.release();
        }
        clientTlsStarts.add(bytes);
        clientTlsHandshake = loop.eventLoop().newPromise();
        return clientTlsHandshake;
    }

    @Override
    public void clientTlsRefused(ClientIdentity identity, String request) {
        clientTlsRefusals.add(request + (identity == null ? "" : " by " + identity.user()));
    }

    @Override
    public void plaintextRefused(ClientIdentity identity) {
        plaintextRefusals.add(identity);
    }

    @Override
    public Future<Channel> connectAside(InetSocketAddress target, ChannelHandler handler) {
        asideTargets.add(target);
        Promise<Channel> promise = loop.eventLoop().newPromise();
        promise.setFailure(new UnsupportedOperationException("no network in byte-level tests"));
        return promise;
    }

    @Override
    public boolean openUpstreamEarly() {
        earlyUpstreamRequests++;
        return grantEarlyUpstream;
    }

    @Override
    public void requestSlot() {
        slotRequests++;
    }

    /** Passwords given with {@link #passwordGiven} (pooled listeners), in order. */
    public final List<String> passwords = new ArrayList<>();

    @Override
    public void passwordGiven(char[] password) {
        passwords.add(new String(password));
    }

    /** How often {@link #passwordProven} was reported. */
    public int proven;

    @Override
    public void passwordProven() {
        proven++;
    }

    /** Runs what was handed to {@link #eventLoop()} from other threads (or queued on it) so far. */
    public void runPendingTasks() {
        loop.runPendingTasks();
    }

    @Override
    public void close() {
        closed = true;
    }
}
