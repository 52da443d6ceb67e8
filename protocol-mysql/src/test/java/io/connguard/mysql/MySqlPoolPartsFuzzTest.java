package io.connguard.mysql;

import com.code_intelligence.jazzer.junit.FuzzTest;
import io.connguard.core.testing.FuzzAllocator;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Jazzer targets for the parts of MySQL pooling: the statement classifier (nothing escapes, the outcome is
 * the same however the text is cut, and a text pins nothing that its split halves would not), the session
 * state information of OK packets (only {@link MalformedPacketException} escapes the decoder, the capture
 * returns changes or null), and connguard's own login (any server bytes end in a step, never an exception,
 * every buffer released), and the prepared statements of one client over two connections.
 *
 * <p>Regression mode replays {@code MySqlPoolPartsFuzzTestInputs/<target>/}; {@code fuzz/run.sh 5m
 * MySqlPoolPartsFuzzTest} fuzzes for real.
 */
class MySqlPoolPartsFuzzTest {

    private static final int MAX_ALLOCATION = 128 * 1024;

    /** First byte: sql_mode bits and the chunk size; the rest: COM_QUERY text. */
    @FuzzTest(maxDuration = "5m")
    void statementClassifier(byte[] input) {
        if (input.length == 0) {
            return;
        }
        boolean noBackslashEscapes = (input[0] & 1) != 0;
        boolean ansiQuotes = (input[0] & 2) != 0;
        int chunk = 1 + ((input[0] & 0xFF) >>> 2) % 16;
        byte[] text = Arrays.copyOfRange(input, 1, input.length);
        MySqlStatementClassifier whole = classify(text, text.length, noBackslashEscapes, ansiQuotes);
        MySqlStatementClassifier cut = classify(text, chunk, noBackslashEscapes, ansiQuotes);
        assertThat(cut.pinsStarted()).isEqualTo(whole.pinsStarted());
        assertThat(cut.pinsEnded()).isEqualTo(whole.pinsEnded());
        assertThat(cut.pinsMaybeEnded()).isEqualTo(whole.pinsMaybeEnded());
        assertThat(cut.followsClient()).isEqualTo(whole.followsClient());
        assertThat(cut.readsLastInsertId()).isEqualTo(whole.readsLastInsertId());
        assertThat(whole.pinsStarted() & ~MySqlPin.ALL).isZero();
        assertThat(whole.apply(0, true) & ~MySqlPin.ALL).isZero();
        assertThat(whole.unknown()).isEqualTo(whole.unknownReason() != null);
    }

    /** An OK payload read through the capture in two pieces, and decoded directly. */
    @FuzzTest(maxDuration = "5m")
    void sessionChanges(byte[] input) {
        MySqlSessionChanges direct;
        try {
            direct = MySqlSessionChanges.decode(Unpooled.wrappedBuffer(input), 0, input.length);
        } catch (MalformedPacketException e) {
            direct = null;
        }
        MySqlOkCapture capture = new MySqlOkCapture();
        MySqlSessionChanges captured = MySqlSessionChanges.NONE;
        if (input.length > 0 && capture.begin(input, Math.min(32, input.length), input.length)) {
            ByteBuf buf = Unpooled.wrappedBuffer(input);
            capture.accept(buf, 0, input.length / 2);
            capture.accept(buf, input.length / 2, input.length - input.length / 2);
            captured = capture.finish();
            assertThat(captured).isEqualTo(direct);
        }
        MySqlSessionState state = new MySqlSessionState("test");
        state.apply(captured);
        state.ok(input, Math.min(32, input.length));
        MySqlSessionState.replay(state, new MySqlSessionState("test"));
    }

    /** Server packets, each a 2-byte little-endian length and its payload, fed to a login until it ends. */
    @FuzzTest(maxDuration = "5m")
    void serverLogin(byte[] input) {
        FuzzAllocator alloc = new FuzzAllocator(MAX_ALLOCATION);
        boolean tls = input.length > 0 && (input[0] & 1) != 0;
        MySqlServerLogin login = new MySqlServerLogin(new MySqlServerLogin.Credentials("u",
                "pw".getBytes(StandardCharsets.UTF_8), "test", 45, new byte[0]), MySqlCapabilities.CLIENT_DEPRECATE_EOF,
                tls, null, alloc);
        int i = 1;
        int sequence = 0;
        MySqlServerLogin.Step step = MySqlServerLogin.Step.WAIT;
        while (i + 2 <= input.length && step != MySqlServerLogin.Step.DONE && step != MySqlServerLogin.Step.FAILED) {
            int length = Math.min((input[i] & 0xFF) | (input[i + 1] & 0xFF) << 8, input.length - i - 2);
            ByteBuf packet = alloc.wrap(Arrays.copyOfRange(input, i + 2, i + 2 + length));
            step = login.onPacket(packet, 0, length, sequence);
            packet.release();
            i += 2 + length;
            sequence += 2;
            if (step == MySqlServerLogin.Step.START_TLS) {
                login.takeOutput().release();
                step = login.tlsEstablished();
            }
            if (step == MySqlServerLogin.Step.SEND) {
                login.takeOutput().release();
            }
        }
        login.release();
        if (step == MySqlServerLogin.Step.FAILED) {
            assertThat(login.errorMessage()).isNotNull();
        }
        alloc.assertAllReleased();
    }

