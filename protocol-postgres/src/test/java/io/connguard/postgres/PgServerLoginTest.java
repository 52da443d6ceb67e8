package io.connguard.postgres;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.Unpooled;
import io.netty.buffer.UnpooledByteBufAllocator;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static io.connguard.postgres.PgMessages.concat;
import static io.connguard.postgres.PgMessages.cstring;
import static io.connguard.postgres.PgMessages.int32;
import static io.connguard.postgres.PgMessages.message;
import static org.assertj.core.api.Assertions.assertThat;

/** The server login state machine on bytes: each method, split at every offset, and what it refuses. */
class PgServerLoginTest {

    private static final UnpooledByteBufAllocator ALLOC = new UnpooledByteBufAllocator(false);
    private final List<ByteBuf> sent = new ArrayList<>();
    private PgServerLogin login;

    @AfterEach
    void release() {
        sent.forEach(ByteBuf::release);
        if (login != null) {
            login.release();
        }
    }

    private static Map<String, String> params() {
        Map<String, String> params = new LinkedHashMap<>();
        params.put("user", "app");
        params.put("database", "orders");
        params.put("application_name", "web");
        return params;
    }

    private PgServerLogin.Status feed(byte[] bytes) {
        return login.feed(Unpooled.wrappedBuffer(bytes), sent::add);
    }

    private static byte[] auth(int code, byte[]... rest) {
        byte[][] parts = new byte[rest.length + 1][];
        parts[0] = int32(code);
        System.arraycopy(rest, 0, parts, 1, rest.length);
        return message('R', parts);
    }

    private byte[] sentBytes(int i) {
        return ByteBufUtil.getBytes(sent.get(i));
    }

    @Test
    void theStartupMessageCarriesTheParametersInOrder() {
        login = new PgServerLogin(ALLOC, params(), null);
        ByteBuf startup = login.startupMessage();
        try {
            assertThat(ByteBufUtil.getBytes(startup)).isEqualTo(PgMessages.startup("user", "app", "database", "orders",
                    "application_name", "web"));
        } finally {
            startup.release();
        }
    }

    @Test
    void aTrustLoginSplitAtEveryOffsetCollectsParametersAndKey() {
        byte[] key = PgMessages.key(4, 7);
        byte[] transcript = concat(PgMessages.authenticationOk(), PgMessages.parameterStatus("server_version", "15.20"),
                PgMessages.notice("hello"), PgMessages.parameterStatus("TimeZone", "UTC"),
                PgMessages.backendKeyData(4242, key), PgMessages.readyForQuery('I'));
        for (int split = 0; split <= transcript.length; split++) {
            login = new PgServerLogin(ALLOC, params(), null);
            assertThat(feed(java.util.Arrays.copyOfRange(transcript, 0, split)))
                    .isEqualTo(split == transcript.length ? PgServerLogin.Status.READY : PgServerLogin.Status.RUNNING);
            assertThat(feed(java.util.Arrays.copyOfRange(transcript, split, transcript.length)))
                    .isEqualTo(PgServerLogin.Status.READY);
            assertThat(login.method()).isEqualTo(PgServerLogin.Method.NONE);
            assertThat(login.serverParameters()).containsExactly(Map.entry("server_version", "15.20"),
                    Map.entry("TimeZone", "UTC"));
            assertThat(login.processId()).isEqualTo(4242);
            assertThat(login.secret()).isEqualTo(key);
            assertThat(sent).isEmpty();
            login.release();
        }
        login = null;
    }

    @Test
    void aCleartextRequestPausesUntilThePasswordComes() {
        login = new PgServerLogin(ALLOC, params(), null);
        assertThat(feed(auth(3))).isEqualTo(PgServerLogin.Status.PASSWORD_NEEDED);
        assertThat(login.method()).isEqualTo(PgServerLogin.Method.CLEARTEXT);
        assertThat(sent).isEmpty();
        assertThat(login.password("s3cret".toCharArray(), sent::add)).isEqualTo(PgServerLogin.Status.RUNNING);
        assertThat(sentBytes(0)).isEqualTo(message('p', cstring("s3cret")));
        assertThat(feed(PgMessages.loginOk(1, PgMessages.key(4, 1)))).isEqualTo(PgServerLogin.Status.READY);
    }

