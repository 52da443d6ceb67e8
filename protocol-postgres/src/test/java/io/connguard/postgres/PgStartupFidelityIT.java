package io.connguard.postgres;

import io.connguard.core.testing.LogCapture;
import io.connguard.core.testing.TestProxy;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.net.Socket;
import java.net.SocketException;
import java.net.SocketTimeoutException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static io.connguard.postgres.PgMessages.PROTOCOL_3_0;
import static io.connguard.postgres.PgMessages.cancelRequest;
import static io.connguard.postgres.PgMessages.concat;
import static io.connguard.postgres.PgMessages.cstring;
import static io.connguard.postgres.PgMessages.int32;
import static io.connguard.postgres.PgMessages.startup;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * The same bytes sent before a valid StartupMessage straight to the real PostgreSQL server and through
 * connguard get the same answer: nothing at all (a bad length, an incomplete packet, Terminate sent first),
 * or the server's FATAL error with the same severity, SQLSTATE, message, detail and hint (connguard leaves out
 * the server's source-file fields, and names the protocol versions it relays itself).
 *
 * <p>Encryption requests are not compared here: the shared test server accepts TLS and GSSAPI, which a
 * {@code clientTls: disable} listener refuses by design; PgSessionStartupTest covers them against the server's
 * rules byte by byte.
 */
class PgStartupFidelityIT {

    private static TestProxy proxy;

    @BeforeAll
    static void start() {
        proxy = PgIt.proxy();
    }

    @AfterAll
    static void stop() {
        proxy.close();
    }