    /**
     * A client's prepared-statement commands over two server connections, driven by the input: each op byte
     * picks a command, a client id, a connection and what the server answers. No exception escapes, the
     * limits hold, ids sent upstream are the serving connection's, every buffer handed over is released.
     */
    @FuzzTest(maxDuration = "5m")
    void preparedStatements(byte[] input) {
        FuzzAllocator alloc = new FuzzAllocator(MAX_ALLOCATION);
        MySqlPreparedStatements client = new MySqlPreparedStatements(new MySqlPreparedStatements.Limits(4, 200), alloc);
        MySqlServerStatements[] servers = {new MySqlServerStatements(2), new MySqlServerStatements(3)};
        int nextServerId = 1;
        for (int i = 0; i + 3 < input.length; i += 4) {
            int op = input[i] & 0x0F;
            MySqlServerStatements server = servers[(input[i] >> 4) & 1];
            boolean serverFails = (input[i] & 0x20) != 0;
            int id = input[i + 1] & 0x07;
            int params = input[i + 2] & 0x03;
            int extra = input[i + 3] & 0x3F;
            byte[] payload = switch (op) {
                case 0 -> Packets.payload(0x16, "SELECT " + "?,".repeat(params) + extra);
                case 1, 2 -> MySqlPreparedStatementsTest.execute(id, input[i + 3] & 0x01, op == 1,
                        op == 1 ? new byte[] {8, 0, 8, 0} : null, new byte[16]);
                case 3 -> Packets.payload(0x18, id, 0, 0, 0, 0, 0, "x");
                case 4 -> Packets.payload(0x19, id, 0, 0, 0);
                case 5 -> Packets.payload(0x1A, id, 0, 0, 0);
                case 6 -> Packets.payload(0x1C, id, 0, 0, 0, 1, 0, 0, 0);
                case 7 -> Arrays.copyOf(new byte[] {0x17, (byte) id}, extra % 12);
                default -> null;
            };
            if (payload == null) {
                if (op == 8) {
                    client.forgetAll();
                } else if (op == 9) {
                    server.takeCloses();
                }
                continue;
            }
            if (op == 1 || op == 2) {
                payload = Arrays.copyOfRange(payload, 4, payload.length);   // execute() builds a whole packet
            }
            ByteBuf buf = alloc.wrap(payload);
            if (op == 0) {
                if (client.onPrepare(buf, 0, payload.length) == MySqlPreparedStatements.Route.FORWARD) {
                    byte[] answer = serverFails ? Packets.payload(0xFF, 0x7A, 0x04, "#42S02nope")
                            : Packets.payload(0x00, nextServerId++, 0, 0, 0, 1, 0, params, 0, 0, 0, 0);
                    ByteBuf response = alloc.wrap(answer);
                    client.onPrepareResponse(response, 0, answer.length, server);
                    response.release();
                } else {
                    client.takeOutput().release();
                }
            } else {
                MySqlPreparedStatements.Route route = client.onCommand(buf, 0, payload.length, payload.length, 0, server);
                if (route == MySqlPreparedStatements.Route.PREPARE_FIRST) {
                    client.injectedPrepare().release();
                    List<byte[]> answers = serverFails ? List.of(Packets.err(1, 1146, "gone"))
                            : MySqlPreparedStatementsTest.prepareResponse(nextServerId++, 1, params, true);
                    MySqlPreparedStatements.Injected injected = MySqlPreparedStatements.Injected.MORE;
                    for (byte[] answer : answers) {
                        ByteBuf packet = alloc.wrap(answer);
                        injected = client.onInjectedPacket(packet, 4, answer.length - 4, true, server);
                        packet.release();
                        if (injected != MySqlPreparedStatements.Injected.MORE) {
                            break;
                        }
                    }
                    if (injected == MySqlPreparedStatements.Injected.DONE) {
                        route = client.onCommand(buf, 0, payload.length, payload.length, 0, server);
                        assertThat(route).isNotEqualTo(MySqlPreparedStatements.Route.PREPARE_FIRST);
                    } else {
                        route = MySqlPreparedStatements.Route.DROP;
                    }
                }
                if (route == MySqlPreparedStatements.Route.ANSWER || route == MySqlPreparedStatements.Route.REWRITE_HEAD) {
                    ByteBuf out = client.takeOutput();
                    assertThat(out).isNotNull();
                    out.release();
                }
            }
            buf.release();
            assertThat(client.statementCount()).isLessThanOrEqualTo(4);
            assertThat(client.textBytes()).isBetween(0L, 200L);
            assertThat(server.preparedCount()).isLessThanOrEqualTo(3);
        }
        client.release();
        alloc.assertAllReleased();
    }

    private static MySqlStatementClassifier classify(byte[] text, int chunk, boolean noBackslashEscapes, boolean ansiQuotes) {
        MySqlStatementClassifier classifier = new MySqlStatementClassifier();
        classifier.sqlMode(noBackslashEscapes, ansiQuotes);
        ByteBuf buf = Unpooled.wrappedBuffer(text);
        classifier.begin();
        for (int at = 0; at < text.length; at += chunk) {
            classifier.accept(buf, at, Math.min(chunk, text.length - at));
        }
        classifier.finish();
        return classifier;
    }
}
