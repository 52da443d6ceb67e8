package io.connguard.postgres;

import io.connguard.core.testing.LeakGuard;
import org.junit.jupiter.api.extension.ExtendWith;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;

import static io.connguard.postgres.PgMessages.concat;
import static io.connguard.postgres.PgMessages.int32;
import static io.connguard.postgres.PgMessages.message;
import static io.connguard.postgres.PgMessages.query;
import static io.connguard.postgres.PgMessages.readyForQuery;
import static org.assertj.core.api.Assertions.assertThat;

@ExtendWith(LeakGuard.class)
class PgFrameScannerTest {

    /** Writes down what the scanner reports, asking for the first 3 bytes of every body. */
    private static final class Transcript implements PgFrameScanner.Sink {
        final List<String> events = new ArrayList<>();
        final StringBuilder prefix = new StringBuilder();

        @Override
        public int onMessageStart(byte type, int bodyLength) {
            events.add("start " + (char) type + " " + bodyLength);
            prefix.setLength(0);
            return 3;
        }

        @Override
        public void onBody(ByteBuf buf, int index, int length) {
            for (int i = 0; i < length; i++) {
                prefix.append(String.format("%02x", buf.getByte(index + i)));
            }
        }

        @Override
        public void onMessageEnd(byte type) {
            events.add("end " + (char) type + " " + prefix);
        }

        @Override
        public void onUnframeable(String reason) {
            events.add("unframeable " + reason);
        }
    }

    static List<PgTrace> traces() {
        return PgTrace.ALL.stream().map(PgTrace::load).toList();
    }

    /** The server's side of a recording is all typed messages. */
    private static byte[] serverStream(PgTrace trace) {
        return trace.stream(false);
    }

    private static List<String> scan(byte[] stream, int... cuts) {
        Transcript transcript = new Transcript();
        PgFrameScanner scanner = PgFrameScanner.to(transcript);
        int from = 0;
        for (int cut : cuts) {
            scanChunk(scanner, stream, from, cut);
            from = cut;
        }
        scanChunk(scanner, stream, from, stream.length);
        if (!transcript.events.get(transcript.events.size() - 1).startsWith("unframeable")) {
            assertThat(scanner.atBoundary()).as("at a boundary after the whole stream").isTrue();
        }
        return transcript.events;
    }

    private static void scanChunk(PgFrameScanner scanner, byte[] stream, int from, int to) {
        // Padding on both sides proves the scanner honours reader and writer indexes.
        ByteBuf buf = Unpooled.buffer(to - from + 8).writeZero(3).writeBytes(stream, from, to - from).writeZero(5);
        buf.readerIndex(3).writerIndex(3 + to - from);
        scanner.scan(buf);
        assertThat(buf.readerIndex()).isEqualTo(3);
        buf.release();
    }

    @ParameterizedTest
    @MethodSource("traces")
    void findsTheSameMessagesWhereverTheStreamIsCut(PgTrace trace) {
        byte[] stream = serverStream(trace);
        List<String> whole = scan(stream);
        assertThat(whole).noneMatch(event -> event.startsWith("unframeable"));
        assertThat(whole.stream().filter(e -> e.startsWith("end ")).count()).isGreaterThan(2);
        for (int cut = 1; cut < stream.length; cut++) {
            assertThat(scan(stream, cut)).as("cut at %d", cut).isEqualTo(whole);
        }
        int[] everyByte = new int[stream.length - 1];
        for (int i = 0; i < everyByte.length; i++) {
            everyByte[i] = i + 1;
        }
        assertThat(scan(stream, everyByte)).as("one byte at a time").isEqualTo(whole);
    }

    @Test
    void reportsEveryMessageOfABufferInOrderWithTheWantedPrefix() {
        byte[] stream = concat(query("SELECT 1"), message('S'), readyForQuery('T'));
        assertThat(scan(stream)).containsExactly(
                "start Q 9", "end Q 53454c",
                "start S 0", "end S ",
                "start Z 1", "end Z 54");
    }

    @Test
    void aMessageLongerThanAnyBufferStreamsThroughWithoutBeingCollected() {
        long gib = 1L << 30;
        Transcript transcript = new Transcript();
        PgFrameScanner scanner = PgFrameScanner.to(transcript);
        ByteBuf header = Unpooled.wrappedBuffer(concat(new byte[] {'D'}, int32((int) (gib + 4))));
        scanner.scan(header);
        ByteBuf chunk = Unpooled.buffer(1 << 20).writeZero(1 << 20);
        for (long sent = 0; sent < gib; sent += chunk.readableBytes()) {
            assertThat(scanner.atBoundary()).isFalse();
            scanner.scan(chunk);
        }
        assertThat(scanner.atBoundary()).isTrue();
        assertThat(transcript.events).containsExactly("start D " + gib, "end D 000000");
        header.release();
        chunk.release();
    }

    @Test
    void aLengthBelowFourMakesTheStreamUnframeableOnce() {
        List<String> events = scan(concat(readyForQuery('I'), new byte[] {'C', 0, 0, 0, 3}, query("x"), query("y")));
        assertThat(events).containsExactly("start Z 1", "end Z 49",
                "unframeable invalid message length 3 for message type 0x43");
    }

    @Test
    void aNegativeLengthIsUnframeableToo() {
        PgFrameScanner scanner = PgFrameScanner.to(new Transcript());
        scanner.scan(Unpooled.wrappedBuffer(new byte[] {'D', (byte) 0x80, 0, 0, 0}));
        assertThat(scanner.unframeable()).isTrue();
        assertThat(scanner.atBoundary()).isFalse();
    }

    @Test
    void randomGarbageNeverThrows() {
        Random random = new Random(42);
        for (int round = 0; round < 2000; round++) {
            byte[] garbage = new byte[random.nextInt(200)];
            random.nextBytes(garbage);
            Transcript transcript = new Transcript();
            PgFrameScanner scanner = PgFrameScanner.to(transcript);
            int at = 0;
            while (at < garbage.length) {
                int n = 1 + random.nextInt(garbage.length - at);
                ByteBuf buf = Unpooled.wrappedBuffer(garbage, at, n);
                scanner.scan(buf);
                at += n;
            }
            assertThat(transcript.events.stream().filter(e -> e.startsWith("unframeable")).count()).isLessThanOrEqualTo(1);
        }
    }
}