    static List<Arguments> cases() {
        String user = PgIt.db().user();
        return List.of(
                Arguments.of("Terminate before the start-up packet", new byte[] {'X', 0, 0, 0, 4}, false),
                Arguments.of("length 4", int32(4), false),
                Arguments.of("length 7", concat(int32(7), new byte[3]), false),
                Arguments.of("length over 10000", concat(int32(10_005), new byte[20]), false),
                Arguments.of("negative length", concat(int32(-8), new byte[20]), false),
                Arguments.of("CancelRequest without a key", concat(int32(8), int32(80877102)), false),
                Arguments.of("CancelRequest of an unknown backend", cancelRequest(1, new byte[4]), false),
                Arguments.of("TLS hello", new byte[] {0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5}, false),
                Arguments.of("a partial length word, then EOF", new byte[] {0, 0}, true),
                Arguments.of("a partial packet, then EOF", concat(int32(100), int32(PROTOCOL_3_0)), true),
                Arguments.of("protocol 2.0", startup(2 << 16, "user", user), false),
                Arguments.of("protocol 1.0", startup(1 << 16, "user", user), false),
                Arguments.of("protocol 0.1", startup(1, "user", user), false),
                Arguments.of("protocol 0.0", startup(0, "user", user), false),
                Arguments.of("protocol 4.0", startup(4 << 16, "user", user), false),
                Arguments.of("no user", startup("database", "test"), false),
                Arguments.of("an empty user", startup("user", ""), false),
                Arguments.of("no parameters at all", startup(), false),
                Arguments.of("no terminator", concat(int32(8), int32(PROTOCOL_3_0)), false),
                Arguments.of("a name without a value", concat(int32(13), int32(PROTOCOL_3_0), cstring("user")), false),
                Arguments.of("a value without its NUL", concat(int32(17), int32(PROTOCOL_3_0), cstring("user"),
                        "abcd".getBytes(StandardCharsets.US_ASCII)), false),
                Arguments.of("replication=bogus", startup("user", user, "replication", "bogus"), false),
                Arguments.of("replication empty", startup("user", user, "replication", ""), false),
                Arguments.of("replication=DATABASE", startup("user", user, "replication", "DATABASE"), false),
                Arguments.of("protocol 3.1 without a user", startup(3 << 16 | 1, "database", "test"), false),
                Arguments.of("a _pq_ option without a user", startup("_pq_.x", "1"), false));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("cases")
    void connguardAnswersAsTheServerDoes(String what, byte[] bytes, boolean halfClose) throws IOException {
        byte[] server = exchange(PgIt.db().host(), PgIt.db().port(), bytes, halfClose);
        byte[] proxied = exchange("127.0.0.1", proxy.port("pg"), bytes, halfClose);
        assertThat(reply(proxied)).as("%s: connguard's reply", what).isEqualTo(reply(server));
    }

    @Test
    void terminateFirstIsLoggedOnceAtInfoAsTheServerLogsIt() throws IOException {
        try (LogCapture log = new LogCapture("io.connguard")) {
            assertThat(exchange("127.0.0.1", proxy.port("pg"), new byte[] {'X', 0, 0, 0, 4}, false)).isEmpty();
            long deadline = System.nanoTime() + 5_000_000_000L;
            while (log.lines("INFO", "invalid length of startup packet").isEmpty() && System.nanoTime() < deadline) {
                Thread.onSpinWait();
            }
            assertThat(log.lines()).filteredOn(line -> line.message().contains("startup packet"))
                    .singleElement()
                    .satisfies(line -> assertThat(line.level()).isEqualTo("INFO"))
                    .satisfies(line -> assertThat(line.field("reason")).isEqualTo("protocol_error"));
        }
    }

    /** Sends {@code bytes} in one write, then reads until the peer closes (or resets) the connection. */
    private static byte[] exchange(String host, int port, byte[] bytes, boolean halfClose) throws IOException {
        ByteArrayOutputStream received = new ByteArrayOutputStream();
        try (Socket socket = new Socket(host, port)) {
            socket.setSoTimeout(10_000);
            socket.getOutputStream().write(bytes);
            socket.getOutputStream().flush();
            if (halfClose) {
                socket.shutdownOutput();
            }
            InputStream in = socket.getInputStream();
            byte[] chunk = new byte[4096];
            for (int n; (n = in.read(chunk)) >= 0; ) {
                received.write(chunk, 0, n);
            }
        } catch (SocketTimeoutException e) {
            throw new AssertionError(host + ":" + port + " kept the connection open; received " + received.size()
                    + " bytes", e);
        } catch (SocketException e) {
            // A reset after the close: what was received before it is the answer.
        }
        return received.toByteArray();
    }

    /**
     * The parts of a reply a client acts on: each ErrorResponse's S, V, C, M, D and H fields (F, L and R name
     * the server's source), or a protocol 2 error's text; the highest protocol version named is connguard's own.
     */
    private static List<Object> reply(byte[] bytes) {
        String v2 = new String(bytes, StandardCharsets.UTF_8);
        if (v2.startsWith("EFATAL:  ")) {
            return List.of("v2", normalize(v2));
        }
        List<Object> messages = new java.util.ArrayList<>();
        ByteBuffer in = ByteBuffer.wrap(bytes);
        while (in.remaining() >= 5) {
            char type = (char) in.get();
            byte[] body = new byte[in.getInt() - 4];
            in.get(body);
            if (type != 'E') {
                messages.add(type + java.util.Arrays.toString(body));
                continue;
            }
            Map<Character, String> fields = new LinkedHashMap<>();
            int at = 0;
            while (body[at] != 0) {
                char code = (char) body[at];
                int end = at + 1;
                while (body[end] != 0) {
                    end++;
                }
                String value = new String(body, at + 1, end - at - 1, StandardCharsets.UTF_8);
                if ("SVCMDH".indexOf(code) >= 0) {
                    fields.put(code, normalize(value));
                }
                at = end + 1;
            }
            messages.add(fields);
        }
        assertThat(in.remaining()).as("whole messages only").isZero();
        return messages;
    }

    private static String normalize(String text) {
        return text.replaceAll("server supports 3\\.0 to 3\\.\\d+", "server supports 3.0 to 3.x");
    }
}
