package io.connguard.mysql;

import io.connguard.core.api.ClientIdentity;
import io.connguard.core.api.ListenerInfo;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

import static io.connguard.mysql.Packets.concat;
import static io.connguard.mysql.Packets.packet;
import static io.connguard.mysql.Packets.payload;
import static io.connguard.mysql.Packets.query;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * What transaction mode needs of the command scanner, fed bytes split at every offset: a gate that drops a
 * command, replaces one (its rest dropped), stops one and lets it through later, and the SQL text of every
 * COM_QUERY reaching the text listener whole; and of the response scanner: an OK's body reaching a sink,
 * and the index of a packet's payload in the buffer being scanned.
 */
class MySqlTransactionGateTest {

    private static final byte[] FIRST = query("SELECT 1");
    private static final byte[] CLOSE = packet(0, payload(MySqlPreparedStatements.COM_STMT_CLOSE, 7, 0, 0, 0));
    private static final byte[] EXECUTE = packet(0, payload(MySqlCommand.COM_STMT_EXECUTE, 1, 0, 0, 0, 0, 1, 0, 0, 0,
            "0123456789 long parameter data that is dropped with its command"));
    private static final byte[] STOPPED = query("SELECT 'stopped here'");
    private static final byte[] LAST = query("SELECT 2 /* a longer text that the kill rewriter does not read whole, "
            + "so that it reaches the listener in more than one chunk when split */");
    private static final byte[] REPLACEMENT = query("SIGNAL SQLSTATE 'HY000' SET MYSQL_ERRNO = 1243");

    /** Drops COM_STMT_CLOSE, replaces COM_STMT_EXECUTE, stops the first "stopped" query until opened. */
    private static final class Gate implements MySqlCommandScanner.Gate {
        boolean open;
        int stops;
        private ByteBuf replacement;

        @Override
        public boolean allows(ByteBuf buf, int index, int need) {
            int command = buf.getUnsignedByte(index + MySqlWire.HEADER_SIZE);
            if (command == MySqlPreparedStatements.COM_STMT_CLOSE) {
                replacement = Unpooled.EMPTY_BUFFER;
            } else if (command == MySqlCommand.COM_STMT_EXECUTE) {
                replacement = Unpooled.wrappedBuffer(REPLACEMENT);
            } else if (command == MySqlCommand.COM_QUERY && !open
                    && buf.toString(index + 5, need - 5, StandardCharsets.UTF_8).contains("stopped")) {
                return false;
            }
            return true;
        }

        @Override
        public int needed(ByteBuf buf, int index, int end, int length, int command) {
            return command == MySqlCommand.COM_STMT_EXECUTE ? MySqlWire.HEADER_SIZE + 6 : -1;
        }

        @Override
        public ByteBuf takeReplacement() {
            ByteBuf taken = replacement;
            replacement = null;
            return taken;
        }

        @Override
        public boolean dropsRest() {
            return true;
        }

        @Override
        public void stopped() {
            stops++;
        }

        @Override
        public void overflow() {
            throw new AssertionError("overflow");
        }
    }

    private static final class Texts implements MySqlCommandScanner.TextListener {
        final List<String> texts = new ArrayList<>();
        private ByteArrayOutputStream current;

        @Override
        public void textStart() {
            assertThat(current).as("a text ended before the next started").isNull();
            current = new ByteArrayOutputStream();
        }

        @Override
        public void text(ByteBuf buf, int index, int length) {
            byte[] bytes = new byte[length];
            buf.getBytes(index, bytes);
            current.writeBytes(bytes);
        }

        @Override
        public void textEnd() {
            texts.add(current.toString(StandardCharsets.UTF_8));
            current = null;
        }
    }

