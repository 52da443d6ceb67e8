package io.connguard.postgres;

import com.code_intelligence.jazzer.junit.FuzzTest;
import io.connguard.core.api.ListenerInfo;
import io.connguard.core.api.ListenerInfo.UpstreamTlsMode;
import io.connguard.core.testing.FuzzAllocator;
import io.connguard.core.testing.FuzzScript;
import io.connguard.core.testing.FuzzSession;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;

/**
 * Jazzer targets for every PostgreSQL parser and tracker, fed through the real {@link PgSession} entry
 * points (or, for the frame scanner, directly) with bytes from both sides cut where the fuzzer chooses
 * ({@link FuzzScript}). Beyond {@link FuzzSession}'s checks of the SPI (no exception escapes, nothing goes
 * upstream before admission, states consistent, bounded buffers, every buffer released) each target
 * asserts what its parser promises: the relay is byte-exact, the client learns nothing but 'N' and a
 * well-formed ErrorResponse before the server speaks, and the scanner reports the same messages however
 * the stream is cut.
 *
 * <p>Regression mode (every test run) replays {@code PgFuzzTestInputs/<target>/}, seeded by
 * {@code fuzz/seeds.py} from the captured conversations and edge cases; {@code fuzz/run.sh} fuzzes for real.
 */
class PgFuzzTest {

    private static final int MAX_ALLOCATION = 128 * 1024;
    private static final byte[] TERMINATE = {'X', 0, 0, 0, 4};

    /** The setup byte's bit 0 asks for a listener with upstream TLS. */
    private static ListenerInfo listener(FuzzScript script) {
        return PgTestContext.listener((script.setup() & 1) != 0 ? UpstreamTlsMode.REQUIRE : UpstreamTlsMode.DISABLE);
    }

    /**
     * The start-up phase: SSLRequest, GSSENCRequest, CancelRequest, StartupMessage and what a client sends
     * while it waits for admission ({@link PgStartupParser}).
     */
    @FuzzTest(maxDuration = "5m")
    void startupParser(byte[] input) {
        FuzzScript script = FuzzScript.parse(input);
        FuzzSession fuzz = new FuzzSession(new PgModule(), listener(script), new FuzzAllocator(MAX_ALLOCATION));
        fuzz.play(script);
        assertThat(fuzz.recording.identities).as("identified once at most").hasSizeLessThanOrEqualTo(1);
        if (!fuzz.upstreamConnected()) {
            assertThat(new String(fuzz.sentToClient(), StandardCharsets.ISO_8859_1))
                    .as("before the server speaks the client gets only 'N' answers").matches("N{0,2}");
        }
        byte[] startup = startupMessage(fuzz.receivedFromClient());
        byte[] upstream = fuzz.sentToUpstream();
        if (fuzz.upstreamConnected() && (script.setup() & 1) == 0) {
            assertThat(startup).as("an identified client sent a StartupMessage").isNotNull();
            assertThat(Arrays.copyOf(upstream, Math.min(upstream.length, startup.length)))
                    .as("the StartupMessage goes upstream unchanged").isEqualTo(startup);
        }
        finish(fuzz);
    }

    /**
     * {@link PgFrameScanner} alone, on both directions' bytes as one stream: the messages it reports, and the
     * body prefixes its sink asks for, are the same whether the stream comes whole or in the fuzzer's reads.
     */
    @FuzzTest(maxDuration = "5m")
    void frameScanner(byte[] input) {
        FuzzScript script = FuzzScript.parse(input);
        int wanted = script.setup();
        List<byte[]> reads = new ArrayList<>();
        script.steps().forEach(step -> reads.addAll(step.reads()));
        byte[] stream = reads.stream().reduce(new byte[0], PgMessages::concat);

        Transcript whole = new Transcript(wanted);
        PgFrameScanner wholeScanner = PgFrameScanner.to(whole);
        scanPadded(wholeScanner, stream);
        Transcript split = new Transcript(wanted);
        PgFrameScanner splitScanner = PgFrameScanner.to(split);
        reads.forEach(read -> scanPadded(splitScanner, read));

        assertThat(split.events).as("the same messages however the stream is cut").isEqualTo(whole.events);
        assertThat(splitScanner.atBoundary()).isEqualTo(wholeScanner.atBoundary());
        assertThat(splitScanner.unframeable()).isEqualTo(wholeScanner.unframeable());
    }

    /**
     * {@link PgSessionTracker} with both {@link PgFrameScanner}s in the relay phase, after a canned login:
     * every byte is relayed unchanged in both directions, whatever the tracker makes of it.
     */
    @FuzzTest(maxDuration = "5m")
    void sessionTracker(byte[] input) {
        FuzzScript script = FuzzScript.parse(input);
        FuzzSession fuzz = new FuzzSession(new PgModule(), PgTestContext.listener(UpstreamTlsMode.DISABLE),
                new FuzzAllocator(MAX_ALLOCATION));
        fuzz.client(PgMessages.startup("user", "u", "database", "d", "application_name", "fuzz"));
        fuzz.connect();
        fuzz.server(PgMessages.loginOk(7, PgMessages.key(4, 7)));
        assertThat(fuzz.recording.states).as("the canned login ends idle").isNotEmpty();
        fuzz.play(script);
        assertThat(fuzz.sentToUpstream()).as("client bytes relayed unchanged").isEqualTo(fuzz.receivedFromClient());
        assertThat(fuzz.sentToClient()).as("server bytes relayed unchanged").isEqualTo(fuzz.receivedFromServer());
        finish(fuzz);
    }

