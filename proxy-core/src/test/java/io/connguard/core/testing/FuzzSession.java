package io.connguard.core.testing;

import io.connguard.core.api.ClientIdentity;
import io.connguard.core.api.ListenerInfo;
import io.connguard.core.api.ProtocolModule;
import io.connguard.core.api.ProtocolSession;
import io.connguard.core.api.ProxyError;
import io.connguard.core.api.SessionState;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.channel.Channel;
import io.netty.util.concurrent.Future;

import java.io.ByteArrayOutputStream;
import java.util.ArrayList;
import java.util.List;

/**
 * Plays core around one protocol session for a fuzz target, and checks the SPI's promises on every call:
 * nothing but bytes goes back (no exception escapes a session method), no byte goes upstream before core
 * connected the upstream, no state is reported before the client was identified or other than
 * {@code unknown} after the tracker lost sync, the buffers a session holds stay within a bound of what it
 * was sent, and after the end every buffer is released.
 *
 * <p>It reacts as core's {@code Session} does, synchronously: a violation or an unusable upstream asks the
 * session for its error packets and its goodbye and closes it from inside the call that reported it;
 * bytes sent after that are released unread.
 */
public final class FuzzSession extends ForwardingSessionContext {

    /** What a session may hold beyond twice what it was sent (start-up and handshake bounds are 64 KiB). */
    private static final int HELD_SLACK = 256 * 1024;

    private final FuzzAllocator alloc;
    private final ProtocolSession session;
    private final ByteArrayOutputStream toClient = new ByteArrayOutputStream();
    private final ByteArrayOutputStream toUpstream = new ByteArrayOutputStream();
    private final ByteArrayOutputStream fromClient = new ByteArrayOutputStream();
    private final ByteArrayOutputStream fromServer = new ByteArrayOutputStream();

    /** Core's packets for the client when it ended the session: the error, then any answer to the next request. */
    public final List<byte[]> errorPackets = new ArrayList<>();
    public final List<String> violations = new ArrayList<>();
    public final List<String> upstreamFailures = new ArrayList<>();
    public byte[] goodbye;

    private long bytesIn;
    private boolean connectPending;
    private boolean upstreamConnected;
    private boolean closed;
    private boolean lost;

    public FuzzSession(ProtocolModule module, ListenerInfo listener, FuzzAllocator alloc) {
        super(new RecordingSessionContext(listener));
        this.alloc = alloc;
        this.session = module.newSession(this);
    }

    public ProtocolSession session() {
        return session;
    }

    // ---------------------------------------------------------------- driving

    /** Plays every step of {@code script}; the upstream connects only when a step says so. */
    public void play(FuzzScript script) {
        for (FuzzScript.Step step : script.steps()) {
            switch (step.op()) {
                case CLIENT -> step.reads().forEach(this::client);
                case SERVER -> step.reads().forEach(this::server);
                case CONNECT -> connect();
                case KILL -> kill(ProxyError.Kind.values()[step.argument() % ProxyError.Kind.values().length]);
            }
        }
    }

    /** One read from the client, as core delivers it while the session is open. */
    public void client(byte[] read) {
        if (closed) {
            return;
        }
        bytesIn += read.length;
        fromClient.writeBytes(read);
        session.onClientBytes(alloc.wrap(read));
        checkHeld();
    }

    /** One read from the upstream; there is none before core connected it. */
    public void server(byte[] read) {
        if (closed || !upstreamConnected) {
            return;
        }
        bytesIn += read.length;
        fromServer.writeBytes(read);
        session.onUpstreamBytes(alloc.wrap(read));
        checkHeld();
    }

    /** Core admitted the identified client and its upstream connection is open. */
    public void connect() {
        if (closed || !connectPending) {
            return;
        }
        connectPending = false;
        upstreamConnected = true;
        session.onUpstreamConnected();
        checkHeld();
    }

    /** Core ends the session for a reason of its own (a timer, the admin API, a drain). */
    public void kill(ProxyError.Kind kind) {
        end(new ProxyError(kind, "fuzz " + kind, "", false), true);
    }

