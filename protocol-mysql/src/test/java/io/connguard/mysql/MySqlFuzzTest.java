package io.connguard.mysql;

import com.code_intelligence.jazzer.junit.FuzzTest;
import io.connguard.core.api.ListenerInfo;
import io.connguard.core.api.ListenerInfo.UpstreamTlsMode;
import io.connguard.core.testing.FuzzAllocator;
import io.connguard.core.testing.FuzzScript;
import io.connguard.core.testing.FuzzSession;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.CompletableFuture;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Jazzer targets for every MySQL parser and tracker: the greeting, handshake response and COM_CHANGE_USER
 * decoders (only {@link MalformedPacketException} may escape them, and what they decode re-encodes to the
 * same identity), the KILL rewriter, the packet scanner (the same packets however the stream is cut), and
 * whole sessions through {@link MySqlSession}'s entry points with bytes from both sides cut where the
 * fuzzer chooses ({@link FuzzScript}), checked by {@link FuzzSession} (no exception escapes, nothing goes
 * upstream before admission, states consistent, bounded buffers, every buffer released) and for a
 * byte-exact relay.
 *
 * <p>Regression mode (every test run) replays {@code MySqlFuzzTestInputs/<target>/}, seeded by
 * {@code fuzz/seeds.py} from the captured conversations and edge cases; {@code fuzz/run.sh} fuzzes for real.
 */
class MySqlFuzzTest {

    private static final int MAX_ALLOCATION = 128 * 1024;

    /** HandshakeV10 read by the greeting probe in the fuzzer's reads; what decodes re-encodes for the client. */
    @FuzzTest(maxDuration = "5m")
    void greeting(byte[] input) {
        FuzzScript script = FuzzScript.parse(input);
        FuzzAllocator alloc = new FuzzAllocator(MAX_ALLOCATION);
        CompletableFuture<MySqlGreeting> result = new CompletableFuture<>();
        EmbeddedChannel channel = new EmbeddedChannel();
        channel.config().setAllocator(alloc);
        channel.pipeline().addLast(new MySqlGreetingProbe(result));
        for (FuzzScript.Step step : script.steps()) {
            for (byte[] read : step.reads()) {
                if (channel.isOpen()) { // the probe closes its channel once it has decided
                    channel.writeInbound(alloc.wrap(read));
                }
            }
        }
        channel.finishAndReleaseAll();
        assertThat(result).as("the probe answers once the server closed").isDone();
        alloc.assertAllReleased();

        byte[] packet = script.stream(FuzzScript.Op.SERVER);
        if (packet.length < MySqlWire.HEADER_SIZE) {
            return;
        }
        MySqlGreeting greeting;
        try {
            greeting = MySqlGreeting.decode(Unpooled.wrappedBuffer(packet), MySqlWire.HEADER_SIZE,
                    packet.length - MySqlWire.HEADER_SIZE);
        } catch (MalformedPacketException e) {
            return;
        }
        ByteBuf encoded = greeting.forClient(MySqlModule.FIRST_CONNECTION_ID, false).encode(alloc, 0);
        try {
            MySqlGreeting again = MySqlGreeting.decode(encoded, MySqlWire.HEADER_SIZE, encoded.readableBytes() - MySqlWire.HEADER_SIZE);
            assertThat(again.serverVersion()).isEqualTo(greeting.serverVersion());
            assertThat(again.connectionId()).isEqualTo(MySqlModule.FIRST_CONNECTION_ID);
            assertThat(again.capabilities()).as("the server's capabilities minus what the proxy hides")
                    .isEqualTo(greeting.capabilities() & ~MySqlCapabilities.HIDDEN_FROM_CLIENT);
            assertThat(again.charset()).isEqualTo(greeting.charset());
            assertThat(again.status()).isEqualTo(greeting.status());
        } finally {
            encoded.release();
        }
        alloc.assertAllReleased();
    }

