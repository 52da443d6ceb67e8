package io.connguard.mysql;

import io.connguard.core.api.ClientIdentity;
import io.connguard.core.api.ListenerInfo;
import io.connguard.core.api.SessionContext;
import io.connguard.core.api.SessionLog;
import io.connguard.core.api.SessionState;
import io.connguard.core.testing.RecordingSessionContext;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.AbstractByteBufAllocator;
import io.netty.buffer.UnpooledDirectByteBuf;
import io.netty.buffer.UnpooledHeapByteBuf;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandler;
import io.netty.channel.EventLoop;
import io.netty.util.concurrent.Future;

import java.net.InetSocketAddress;
import java.util.ArrayList;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * A {@link RecordingSessionContext} whose allocator remembers every buffer it made, so a test can assert
 * that the session released or forwarded each one (nothing leaked) without waiting for the GC-driven
 * leak detector.
 */
final class TrackingContext implements SessionContext {

    /** Remembers every buffer allocated through it. */
    static final class TrackingAllocator extends AbstractByteBufAllocator {
        final List<ByteBuf> allocated = new ArrayList<>();

        TrackingAllocator() {
            super(false);
        }

        @Override
        protected ByteBuf newHeapBuffer(int initialCapacity, int maxCapacity) {
            ByteBuf buf = new UnpooledHeapByteBuf(this, initialCapacity, maxCapacity);
            allocated.add(buf);
            return buf;
        }

        @Override
        protected ByteBuf newDirectBuffer(int initialCapacity, int maxCapacity) {
            ByteBuf buf = new UnpooledDirectByteBuf(this, initialCapacity, maxCapacity);
            allocated.add(buf);
            return buf;
        }

        @Override
        public boolean isDirectBufferPooled() {
            return false;
        }

        void assertAllReleased() {
            for (ByteBuf buf : allocated) {
                assertThat(buf.refCnt()).as("a buffer the session did not release or forward").isZero();
            }
        }
    }

    final RecordingSessionContext recorded;
    final TrackingAllocator alloc = new TrackingAllocator();

    TrackingContext(ListenerInfo listener) {
        this.recorded = new RecordingSessionContext(listener);
    }

    /** A buffer holding {@code bytes}, made by the tracking allocator (so its release is checked too). */
    ByteBuf wrap(byte[] bytes, int from, int to) {
        return alloc.heapBuffer(Math.max(1, to - from)).writeBytes(bytes, from, to - from);
    }

    ByteBuf wrap(byte[] bytes) {
        return wrap(bytes, 0, bytes.length);
    }

    @Override
    public long id() {
        return recorded.id();
    }

    @Override
    public ListenerInfo listener() {
        return recorded.listener();
    }

    @Override
    public InetSocketAddress clientAddress() {
        return recorded.clientAddress();
    }

    @Override
    public ByteBufAllocator alloc() {
        return alloc;
    }

    @Override
    public EventLoop eventLoop() {
        return recorded.eventLoop();
    }

    @Override
    public SessionLog log() {
        return recorded.log();
    }

    @Override
    public void identified(ClientIdentity identity) {
        recorded.identified(identity);
    }

    @Override
    public void stateChanged(SessionState state) {
        recorded.stateChanged(state);
    }

    @Override
    public void lostSync(String reason) {
        recorded.lostSync(reason);
    }

    @Override
    public void violation(String reason) {
        recorded.violation(reason);
    }

    @Override
    public void upstreamFailed(String reason) {
        recorded.upstreamFailed(reason);
    }

    @Override
    public void toClient(ByteBuf bytes) {
        recorded.toClient(bytes);
    }

    @Override
    public void toUpstream(ByteBuf bytes) {
        recorded.toUpstream(bytes);
    }

    @Override
    public Future<Channel> startUpstreamTls() {
        return recorded.startUpstreamTls();
    }

    @Override
    public Future<Channel> connectAside(InetSocketAddress target, ChannelHandler handler) {
        return recorded.connectAside(target, handler);
    }

    @Override
    public void close() {
        recorded.close();
    }
}