    @Test
    void md5AnswersWithTheSaltedDoubleHash() {
        login = new PgServerLogin(ALLOC, params(), "secret".toCharArray());
        assertThat(feed(auth(5, new byte[] {1, 2, 3, 4}))).isEqualTo(PgServerLogin.Status.RUNNING);
        // md5(md5("secret" + "app") hex + salt 01020304), computed outside Java.
        assertThat(sentBytes(0)).isEqualTo(message('p', cstring("md5911f527656472583a006e7727877b33e")));
        assertThat(login.method()).isEqualTo(PgServerLogin.Method.MD5);
    }

    @Test
    void scramSendsTheFirstAndFinalMessagesAndRefusesABadServerSignature() {
        login = new PgServerLogin(ALLOC, params(), "secret".toCharArray());
        assertThat(feed(auth(10, cstring("SCRAM-SHA-256-PLUS"), cstring("SCRAM-SHA-256"), new byte[] {0})))
                .isEqualTo(PgServerLogin.Status.RUNNING);
        ByteBuf initial = sent.get(0);
        assertThat((char) initial.readByte()).isEqualTo('p');
        assertThat(initial.readInt()).isEqualTo(initial.readableBytes() + 4);
        assertThat(initial.readCharSequence(14, StandardCharsets.US_ASCII).toString()).isEqualTo("SCRAM-SHA-256\0");
        int length = initial.readInt();
        String clientFirst = initial.readCharSequence(length, StandardCharsets.UTF_8).toString();
        assertThat(clientFirst).as("no channel binding: gs2 header n").startsWith("n,,n=*,r=");
        String nonce = clientFirst.substring("n,,n=*,r=".length());
        String salt = Base64.getEncoder().encodeToString("0123456789abcdef".getBytes(StandardCharsets.US_ASCII));
        byte[] serverFirst = ("r=" + nonce + "srv,s=" + salt + ",i=4096").getBytes(StandardCharsets.UTF_8);
        assertThat(feed(auth(11, serverFirst))).isEqualTo(PgServerLogin.Status.RUNNING);
        String clientFinal = new String(ByteBufUtil.getBytes(sent.get(1), 5, sent.get(1).readableBytes() - 5),
                StandardCharsets.UTF_8);
        assertThat(clientFinal).startsWith("c=biws,r=" + nonce + "srv,p=");
        assertThat(feed(auth(12, "v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".getBytes(StandardCharsets.UTF_8))))
                .isEqualTo(PgServerLogin.Status.FAILED);
        assertThat(login.failure()).startsWith("SCRAM: ");
    }

    @Test
    void anAuthenticationOkThatSkipsTheScramProofIsRefused() {
        login = new PgServerLogin(ALLOC, params(), "secret".toCharArray());
        feed(auth(10, cstring("SCRAM-SHA-256"), new byte[] {0}));
        assertThat(feed(PgMessages.authenticationOk())).isEqualTo(PgServerLogin.Status.FAILED);
        assertThat(login.failure()).contains("without proving it knows the password");
    }

    @Test
    void theServersErrorIsKeptWholeToReachTheClient() {
        login = new PgServerLogin(ALLOC, params(), "wrong".toCharArray());
        feed(auth(3));
        byte[] error = PgMessages.errorResponse("FATAL", "28P01", "password authentication failed for user \"app\"");
        assertThat(feed(error)).isEqualTo(PgServerLogin.Status.FAILED);
        assertThat(login.error().code()).isEqualTo("28P01");
        assertThat(login.error().severity()).isEqualTo("FATAL");
        assertThat(login.error().bytes()).isEqualTo(error);
        assertThat(login.failure()).doesNotContain("wrong");
    }

    @Test
    void unsupportedMethodsAndGarbageFailWithAReason() {
        login = new PgServerLogin(ALLOC, params(), null);
        assertThat(feed(auth(7))).isEqualTo(PgServerLogin.Status.FAILED);
        assertThat(login.failure()).contains("code 7");
        login.release();
        login = new PgServerLogin(ALLOC, params(), null);
        assertThat(feed(auth(10, cstring("OAUTHBEARER"), new byte[] {0}))).isEqualTo(PgServerLogin.Status.FAILED);
        login.release();
        login = new PgServerLogin(ALLOC, params(), null);
        assertThat(feed(concat(new byte[] {'R'}, int32(Integer.MAX_VALUE)))).isEqualTo(PgServerLogin.Status.FAILED);
        login.release();
        login = new PgServerLogin(ALLOC, params(), null);
        assertThat(feed(message('D', int32(0)))).isEqualTo(PgServerLogin.Status.FAILED);
        assertThat(login.failure()).isEqualTo("unexpected message 'D' during login");
    }
}