    /** HandshakeResponse41: decoded for the identity, re-encoded for the server with the same identity. */
    @FuzzTest(maxDuration = "5m")
    void handshakeResponse(byte[] payload) {
        MySqlHandshakeResponse response;
        try {
            response = MySqlHandshakeResponse.decode(Unpooled.wrappedBuffer(payload), 0, payload.length);
        } catch (MalformedPacketException e) {
            return;
        }
        if (response.sslRequest() || (response.capabilities() & MySqlCapabilities.CLIENT_PLUGIN_AUTH) == 0) {
            return; // the handshake refuses these before re-encoding
        }
        FuzzAllocator alloc = new FuzzAllocator(MAX_ALLOCATION);
        ByteBuf encoded = response.encodeForUpstream(alloc, 1, response.capabilities());
        try {
            MySqlHandshakeResponse sent = MySqlHandshakeResponse.decode(encoded, MySqlWire.HEADER_SIZE,
                    encoded.readableBytes() - MySqlWire.HEADER_SIZE);
            assertThat(sent.user()).isEqualTo(response.user());
            if ((response.capabilities() & MySqlCapabilities.CLIENT_CONNECT_WITH_DB) != 0) {
                assertThat(sent.database()).isEqualTo(response.database());
            }
            assertThat(sent.authPlugin()).isEqualTo(MySqlHandshakeResponse.SWITCH_PLUGIN);
            assertThat(sent.attributes()).isEqualTo(response.attributes());
            assertThat(sent.programName()).isEqualTo(response.programName());
        } finally {
            encoded.release();
        }
        alloc.assertAllReleased();
    }