    /**
     * A whole session from the first byte, with core connecting the upstream and ending the session where the
     * script says: all of the above together, and {@link PgErrorWriter}'s packets.
     */
    @FuzzTest(maxDuration = "5m")
    void session(byte[] input) {
        FuzzScript script = FuzzScript.parse(input);
        FuzzSession fuzz = new FuzzSession(new PgModule(), listener(script), new FuzzAllocator(MAX_ALLOCATION));
        fuzz.play(script);
        if (fuzz.upstreamConnected() && (script.setup() & 1) == 0) {
            Requests opening = encryptionRequests(fuzz.receivedFromClient());
            int requests = opening.count();
            assertThat(fuzz.sentToUpstream()).as("client bytes after the encryption requests relayed unchanged")
                    .isEqualTo(Arrays.copyOfRange(fuzz.receivedFromClient(), opening.bytes(),
                            fuzz.receivedFromClient().length));
            assertThat(new String(fuzz.sentToClient(), 0, requests, StandardCharsets.ISO_8859_1))
                    .as("each request answered 'N'").isEqualTo("N".repeat(requests));
            assertThat(Arrays.copyOfRange(fuzz.sentToClient(), requests, fuzz.sentToClient().length))
                    .as("server bytes relayed unchanged").isEqualTo(fuzz.receivedFromServer());
        }
        finish(fuzz);
    }

    /** Ends the session; every packet core was given for the client is one well-formed ErrorResponse. */
    private static void finish(FuzzSession fuzz) {
        fuzz.finish();
        for (byte[] packet : fuzz.errorPackets) {
            String text = new String(packet, StandardCharsets.UTF_8);
            if (text.startsWith("EFATAL:  ")) { // the server's one protocol 2 answer (an old version asked for)
                assertThat(text).endsWith("\n\0").contains("unsupported frontend protocol");
            } else {
                assertThat(PgErrorParser.fields(packet)).containsKeys('S', 'C', 'M');
            }
        }
        if (fuzz.goodbye != null) {
            assertThat(fuzz.goodbye).as("the goodbye is a Terminate").isEqualTo(TERMINATE);
        }
    }

    /** The SSLRequest / GSSENCRequest packets (each once, a body allowed) that open the client's stream. */
    private record Requests(int count, int bytes) {
    }

    private static Requests encryptionRequests(byte[] fromClient) {
        ByteBuffer in = ByteBuffer.wrap(fromClient);
        boolean ssl = false;
        boolean gss = false;
        while (in.remaining() >= 8) {
            int length = in.getInt(in.position());
            int code = in.getInt(in.position() + 4);
            boolean first = code == PgStartupParser.SSL_REQUEST_CODE ? !ssl
                    : code == PgStartupParser.GSSENC_REQUEST_CODE && !gss;
            if (!first || length < 8 || length > in.remaining()) {
                break;
            }
            ssl |= code == PgStartupParser.SSL_REQUEST_CODE;
            gss |= code == PgStartupParser.GSSENC_REQUEST_CODE;
            in.position(in.position() + length);
        }
        return new Requests((ssl ? 1 : 0) + (gss ? 1 : 0), in.position());
    }

    /** The client's StartupMessage after any encryption requests, or null if there is none. */
    private static byte[] startupMessage(byte[] fromClient) {
        ByteBuffer in = ByteBuffer.wrap(fromClient);
        in.position(encryptionRequests(fromClient).bytes());
        if (in.remaining() < 8) {
            return null;
        }
        int length = in.getInt(in.position());
        if (length < 8 || length > in.remaining()) {
            return null;
        }
        return Arrays.copyOfRange(fromClient, in.position(), in.position() + length);
    }

    /** Scans {@code bytes} from a buffer with a byte of junk on each side of its readable part. */
    private static void scanPadded(PgFrameScanner scanner, byte[] bytes) {
        ByteBuf buf = Unpooled.buffer(bytes.length + 2).writeByte(0x5A).writeBytes(bytes).writeByte(0x5A);
        try {
            buf.readerIndex(1).writerIndex(1 + bytes.length);
            scanner.scan(buf);
            assertThat(buf.readerIndex()).as("the scanner leaves the reader index alone").isEqualTo(1);
        } finally {
            buf.release();
        }
    }

    /** Writes down every report of the scanner, with the body prefix it was shown. */
    private static final class Transcript implements PgFrameScanner.Sink {

        final List<String> events = new ArrayList<>();
        private final int wanted;
        private final StringBuilder body = new StringBuilder();

        Transcript(int wanted) {
            this.wanted = wanted;
        }

        @Override
        public int onMessageStart(byte type, int bodyLength) {
            assertThat(bodyLength).isNotNegative();
            events.add("start " + type + " " + bodyLength);
            body.setLength(0);
            return wanted;
        }

        @Override
        public void onBody(ByteBuf buf, int index, int length) {
            assertThat(length).isPositive();
            for (int i = 0; i < length; i++) {
                body.append(buf.getByte(index + i)).append(',');
            }
        }

        @Override
        public void onMessageEnd(byte type) {
            events.add("end " + type + " " + body);
        }

        @Override
        public void onUnframeable(String reason) {
            events.add("unframeable " + reason);
        }
    }
}
