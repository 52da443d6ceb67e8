package io.connguard.core.testing;

import io.netty.buffer.AbstractByteBufAllocator;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.UnpooledDirectByteBuf;
import io.netty.buffer.UnpooledHeapByteBuf;

import java.util.ArrayList;
import java.util.List;

/**
 * An allocator for fuzz targets that remembers every buffer it made, so a target can assert that each was
 * released, and that refuses to make one larger than a bound, so that a length field claiming a gigabyte
 * fails the input at once instead of allocating the gigabyte (or running the fuzzer out of memory).
 */
public final class FuzzAllocator extends AbstractByteBufAllocator {

    private final List<ByteBuf> allocated = new ArrayList<>();
    private final int maxAllocation;

    /** @param maxAllocation the largest initial capacity one allocation may ask for */
    public FuzzAllocator(int maxAllocation) {
        super(false);
        this.maxAllocation = maxAllocation;
    }

    @Override
    protected ByteBuf newHeapBuffer(int initialCapacity, int maxCapacity) {
        return track(new UnpooledHeapByteBuf(this, checked(initialCapacity), maxCapacity));
    }

    @Override
    protected ByteBuf newDirectBuffer(int initialCapacity, int maxCapacity) {
        return track(new UnpooledDirectByteBuf(this, checked(initialCapacity), maxCapacity));
    }

    @Override
    public boolean isDirectBufferPooled() {
        return false;
    }

    private int checked(int initialCapacity) {
        if (initialCapacity > maxAllocation) {
            throw new AssertionError("an allocation of " + initialCapacity + " bytes, over the bound of "
                    + maxAllocation + ": a length field was trusted");
        }
        return initialCapacity;
    }

    private ByteBuf track(ByteBuf buf) {
        allocated.add(buf);
        return buf;
    }

    /** A buffer holding {@code bytes}, tracked like the others (what core hands a session after a read). */
    public ByteBuf wrap(byte[] bytes) {
        return heapBuffer(Math.max(1, bytes.length)).writeBytes(bytes);
    }

    /**
     * The capacity of the buffers not yet released: what the code under test holds on to now. Released
     * buffers are forgotten here (a released buffer stays released), so that calling this after each of
     * many small reads stays cheap.
     */
    public long liveCapacity() {
        long sum = 0;
        List<ByteBuf> live = new ArrayList<>();
        for (ByteBuf buf : allocated) {
            if (buf.refCnt() > 0) {
                sum += buf.capacity();
                live.add(buf);
            }
        }
        allocated.clear();
        allocated.addAll(live);
        return sum;
    }

    public void assertAllReleased() {
        for (ByteBuf buf : allocated) {
            if (buf.refCnt() != 0) {
                throw new AssertionError("a buffer was neither released nor forwarded: " + buf);
            }
        }
    }
}
