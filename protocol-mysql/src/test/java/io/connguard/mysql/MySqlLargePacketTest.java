package io.connguard.mysql;

import io.connguard.core.api.ListenerInfo;
import io.connguard.core.api.SessionState;
import io.netty.buffer.ByteBuf;
import io.connguard.core.testing.LeakGuard;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;

import static io.connguard.mysql.Packets.columnCount;
import static io.connguard.mysql.Packets.columnDefinition;
import static io.connguard.mysql.Packets.concat;
import static io.connguard.mysql.Packets.okEof;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * Payloads of 16 MiB and more: a packet of exactly 0xFFFFFF bytes is continued by the next one, and a
 * payload that is an exact multiple ends with an empty packet. They stream through in the reads they
 * arrive in; the scanner must neither take a continuation for a new command or response nor an empty
 * continuation for the end of LOCAL INFILE data.
 */
@ExtendWith(LeakGuard.class)
class MySqlLargePacketTest {

    private static final int MAX = 0xFFFFFF;
    private static final int READ = 64 * 1024;

    /** The packets of one logical payload of {@code size} bytes starting with {@code first}. */
    private static List<byte[]> split(int sequenceId, int first, long size) {
        List<byte[]> packets = new ArrayList<>();
        long left = size;
        boolean start = true;
        do {
            int length = (int) Math.min(left, MAX);
            byte[] packet = new byte[4 + length];
            packet[0] = (byte) length;
            packet[1] = (byte) (length >>> 8);
            packet[2] = (byte) (length >>> 16);
            packet[3] = (byte) sequenceId++;
            if (start && length > 0) {
                packet[4] = (byte) first;
            }
            start = false;
            packets.add(packet);
            left -= length;
            if (left == 0 && length == MAX) {
                packets.add(new byte[] {0, 0, 0, (byte) sequenceId++});
                break;
            }
        } while (left > 0);
        return packets;
    }

    /** Feeds {@code packet} in reads of 64 KiB; returns how many bytes came out on the other side. */
    private static long feed(Conversation conversation, byte[] packet, boolean fromClient) {
        long out = 0;
        for (int i = 0; i < packet.length; i += READ) {
            ByteBuf read = conversation.context.wrap(packet, i, Math.min(packet.length, i + READ));
            if (fromClient) {
                conversation.session.onClientBytes(read);
                out += conversation.toUpstream().length;
            } else {
                conversation.session.onUpstreamBytes(read);
                out += conversation.toClient().length;
            }
        }
        return out;
    }

    private static Conversation session() {
        return new Conversation(Conversation.moduleWithGreeting(), Conversation.listener(ListenerInfo.UpstreamTlsMode.DISABLE))
                .authenticate(Conversation.CONNECTOR_J_CAPS);
    }

    @Test
    void aQueryOfExactlyOneMaxPacketEndsWithAnEmptyPacketAndTheResponseIsTrackedAfterIt() {
        Conversation conversation = session();
        long sent = 0;
        long relayed = 0;
        for (byte[] packet : split(0, MySqlCommand.COM_QUERY, MAX)) {
            sent += packet.length;
            relayed += feed(conversation, packet, true);
        }
        assertThat(relayed).isEqualTo(sent);
        assertThat(conversation.state()).isEqualTo(SessionState.ACTIVE);
        conversation.server(Packets.ok(3, 0x0002));
        assertThat(conversation.state()).isEqualTo(SessionState.IDLE);
        assertThat(conversation.session.upstreamGoodbye()).isNotNull().satisfies(ByteBuf::release);
        conversation.finish();
    }

    @Test
    void aRowOfMoreThan16MiBIsNotTakenForTheEndOfTheResultSet() {
        Conversation conversation = session();
        conversation.client(Packets.query("select blob from t"));
        conversation.server(concat(columnCount(1, 1), columnDefinition(2, "blob")));
        conversation.toClient();
        long relayed = 0;
        long sent = 0;
        // a text row whose first column is a lenenc string with the 0xFE (8-byte length) prefix
        List<byte[]> row = split(3, 0xFE, MAX + 1000L);
        for (byte[] packet : row) {
            sent += packet.length;
            relayed += feed(conversation, packet, false);
            assertThat(conversation.state()).isEqualTo(SessionState.ACTIVE);
            if (packet != row.get(row.size() - 1)) {
                assertThat(conversation.session.clientError(new io.connguard.core.api.ProxyError(
                        io.connguard.core.api.ProxyError.Kind.ADMIN_KILL, "killed", ""))).as("inside a 16 MiB row").isNull();
            }
        }
        assertThat(relayed).isEqualTo(sent);
        conversation.server(okEof(5, 0x0002));
        assertThat(conversation.state()).isEqualTo(SessionState.IDLE);
        assertThat(conversation.context.recording.lostSync).isEmpty();
        conversation.finish();
    }

    @Test
    void localInfileDataOfExactlyOneMaxPacketEndsOnlyAtTheRealEmptyPacket() {
        Conversation conversation = session();
        conversation.client(Packets.query("load data local infile 'big.csv' into table t"));
        conversation.server(Packets.packet(1, Packets.payload(0xFB, "big.csv")));
        for (byte[] packet : split(2, 'x', MAX)) { // the data packet and its empty continuation
            feed(conversation, packet, true);
        }
        assertThat(conversation.state()).isEqualTo(SessionState.ACTIVE);
        assertThat(conversation.session.upstreamGoodbye()).as("the server is reading file data").isNull();
        conversation.client(new byte[] {0, 0, 0, 4}); // end of file
        conversation.server(Packets.ok(5, 0x0002));
        assertThat(conversation.state()).isEqualTo(SessionState.IDLE);
        assertThat(conversation.context.recording.lostSync).isEmpty();
        conversation.finish();
    }
}
