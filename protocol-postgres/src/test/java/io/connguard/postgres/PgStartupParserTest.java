package io.connguard.postgres;

import io.connguard.core.testing.LeakGuard;
import org.junit.jupiter.api.extension.ExtendWith;
import io.connguard.core.api.ClientIdentity;
import io.netty.buffer.ByteBuf;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;

import static io.connguard.postgres.PgMessages.PROTOCOL_3_0;
import static io.connguard.postgres.PgMessages.PROTOCOL_3_2;
import static io.connguard.postgres.PgMessages.cancelRequest;
import static io.connguard.postgres.PgMessages.concat;
import static io.connguard.postgres.PgMessages.cstring;
import static io.connguard.postgres.PgMessages.gssEncRequest;
import static io.connguard.postgres.PgMessages.int32;
import static io.connguard.postgres.PgMessages.key;
import static io.connguard.postgres.PgMessages.sslRequest;
import static io.connguard.postgres.PgMessages.startup;
import static org.assertj.core.api.Assertions.assertThat;

@ExtendWith(LeakGuard.class)
class PgStartupParserTest {

    private final TrackingAllocator alloc = new TrackingAllocator();

    @AfterEach
    void everyBufferIsReleased() {
        alloc.assertAllReleased();
    }

    /** Feeds {@code bytes} cut at {@code cuts} and collects every packet the parser yields. */
    private List<PgInitialPacket> parse(byte[] bytes, int... cuts) {
        PgStartupParser parser = new PgStartupParser(alloc);
        List<PgInitialPacket> packets = new ArrayList<>();
        int from = 0;
        int[] ends = Arrays.copyOf(cuts, cuts.length + 1);
        ends[cuts.length] = bytes.length;
        for (int end : ends) {
            assertThat(parser.feed(alloc.wrap(Arrays.copyOfRange(bytes, from, end)))).isTrue();
            from = end;
            for (PgInitialPacket packet = parser.next(); packet != null; packet = parser.next()) {
                packets.add(packet);
                if (packet instanceof PgInvalidPacket || packet == PgNegotiationRequest.DIRECT_TLS) {
                    parser.release();
                    return packets;
                }
            }
        }
        parser.release();
        return packets;
    }

    private PgInitialPacket parseOne(byte[] bytes) {
        List<PgInitialPacket> packets = parse(bytes);
        assertThat(packets).hasSize(1);
        return packets.get(0);
    }

    @Test
    void readsUserDatabaseApplicationAndReplication() {
        PgStartupMessage message = (PgStartupMessage) parseOne(startup("user", "alice", "database", "orders",
                "application_name", "billing", "client_encoding", "UTF8", "replication", "database"));
        assertThat(message.identity()).isEqualTo(new ClientIdentity("alice", "orders", "billing", true));
        assertThat(message.major()).isEqualTo(3);
        assertThat(message.minor()).isZero();
        assertThat(message.parameters()).containsEntry("client_encoding", "UTF8");
    }

    @Test
    void theDatabaseDefaultsToTheUserAsOnTheServer() {
        assertThat(((PgStartupMessage) parseOne(startup("user", "alice"))).identity())
                .isEqualTo(new ClientIdentity("alice", "alice", "", false));
        assertThat(((PgStartupMessage) parseOne(startup("user", "bob", "database", ""))).database()).isEqualTo("bob");
    }

    @Test
    void protocol32IsReadLikeProtocol30() {
        PgStartupMessage message = (PgStartupMessage) parseOne(startup(PROTOCOL_3_2, "user", "u",
                "_pq_.some_extension", "on"));
        assertThat(message.minor()).isEqualTo(2);
        assertThat(message.user()).isEqualTo("u");
    }

    @ParameterizedTest
    @CsvSource({"true,true", "on,true", "ON,true", "yes,true", "1,true", "t,true", "TR,true", "database,true",
            "false,false", "off,false", "of,false", "0,false", "no,false", "f,false"})
    void replicationFollowsTheServersBooleanRules(String value, boolean replication) {
        PgStartupMessage message = (PgStartupMessage) parseOne(startup("user", "u", "replication", value));
        assertThat(message.replication()).isEqualTo(replication);
    }

