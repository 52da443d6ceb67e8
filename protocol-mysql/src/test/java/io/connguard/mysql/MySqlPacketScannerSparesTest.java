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

/** Transaction mode takes a response scanner from the event loop's spares per lend and gives it back after. */
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

    private static void scan(MySqlPacketScanner scanner, byte[] bytes, List<String> seen) {
        ByteBuf buf = Unpooled.wrappedBuffer(bytes);
        scanner.scan(buf, (sequenceId, length, continuation, prefix, prefixLength) ->
                seen.add(sequenceId + ":" + length + ":0x" + Integer.toHexString(prefix[0] & 0xFF)));
        buf.release();
    }
}