    @Test
    void aGateDropsReplacesAndStopsCommandsAndTheTextListenerReadsEveryQueryWholeAtEverySplit() {
        byte[] stream = concat(FIRST, CLOSE, EXECUTE, STOPPED, LAST);
        byte[] expected = concat(FIRST, REPLACEMENT, STOPPED, LAST);
        for (int split = 0; split <= stream.length; split++) {
            TrackingContext context = new TrackingContext(Conversation.listener(ListenerInfo.UpstreamTlsMode.DISABLE));
            MySqlCommandTracker tracker = new MySqlCommandTracker(context, new ClientIdentity("u", "d", null));
            tracker.start(Conversation.CONNECTOR_J_CAPS, 2);
            ByteArrayOutputStream upstream = new ByteArrayOutputStream();
            MySqlCommandScanner scanner = new MySqlCommandScanner(context.alloc(), tracker,
                    new MySqlKillRewriter(id -> id), new MySqlStatementCapture(), new MySqlCommandScanner.Output() {
                        @Override
                        public void toUpstream(ByteBuf buf) {
                            byte[] bytes = new byte[buf.readableBytes()];
                            buf.readBytes(bytes);
                            buf.release();
                            upstream.writeBytes(bytes);
                        }

                        @Override
                        public ByteBuf rewriteChangeUser(ByteBuf buf, int payloadIndex, int payloadLength) {
                            return null;
                        }
                    });
            Gate gate = new Gate();
            Texts texts = new Texts();
            scanner.gate(gate);
            scanner.textListener(texts);
            scanner.scan(context.wrap(stream, 0, split));
            scanner.scan(context.wrap(stream, split, stream.length));
            assertThat(gate.stops).as("split at " + split).isEqualTo(1);
            assertThat(scanner.holdingBack()).isTrue();
            gate.open = true;
            scanner.resume();
            assertThat(upstream.toByteArray()).as("split at " + split).isEqualTo(expected);
            assertThat(texts.texts).as("split at " + split).containsExactly("SELECT 1", "SELECT 'stopped here'",
                    new String(LAST, 5, LAST.length - 5, StandardCharsets.UTF_8));
            assertThat(scanner.atBoundary()).isTrue();
            scanner.close();
            context.alloc.assertAllReleased();
        }
    }

    @Test
    void theResponseScannerGivesAnOksBodyToItsSinkAndThePayloadIndexOfPacketsStartedInTheBuffer() {
        byte[] info = "a long info text that makes the OK longer than the scanner's prefix".getBytes(StandardCharsets.UTF_8);
        byte[] ok = packet(1, payload(0x00, 0, 0, 2, 0, 0, 0, info));
        byte[] stream = concat(Packets.ok(1, 2), ok);
        for (int split = 0; split <= stream.length; split++) {
            MySqlPacketScanner scanner = new MySqlPacketScanner();
            ByteArrayOutputStream body = new ByteArrayOutputStream();
            List<Integer> indexes = new ArrayList<>();
            int[] ends = {0};
            MySqlPacketScanner.Listener listener = (sequenceId, length, continuation, prefix, prefixLength) -> {
                indexes.add(scanner.payloadIndex());
                if (length > MySqlPacketScanner.PREFIX_SIZE) {
                    body.write(prefix, 0, prefixLength);
                    scanner.captureBody(new MySqlPacketScanner.BodySink() {
                        @Override
                        public void body(ByteBuf buf, int index, int n) {
                            byte[] bytes = new byte[n];
                            buf.getBytes(index, bytes);
                            body.writeBytes(bytes);
                        }

                        @Override
                        public void end() {
                            ends[0]++;
                        }
                    });
                }
            };
            ByteBuf first = Unpooled.wrappedBuffer(stream, 0, split);
            ByteBuf second = Unpooled.wrappedBuffer(stream, split, stream.length - split);
            scanner.scan(first, listener);
            scanner.scan(second, listener);
            assertThat(body.toByteArray()).as("split at " + split).isEqualTo(java.util.Arrays.copyOfRange(ok, 4, ok.length));
            assertThat(ends[0]).isEqualTo(1);
            int okStart = stream.length - ok.length + MySqlWire.HEADER_SIZE;
            // reported while the scan that completed its prefix runs: -1 when its header came in the first buffer
            int expected = split < okStart ? okStart - split : split < okStart + MySqlPacketScanner.PREFIX_SIZE ? -1 : okStart;
            assertThat(indexes.get(1)).as("split at " + split).isEqualTo(expected);
        }
    }
}