    @ParameterizedTest
    @ValueSource(strings = {"", "o", "DATABASE", "truex", "2", "10", "onx", "bogus"})
    void replicationValuesTheServerRefusesGetItsFatalError(String value) {
        PgInvalidPacket invalid = (PgInvalidPacket) parseOne(startup("user", "u", "replication", value));
        assertThat(invalid.reply().sqlState()).isEqualTo("22023");
        assertThat(invalid.reply().message()).isEqualTo("invalid value for parameter \"replication\": \"" + value + "\"");
        assertThat(invalid.reply().hint()).isEqualTo("Valid values are: \"false\", 0, \"true\", 1, \"database\".");
    }

    @Test
    void aMissingUserIsRefusedUnlessTheServerMustNegotiateFirst() {
        for (byte[] packet : List.of(startup("database", "d"), startup("user", ""), startup())) {
            PgInvalidPacket invalid = (PgInvalidPacket) parseOne(packet);
            assertThat(invalid.reply()).isEqualTo(PgStartupReply.fatal("28000",
                    "no PostgreSQL user name specified in startup packet"));
        }
        // The server answers these with NegotiateProtocolVersion before its FATAL: they go to the server.
        assertThat(parseOne(startup(PROTOCOL_3_2, "database", "d"))).isInstanceOf(PgStartupMessage.class);
        assertThat(parseOne(startup("_pq_.x", "1"))).isInstanceOf(PgStartupMessage.class);
    }

    @ParameterizedTest
    @CsvSource({"2, 0, true", "1, 0, true", "0, 1, true", "2, 65535, true", "0, 0, false", "4, 0, false",
            "65535, 0, false"})
    void otherProtocolVersionsGetTheServersErrorInTheFormTheyAskedFor(int major, int minor, boolean version2) {
        PgInvalidPacket invalid = (PgInvalidPacket) parseOne(startup(major << 16 | minor, "user", "u"));
        assertThat(invalid.reply()).isEqualTo(new PgStartupReply("0A000",
                "unsupported frontend protocol " + major + "." + minor + ": server supports 3.0 to 3.2", null, null,
                version2));
    }

    @Test
    void anEncryptionRequestWithABodyIsStillOneAndASecondIsAStartupOfProtocol1234() {
        List<PgInitialPacket> packets = parse(concat(int32(12), int32(80877103), int32(0), sslRequest()));
        assertThat(packets).hasSize(2);
        assertThat(packets.get(0)).isEqualTo(PgNegotiationRequest.SSL_REQUEST);
        assertThat(((PgInvalidPacket) packets.get(1)).reply().message())
                .startsWith("unsupported frontend protocol 1234.5679");
        packets = parse(concat(gssEncRequest(), gssEncRequest()));
        assertThat(((PgInvalidPacket) packets.get(1)).reply().message())
                .startsWith("unsupported frontend protocol 1234.5680");
    }

    @Test
    void aRepeatedParameterKeepsItsLastValue() {
        assertThat(((PgStartupMessage) parseOne(startup("user", "first", "user", "second"))).user()).isEqualTo("second");
    }

    @Test
    void negotiationRequestsAndTheStartupThatFollows() {
        List<PgInitialPacket> packets = parse(concat(gssEncRequest(), sslRequest(), startup("user", "u")));
        assertThat(packets).hasSize(3);
        assertThat(packets.get(0)).isEqualTo(PgNegotiationRequest.GSSENC_REQUEST);
        assertThat(packets.get(1)).isEqualTo(PgNegotiationRequest.SSL_REQUEST);
        assertThat(packets.get(2)).isInstanceOf(PgStartupMessage.class);
    }

