package io.connguard.postgres;

import io.netty.buffer.AbstractByteBufAllocator;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.UnpooledByteBufAllocator;

import java.util.ArrayList;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * An allocator that remembers every buffer it hands out, so a test can assert that the code under test
 * released all of them (and count how many it allocated at all).
 */
final class TrackingAllocator extends AbstractByteBufAllocator {

    private final UnpooledByteBufAllocator delegate = new UnpooledByteBufAllocator(false, true);
    private final List<ByteBuf> allocated = new ArrayList<>();

    TrackingAllocator() {
        super(false);
    }

    @Override
    protected ByteBuf newHeapBuffer(int initialCapacity, int maxCapacity) {
        return track(delegate.heapBuffer(initialCapacity, maxCapacity));
    }

    @Override
    protected ByteBuf newDirectBuffer(int initialCapacity, int maxCapacity) {
        return track(delegate.directBuffer(initialCapacity, maxCapacity));
    }

    @Override
    public boolean isDirectBufferPooled() {
        return false;
    }

    private ByteBuf track(ByteBuf buf) {
        allocated.add(buf);
        return buf;
    }

    int allocations() {
        return allocated.size();
    }

    /** A buffer holding {@code bytes}, tracked like the others (what core would hand to the session). */
    ByteBuf wrap(byte[] bytes) {
        return buffer(bytes.length).writeBytes(bytes);
    }

    void assertAllReleased() {
        for (ByteBuf buf : allocated) {
            assertThat(buf.refCnt()).as("reference count of %s", buf).isZero();
        }
    }
}
