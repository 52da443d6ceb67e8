package io.connguard.core.session;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.channel.ChannelConfig;
import io.netty.channel.MaxMessagesRecvByteBufAllocator;
import io.netty.channel.RecvByteBufAllocator;
import io.netty.util.UncheckedBooleanSupplier;

import java.util.Arrays;

/**
 * How many bytes each read of a client or upstream channel asks for: the guess of Netty's
 * {@code AdaptiveRecvByteBufAllocator} (64 bytes to 64 KiB, starting at 2 KiB; four steps of its size table up
 * when a read fills the buffer, one step down after two reads in a row that would have fitted one step lower),
 * with each channel's state in one 48-byte object.
 *
 * <p>Why not Netty's: its per-channel state is three objects (the handle, its {@code AdaptiveCalculator} and a
 * supplier), 112 bytes of every idle connection. The rules and the size table are the same, so reads are
 * sized as before; one instance serves every channel (its settings are only the messages per read).
 */
final class ReadSizes implements MaxMessagesRecvByteBufAllocator {

    private static final int[] SIZE_TABLE = sizeTable();
    private static final int MIN_INDEX = indexAtLeast(64);
    private static final int MAX_INDEX = indexAtMost(64 * 1024);
    private static final int INITIAL_INDEX = indexAtMost(2048);
    private static final int INDEX_INCREMENT = 4;
    private static final int INDEX_DECREMENT = 1;

    private volatile int maxMessagesPerRead;

    ReadSizes(int maxMessagesPerRead) {
        maxMessagesPerRead(maxMessagesPerRead);
    }

    @Override
    public Handle newHandle() {
        return new Guess(this);
    }

    @Override
    public int maxMessagesPerRead() {
        return maxMessagesPerRead;
    }

    @Override
    public ReadSizes maxMessagesPerRead(int maxMessagesPerRead) {
        if (maxMessagesPerRead <= 0) {
            throw new IllegalArgumentException("maxMessagesPerRead: " + maxMessagesPerRead + " (expected: > 0)");
        }
        this.maxMessagesPerRead = maxMessagesPerRead;
        return this;
    }

    /** 16 to 496 by 16, then powers of two from 512 up (Netty's table). */
    private static int[] sizeTable() {
        int[] table = new int[31 + 22];
        int n = 0;
        for (int size = 16; size < 512; size += 16) {
            table[n++] = size;
        }
        for (int size = 512; size > 0; size <<= 1) {
            table[n++] = size;
        }
        return Arrays.copyOf(table, n);
    }

    /** The first index whose size is at least {@code size}. */
    static int indexAtLeast(int size) {
        for (int i = 0; i < SIZE_TABLE.length; i++) {
            if (SIZE_TABLE[i] >= size) {
                return i;
            }
        }
        return SIZE_TABLE.length - 1;
    }

    /** The last index whose size is at most {@code size}. */
    static int indexAtMost(int size) {
        for (int i = SIZE_TABLE.length - 1; i >= 0; i--) {
            if (SIZE_TABLE[i] <= size) {
                return i;
            }
        }
        return 0;
    }

    /** One channel's read state and guess, as Netty's MaxMessageHandle and AdaptiveCalculator keep them. */
    static final class Guess implements RecvByteBufAllocator.ExtendedHandle {

        private final ReadSizes sizes;
        private ChannelConfig config;
        private int maxMessagesPerRead;
        private int totalMessages;
        private int totalBytesRead;
        private int attemptedBytesRead;
        private int lastBytesRead;
        private int nextSize = SIZE_TABLE[INITIAL_INDEX];
        private byte index = (byte) INITIAL_INDEX;
        private boolean decreaseNow;

        Guess(ReadSizes sizes) {
            this.sizes = sizes;
        }

        @Override
        public ByteBuf allocate(ByteBufAllocator alloc) {
            return alloc.ioBuffer(nextSize);
        }

        @Override
        public int guess() {
            return nextSize;
        }

        @Override
        public void reset(ChannelConfig config) {
            this.config = config;
            maxMessagesPerRead = sizes.maxMessagesPerRead();
            totalMessages = 0;
            totalBytesRead = 0;
        }

        @Override
        public void incMessagesRead(int numMessages) {
            totalMessages += numMessages;
        }

        @Override
        public void lastBytesRead(int bytes) {
            if (bytes == attemptedBytesRead) {
                record(bytes); // the read filled what was asked: maybe ask for more next time
            }
            lastBytesRead = bytes;
            if (bytes > 0) {
                totalBytesRead += bytes;
            }
        }

        @Override
        public int lastBytesRead() {
            return lastBytesRead;
        }

        @Override
        public void attemptedBytesRead(int bytes) {
            attemptedBytesRead = bytes;
        }

        @Override
        public int attemptedBytesRead() {
            return attemptedBytesRead;
        }

        @Override
        public boolean continueReading() {
            return config.isAutoRead() && attemptedBytesRead == lastBytesRead && moreAllowed();
        }

        @Override
        public boolean continueReading(UncheckedBooleanSupplier maybeMoreDataSupplier) {
            return config.isAutoRead() && maybeMoreDataSupplier.get() && moreAllowed();
        }

        private boolean moreAllowed() {
            return totalMessages < maxMessagesPerRead && totalBytesRead > 0;
        }

        @Override
        public void readComplete() {
            record(totalBytesRead < 0 ? Integer.MAX_VALUE : totalBytesRead);
        }

        private void record(int size) {
            if (size <= SIZE_TABLE[Math.max(0, index - INDEX_DECREMENT)]) {
                if (decreaseNow) {
                    index = (byte) Math.max(index - INDEX_DECREMENT, MIN_INDEX);
                    nextSize = SIZE_TABLE[index];
                    decreaseNow = false;
                } else {
                    decreaseNow = true;
                }
            } else if (size >= nextSize) {
                index = (byte) Math.min(index + INDEX_INCREMENT, MAX_INDEX);
                nextSize = SIZE_TABLE[index];
                decreaseNow = false;
            }
        }
    }
}