    @Test
    void aTlsClientHelloIsRecognisedFromItsFirstByte() {
        assertThat(parseOne(new byte[] {0x16, 0x03, 0x01, 0x02, 0x00, 0x01})).isEqualTo(PgNegotiationRequest.DIRECT_TLS);
        assertThat(parse(new byte[] {0x16})).containsExactly(PgNegotiationRequest.DIRECT_TLS);
    }

    @ParameterizedTest
    @CsvSource({"4", "32", "256"})
    void cancelRequestsCarryKeysOfEveryAllowedLength(int keyLength) {
        byte[] key = key(keyLength, 7);
        PgCancelRequest cancel = (PgCancelRequest) parseOne(cancelRequest(4242, key));
        assertThat(cancel.key().processId()).isEqualTo(4242);
        assertThat(cancel.key()).isEqualTo(PgBackendKey.read(concat(int32(4242), key), 4 + keyLength));
        assertThat(cancel.key()).isNotEqualTo(PgBackendKey.read(concat(int32(4243), key), 4 + keyLength));
    }

    @ParameterizedTest
    @CsvSource({"0", "3", "257"})
    void cancelKeysOutsideFourTo256BytesAreRefusedSilently(int keyLength) {
        assertThat(parseOne(cancelRequest(1, new byte[keyLength])))
                .isEqualTo(PgInvalidPacket.silent("invalid length of startup packet"));
    }

    /** Refused by the server without a reply: a length it will not read (Terminate sent first is one). */
    static List<byte[]> badLengths() {
        return List.of(
                new byte[] {'X', 0, 0, 0, 4},                               // Terminate before any start-up packet
                int32(7),                                                   // shorter than a header
                int32(4),
                int32(0),
                int32(-1),
                int32(10_005),                                              // over the server's limit
                concat(int32(8), int32(80877102)));                        // a CancelRequest without a key
    }

    @ParameterizedTest
    @MethodSource("badLengths")
    void badLengthsAreRefusedWithoutAReplyWhereverTheyAreCut(byte[] packet) {
        for (int cut = 0; cut < packet.length; cut++) {
            List<PgInitialPacket> packets = cut == 0 ? parse(packet) : parse(packet, cut);
            assertThat(packets).as("cut at %d", cut)
                    .containsExactly(PgInvalidPacket.silent("invalid length of startup packet"));
        }
    }

    static List<byte[]> malformed() {
        return List.of(
                int32(7),                                                   // shorter than a header
                int32(-1),
                int32(10_005),                                              // over the server's limit
                startup(2 << 16, "user", "u"),                              // protocol 2
                startup(4 << 16, "user", "u"),
                concat(int32(8), int32(1234 << 16 | 5681)),                 // an unknown request code
                raw(int32(PROTOCOL_3_0), cstring("user")),                 // a name without a value
                raw(int32(PROTOCOL_3_0), cstring("user"), cstring("u")),   // no terminator
                raw(int32(PROTOCOL_3_0), cstring("user"), cstring("u"), new byte[] {0, 0}), // terminator early
                raw(int32(PROTOCOL_3_0), new byte[] {'u', 's', 'e', 'r'})); // a name without its NUL
    }

    private static byte[] raw(byte[]... body) {
        byte[] content = concat(body);
        return concat(int32(content.length + 4), content);
    }

    @ParameterizedTest
    @MethodSource("malformed")
    void malformedPacketsAreInvalidWhereverTheyAreCut(byte[] packet) {
        assertThat(parse(packet)).singleElement().isInstanceOf(PgInvalidPacket.class);
        for (int cut = 1; cut < packet.length; cut++) {
            assertThat(parse(packet, cut)).as("cut at %d", cut).singleElement().isInstanceOf(PgInvalidPacket.class);
        }
    }

    @Test
    void theLargestStartupPacketTheServerAcceptsIsAccepted() {
        byte[] header = startup("user", "u", "options", "");
        int padding = PgStartupParser.MAX_PACKET_LENGTH - header.length;
        PgStartupMessage message = (PgStartupMessage) parseOne(startup("user", "u", "options", "x".repeat(padding)));
        assertThat(message.parameters().get("options")).hasSize(padding);
    }