    /** Ends the session as when the client closed its connection, then checks that every buffer is back. */
    public void finish() {
        String statement = session.lastStatement();
        if (statement == null) {
            throw new AssertionError("lastStatement() must be \"\" rather than null");
        }
        end(null, true);
        alloc.assertAllReleased();
    }

    public boolean closed() {
        return closed;
    }

    public boolean upstreamConnected() {
        return upstreamConnected;
    }

    /** Every byte the session sent to the client, in order (core's error packets not included). */
    public byte[] sentToClient() {
        return toClient.toByteArray();
    }

    /** Every byte the session sent to the upstream, in order (the goodbye not included). */
    public byte[] sentToUpstream() {
        return toUpstream.toByteArray();
    }

    /** Every byte the client sent that core delivered to the session (none after it ended). */
    public byte[] receivedFromClient() {
        return fromClient.toByteArray();
    }

    /** Every byte the upstream sent that core delivered to the session. */
    public byte[] receivedFromServer() {
        return fromServer.toByteArray();
    }

    private void checkHeld() {
        long held = alloc.liveCapacity();
        if (held > 2 * bytesIn + HELD_SLACK) {
            throw new AssertionError("the session holds " + held + " bytes of buffers after being sent " + bytesIn);
        }
    }

    /** Core's {@code Session.close}: the error packet, the goodbye, then the protocol's own close. */
    private void end(ProxyError error, boolean upstreamUsable) {
        if (closed) {
            return;
        }
        closed = true;
        if (error != null) {
            ByteBuf packet = session.clientError(error);
            if (packet != null) {
                errorPackets.add(take(packet));
                ByteBuf answer = session.errorForNextRequest(error);
                if (answer != null) {
                    errorPackets.add(take(answer));
                }
            }
        }
        if (upstreamConnected && upstreamUsable) {
            ByteBuf bye = session.upstreamGoodbye();
            if (bye != null) {
                goodbye = take(bye);
            }
        }
        session.close();
    }

    private static byte[] take(ByteBuf buf) {
        try {
            byte[] bytes = new byte[buf.readableBytes()];
            buf.getBytes(buf.readerIndex(), bytes);
            return bytes;
        } finally {
            buf.release();
        }
    }

    // ---------------------------------------------------------------- SessionContext

    @Override
    public ByteBufAllocator alloc() {
        return alloc;
    }

    @Override
    public void identified(ClientIdentity identity) {
        if (identity == null) {
            throw new AssertionError("identified(null)");
        }
        recording.identified(identity);
        if (recording.identities.size() == 1 && !closed) {
            connectPending = true;
        }
    }

    @Override
    public void stateChanged(SessionState state) {
        if (state == null) {
            throw new AssertionError("stateChanged(null)");
        }
        if (recording.identities.isEmpty()) {
            throw new AssertionError("state " + state + " reported before the client was identified");
        }
        if (lost && state != SessionState.UNKNOWN) {
            throw new AssertionError("state " + state + " reported after the tracker lost sync");
        }
        recording.stateChanged(state);
    }

    @Override
    public void lostSync(String reason) {
        lost = true;
        recording.lostSync(reason);
    }

    @Override
    public void violation(String reason) {
        violations.add(reason);
        end(new ProxyError(ProxyError.Kind.PROTOCOL_VIOLATION, "protocol violation: " + reason, ""), true);
    }

    @Override
    public void upstreamFailed(String reason) {
        upstreamFailures.add(reason);
        end(new ProxyError(ProxyError.Kind.UPSTREAM_UNAVAILABLE, "upstream unavailable: " + reason, ""), false);
    }

    @Override
    public void toClient(ByteBuf bytes) {
        if (closed) {
            bytes.release();
            return;
        }
        toClient.writeBytes(take(bytes));
    }

    @Override
    public void toUpstream(ByteBuf bytes) {
        if (closed) {
            bytes.release();
            return;
        }
        if (!upstreamConnected) {
            bytes.release();
            throw new AssertionError("bytes sent upstream before core connected the upstream");
        }
        toUpstream.writeBytes(take(bytes));
    }

    @Override
    public Future<Channel> startUpstreamTls() {
        if (!upstreamConnected) {
            throw new AssertionError("TLS started before core connected the upstream");
        }
        return recording.startUpstreamTls();
    }

    @Override
    public void close() {
        end(null, true);
    }
}
