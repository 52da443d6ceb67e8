package io.connguard.mysql;

import io.connguard.core.api.ListenerInfo;
import io.connguard.core.testing.ForwardingSessionContext;
import io.connguard.core.testing.RecordingSessionContext;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.AbstractByteBufAllocator;
import io.netty.buffer.UnpooledDirectByteBuf;
import io.netty.buffer.UnpooledHeapByteBuf;

import java.util.ArrayList;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * A {@link RecordingSessionContext} whose allocator remembers every buffer it made, so a test can assert
 * that the session released or forwarded each one (nothing leaked) without waiting for the GC-driven
 * leak detector.
 */
final class TrackingContext extends ForwardingSessionContext {

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

    final TrackingAllocator alloc = new TrackingAllocator();
    /** What core does with an early upstream when the session reports its identity (null: nothing). */
    io.connguard.core.api.EarlyUpstream earlyOutcome;
    /** The session this context plays core for, once made. */
    io.connguard.core.api.ProtocolSession session;

    TrackingContext(ListenerInfo listener) {
        super(new RecordingSessionContext(listener));
    }

    /** A buffer holding {@code bytes}, made by the tracking allocator (so its release is checked too). */
    ByteBuf wrap(byte[] bytes, int from, int to) {
        return alloc.heapBuffer(Math.max(1, to - from)).writeBytes(bytes, from, to - from);
    }

    ByteBuf wrap(byte[] bytes) {
        return wrap(bytes, 0, bytes.length);
    }

    @Override
    public ByteBufAllocator alloc() {
        return alloc;
    }

    @Override
    public void identified(io.connguard.core.api.ClientIdentity identity) {
        super.identified(identity);
        if (earlyOutcome != null && session != null && recording.identities.size() == 1) {
            session.earlyUpstream(earlyOutcome);
        }
    }
}