    static List<PgTrace> traces() {
        return PgTrace.ALL.stream().map(PgTrace::load).toList();
    }

    @ParameterizedTest
    @MethodSource("traces")
    void recordedStartupPacketsParseWhereverTheyAreCut(PgTrace trace) {
        byte[] client = trace.stream(true);
        int length = java.nio.ByteBuffer.wrap(client).getInt();
        byte[] packet = Arrays.copyOf(client, length);
        PgStartupMessage whole = (PgStartupMessage) parseOne(packet);
        assertThat(whole.user()).startsWith(trace.name().equals("scram") || trace.name().equals("wrong-password")
                ? "cg_scram" : trace.name().equals("md5") ? "cg_md5" : trace.name().equals("replication") ? "cg_repl" : "postgres");
        assertThat(whole.database()).isEqualTo("test");
        for (int cut = 1; cut < packet.length; cut++) {
            assertThat(parse(packet, cut)).as("cut at %d", cut).containsExactly(whole);
        }
    }

    @Test
    void lastPacketBytesAreTheExactPacketAndTheRemainderFollows() {
        byte[] startup = startup("user", "u");
        byte[] early = {'Q', 0, 0, 0, 5, 0};
        PgStartupParser parser = new PgStartupParser(alloc);
        parser.feed(alloc.wrap(concat(sslRequest(), startup, early)));
        assertThat(parser.next()).isEqualTo(PgNegotiationRequest.SSL_REQUEST);
        assertThat(parser.next()).isInstanceOf(PgStartupMessage.class);
        ByteBuf packet = parser.lastPacketBytes();
        assertThat(bytes(packet)).isEqualTo(startup);
        ByteBuf rest = parser.takeRemainder();
        assertThat(bytes(rest)).isEqualTo(early);
        assertThat(parser.takeRemainder()).isNull();
        packet.release();
        rest.release();
    }

    @Test
    void feedRefusesMoreThanAClientMaySendBeforeTheServerAnswers() {
        PgStartupParser parser = new PgStartupParser(alloc);
        assertThat(parser.feed(alloc.wrap(new byte[PgStartupParser.MAX_PACKET_LENGTH]))).isTrue();
        assertThat(parser.feed(alloc.wrap(new byte[PgStartupParser.MAX_EARLY_BYTES]))).isTrue();
        assertThat(parser.feed(alloc.wrap(new byte[1]))).isFalse();
        parser.release();
    }

    @Test
    void afterTheStartupMessageOnlyTheEarlyBytesBoundApplies() {
        PgStartupParser parser = new PgStartupParser(alloc);
        assertThat(parser.feed(alloc.wrap(startup("user", "u")))).isTrue();
        assertThat(parser.next()).isInstanceOf(PgStartupMessage.class);
        assertThat(parser.feed(alloc.wrap(new byte[PgStartupParser.MAX_EARLY_BYTES]))).isTrue();
        assertThat(parser.feed(alloc.wrap(new byte[1]))).isFalse();
        parser.release();
    }

    @Test
    void randomGarbageYieldsPacketsOrAnInvalidPacketButNeverThrows() {
        Random random = new Random(7);
        for (int round = 0; round < 3000; round++) {
            byte[] garbage = new byte[random.nextInt(64)];
            random.nextBytes(garbage);
            if (round % 3 == 0 && garbage.length >= 8) {
                // Plausible headers reach the decoders more often than pure noise would.
                System.arraycopy(int32(garbage.length), 0, garbage, 0, 4);
                System.arraycopy(int32(round % 2 == 0 ? PROTOCOL_3_0 : 80877102), 0, garbage, 4, 4);
            }
            parse(garbage, garbage.length / 2);
        }
    }

    private static byte[] bytes(ByteBuf buf) {
        byte[] out = new byte[buf.readableBytes()];
        buf.getBytes(buf.readerIndex(), out);
        return out;
    }
}