    /** COM_CHANGE_USER (8 bytes of capabilities, then the payload): the re-encoded packet names the same user. */
    @FuzzTest(maxDuration = "5m")
    void changeUser(byte[] input) {
        if (input.length < 8) {
            return;
        }
        long capabilities = ByteBuffer.wrap(input, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
        MySqlChangeUser changeUser;
        try {
            changeUser = MySqlChangeUser.decode(Unpooled.wrappedBuffer(input), 8, input.length - 8, capabilities);
        } catch (MalformedPacketException e) {
            return;
        }
        FuzzAllocator alloc = new FuzzAllocator(MAX_ALLOCATION);
        ByteBuf encoded = changeUser.encodeForSwitch(alloc, capabilities, 45);
        try {
            assertThat(encoded.getUnsignedMediumLE(0)).as("header length").isEqualTo(encoded.readableBytes() - 4);
            MySqlChangeUser sent = MySqlChangeUser.decode(encoded, MySqlWire.HEADER_SIZE,
                    encoded.readableBytes() - MySqlWire.HEADER_SIZE, capabilities);
            assertThat(sent.user()).isEqualTo(changeUser.user());
            assertThat(sent.database()).isEqualTo(changeUser.database());
            if ((capabilities & MySqlCapabilities.CLIENT_CONNECT_ATTRS) != 0 && changeUser.attributes() != null) {
                assertThat(sent.attributes()).isEqualTo(changeUser.attributes());
                assertThat(sent.programName()).isEqualTo(changeUser.programName());
            }
        } finally {
            encoded.release();
        }
        alloc.assertAllReleased();
    }

    /**
     * KILL statements (anywhere in a multi-statement) and COM_PROCESS_KILL: a rewrite changes the ids of the
     * KILL statements to what they resolve to, and nothing else.
     */
    @FuzzTest(maxDuration = "5m")
    void killRewriter(byte[] text) {
        java.util.function.LongUnaryOperator resolve = id -> {
            assertThat(id).as("only ids that parsed are looked up").isNotNegative();
            return id % 3 == 0 ? id : id + 7;
        };
        MySqlKillRewriter rewriter = new MySqlKillRewriter(resolve);
        FuzzAllocator alloc = new FuzzAllocator(MAX_ALLOCATION);
        ByteBuf original = Unpooled.wrappedBuffer(text);
        ByteBuf query = rewriter.rewriteQuery(alloc, original, 0, text.length);
        MySqlKillRewriter.Kill[] kills = new MySqlKillRewriter.Kill[16];
        int found = text.length > MySqlKillRewriter.MAX_QUERY_LENGTH ? 0 : MySqlKillRewriter.findKills(original, 0, text.length, kills);
        StringBuilder expected = new StringBuilder();
        boolean changed = false;
        int copied = 0;
        for (int k = 0; k < found; k++) {
            long id = kills[k].id();
            long to = id < 0 ? id : resolve.applyAsLong(id);
            changed |= to != id;
            expected.append(new String(text, copied, kills[k].digitsStart() - copied, StandardCharsets.ISO_8859_1));
            expected.append(to < 0 ? new String(text, kills[k].digitsStart(), kills[k].digitsEnd() - kills[k].digitsStart(),
                    StandardCharsets.ISO_8859_1) : Long.toString(to));
            copied = kills[k].digitsEnd();
        }
        expected.append(new String(text, copied, text.length - copied, StandardCharsets.ISO_8859_1));
        if (query != null) {
            try {
                assertThat(changed).as("a rewrite changes an id").isTrue();
                assertThat(query.getUnsignedMediumLE(0)).isEqualTo(query.readableBytes() - 4);
                assertThat(query.getByte(4)).isEqualTo((byte) MySqlCommand.COM_QUERY);
                String rewritten = query.toString(5, query.readableBytes() - 5, StandardCharsets.ISO_8859_1);
                assertThat(rewritten).as("only the ids of KILL statements change").isEqualTo(expected.toString());
                MySqlKillRewriter.Kill[] again = new MySqlKillRewriter.Kill[16];
                assertThat(MySqlKillRewriter.findKills(query, 5, query.writerIndex(), again))
                        .as("the rewrite has the same KILL statements").isEqualTo(found);
            } finally {
                query.release();
            }
        } else {
            assertThat(changed).as("no rewrite when no id changes: %s", new String(text, StandardCharsets.ISO_8859_1)).isFalse();
        }
        if (text.length >= 4) {
            ByteBuf kill = rewriter.rewriteProcessKill(alloc, Unpooled.wrappedBuffer(text), 0);
            long id = ByteBuffer.wrap(text, 0, 4).order(ByteOrder.LITTLE_ENDIAN).getInt() & 0xFFFF_FFFFL;
            if (kill != null) {
                assertThat(kill.getUnsignedIntLE(5)).isEqualTo((id + 7) & 0xFFFF_FFFFL);
                kill.release();
            } else {
                assertThat(id % 3).isZero();
            }
        }
        alloc.assertAllReleased();
    }

    /** {@link MySqlPacketScanner} alone: the same packets and prefixes whether the stream comes whole or cut. */
    @FuzzTest(maxDuration = "5m")
    void packetScanner(byte[] input) {
        FuzzScript script = FuzzScript.parse(input);
        List<byte[]> reads = new ArrayList<>();
        script.steps().forEach(step -> reads.addAll(step.reads()));
        byte[] stream = Packets.concat(reads.toArray(byte[][]::new));
        Transcript whole = new Transcript();
        MySqlPacketScanner wholeScanner = new MySqlPacketScanner();
        wholeScanner.scan(Unpooled.wrappedBuffer(stream), whole);
        Transcript split = new Transcript();
        MySqlPacketScanner splitScanner = new MySqlPacketScanner();
        for (byte[] read : reads) {
            ByteBuf buf = Unpooled.buffer(read.length + 2).writeByte(0x5A).writeBytes(read).writeByte(0x5A);
            buf.readerIndex(1).writerIndex(1 + read.length);
            splitScanner.scan(buf, split);
            assertThat(buf.readerIndex()).isEqualTo(1);
        }
        assertThat(split.events).as("the same packets however the stream is cut").isEqualTo(whole.events);
        assertThat(splitScanner.atBoundary()).isEqualTo(wholeScanner.atBoundary());
    }

    /**
     * The connection phase and what follows, from the proxy's greeting on: the identity before any upstream,
     * the server's greeting, the auth switch and its relay, then the command phase.
     */
    @FuzzTest(maxDuration = "5m")
    void session(byte[] input) {
        FuzzScript script = FuzzScript.parse(input);
        ListenerInfo listener = Conversation.listener((script.setup() & 1) != 0 ? UpstreamTlsMode.REQUIRE
                : UpstreamTlsMode.DISABLE);
        MySqlModule module = Conversation.moduleWithGreeting();
        module.remember(listener, Conversation.serverGreeting(Conversation.REAL_THREAD_ID));
        FuzzSession fuzz = new FuzzSession(module, listener, new FuzzAllocator(MAX_ALLOCATION));
        byte[] greeting = fuzz.sentToClient();
        assertThat(greeting).as("the proxy greets the client itself").isNotEmpty();
        fuzz.play(script);
        finish(fuzz);
    }

    /**
     * {@link MySqlCommandScanner}, {@link MySqlPacketScanner} and {@link MySqlCommandTracker} after a canned
     * authentication (setup bit 0: a Connector/J client with CLIENT_DEPRECATE_EOF, else libmariadb): server
     * bytes reach the client unchanged, client bytes the server unchanged unless rewritten.
     */
    @FuzzTest(maxDuration = "5m")
    void commandTracker(byte[] input) {
        FuzzScript script = FuzzScript.parse(input);
        FuzzSession fuzz = new FuzzSession(Conversation.moduleWithGreeting(),
                Conversation.listener(UpstreamTlsMode.DISABLE), new FuzzAllocator(MAX_ALLOCATION));
        long capabilities = (script.setup() & 1) != 0 ? Conversation.CONNECTOR_J_CAPS : Conversation.LIBMARIADB_CAPS;
        Conversation.authenticate(fuzz, capabilities);
        int clientBefore = fuzz.receivedFromClient().length;
        int upstreamBefore = fuzz.sentToUpstream().length;
        int serverBefore = fuzz.receivedFromServer().length;
        int toClientBefore = fuzz.sentToClient().length;

        fuzz.play(script);
        byte[] fromServer = tail(fuzz.receivedFromServer(), serverBefore);
        assertThat(tail(fuzz.sentToClient(), toClientBefore)).as("server bytes relayed unchanged").isEqualTo(fromServer);
        byte[] fromClient = tail(fuzz.receivedFromClient(), clientBefore);
        byte[] upstream = tail(fuzz.sentToUpstream(), upstreamBefore);
        if (!mayBeRewritten(fromClient) && fuzz.violations.isEmpty()) {
            assertThat(upstream).as("client bytes relayed unchanged (a split header may still be held)")
                    .isEqualTo(Arrays.copyOf(fromClient, upstream.length));
            assertThat(fromClient.length - upstream.length).as("bytes held back").isLessThanOrEqualTo(64 * 1024 + 5);
        }
        finish(fuzz);
    }

    /** Ends the session; each packet core was given for the client is one ERR packet, a goodbye a COM_QUIT. */
    private static void finish(FuzzSession fuzz) {
        fuzz.finish();
        for (byte[] packet : fuzz.errorPackets) {
            assertThat(packet.length).isGreaterThan(MySqlWire.HEADER_SIZE);
            assertThat(packet[0] & 0xFF | (packet[1] & 0xFF) << 8 | (packet[2] & 0xFF) << 16)
                    .as("ERR packet length").isEqualTo(packet.length - MySqlWire.HEADER_SIZE);
            assertThat(packet[MySqlWire.HEADER_SIZE] & 0xFF).as("ERR header").isEqualTo(MySqlWire.ERR);
        }
        if (fuzz.goodbye != null) {
            assertThat(fuzz.goodbye).isEqualTo(new byte[] {1, 0, 0, 0, MySqlCommand.COM_QUIT});
        }
    }

    /** Whether the client's bytes hold something the command scanner rewrites: COM_CHANGE_USER or a KILL. */
    private static boolean mayBeRewritten(byte[] fromClient) {
        for (byte b : fromClient) {
            if (b == MySqlCommand.COM_CHANGE_USER || b == MySqlCommand.COM_PROCESS_KILL) {
                return true;
            }
        }
        return new String(fromClient, StandardCharsets.ISO_8859_1).toLowerCase(Locale.ROOT).contains("kill");
    }

    private static byte[] tail(byte[] bytes, int from) {
        return Arrays.copyOfRange(bytes, from, bytes.length);
    }

    /** Writes down every packet a scanner reports. */
    private static final class Transcript implements MySqlPacketScanner.Listener {

        final List<String> events = new ArrayList<>();

        @Override
        public void onPacket(int sequenceId, int length, boolean continuation, byte[] prefix, int prefixLength) {
            assertThat(prefixLength).isEqualTo(Math.min(length, MySqlPacketScanner.PREFIX_SIZE));
            events.add(sequenceId + " " + length + " " + continuation + " "
                    + Arrays.toString(Arrays.copyOf(prefix, prefixLength)));
        }
    }
}
