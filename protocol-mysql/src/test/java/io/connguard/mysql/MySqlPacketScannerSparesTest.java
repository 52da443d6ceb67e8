package io.connguard.mysql;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static io.connguard.mysql.Packets.concat;
import static io.connguard.mysql.Packets.packet;
import static io.connguard.mysql.Packets.payload;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * Transaction mode takes a response scanner from the event loop's spares per lend and gives it back after, and
 * asks it after each buffer whether that buffer ended before a packet was reported (where the packet began).
 */
class MySqlPacketScannerSparesTest {

    @Test
    void aScannerGivenBackIsTakenAgainAndReadsTheNextStreamFromItsStart() {
        MySqlPacketScanner first = MySqlPacketScanner.take();
        List<String> seen = new ArrayList<>();
        scan(first, concat(packet(1, payload(0x00, 0, 0, 2, 0, 0, 0)), packet(7, payload(0xFF, 0x15, 0x04))), seen);
        assertThat(first.atBoundary()).isTrue();
        assertThat(first.lastSequenceId()).isEqualTo(7);
        first.giveBack();

        MySqlPacketScanner second = MySqlPacketScanner.take();
        assertThat(second).as("the spare").isSameAs(first);
        assertThat(second.lastSequenceId()).as("as new").isEqualTo(-1);
        MySqlPacketScanner third = MySqlPacketScanner.take();
        assertThat(third).as("another scanner while the first is taken").isNotSameAs(second);
        seen.clear();
        byte[] ok = packet(1, payload(0x00, 1, 0, 2, 0, 0, 0));
        scan(second, java.util.Arrays.copyOfRange(ok, 0, 2), seen);
        scan(second, java.util.Arrays.copyOfRange(ok, 2, ok.length), seen);
        assertThat(seen).containsExactly("1:7:0x0");
        second.giveBack();
        third.giveBack();
    }

    @Test
    void afterEachBufferTheScannerSaysWhetherAPacketIsUnreportedAndWhereItBegan() {
        byte[] ok = packet(1, payload(0x00, 0, 0, 2, 0, 0, 0));
        byte[] prepareOk = packet(1, payload(0x00, 1, 0, 0, 0, 1, 0, 2, 0, 0, 0, 0));
        byte[] stream = concat(ok, prepareOk);
        for (int cut = 1; cut < stream.length; cut++) {
            MySqlPacketScanner scanner = MySqlPacketScanner.take();
            List<String> seen = new ArrayList<>();
            scan(scanner, java.util.Arrays.copyOfRange(stream, 0, cut), seen);
            boolean secondStarted = cut > ok.length;
            boolean unreported = cut < ok.length ? cut < 4 + 7 : secondStarted && cut < stream.length;
            assertThat(scanner.inPrefix()).as("cut at %d", cut).isEqualTo(unreported);
            if (unreported) {
                assertThat(scanner.packetStart()).as("cut at %d", cut).isEqualTo(secondStarted ? ok.length : 0);
            }
            scan(scanner, java.util.Arrays.copyOfRange(stream, cut, stream.length), seen);
            assertThat(seen).as("cut at %d", cut).containsExactly("1:7:0x0", "1:12:0x0");
            assertThat(scanner.inPrefix()).isFalse();
            if (unreported && cut >= ok.length + 4) {
                assertThat(scanner.packetStart()).as("the rest of a packet begun before").isEqualTo(-1);
            }
            scanner.giveBack();
        }
    }

    private static void scan(MySqlPacketScanner scanner, byte[] bytes, List<String> seen) {
        ByteBuf buf = Unpooled.wrappedBuffer(bytes);
        scanner.scan(buf, (sequenceId, length, continuation, prefix, prefixLength) ->
                seen.add(sequenceId + ":" + length + ":0x" + Integer.toHexString(prefix[0] & 0xFF)));
        buf.release();
    }
}
