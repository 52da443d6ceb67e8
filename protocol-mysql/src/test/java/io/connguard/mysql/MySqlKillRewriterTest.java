package io.connguard.mysql;

import io.connguard.core.api.ListenerInfo;
import io.connguard.core.testing.LeakGuard;
import org.junit.jupiter.api.extension.ExtendWith;
import org.junit.jupiter.api.Test;

import java.util.Arrays;

import static io.connguard.mysql.Packets.concat;
import static io.connguard.mysql.Packets.packet;
import static io.connguard.mysql.Packets.payload;
import static io.connguard.mysql.Packets.query;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * KILL from any session of the same proxy reaches the real thread behind the connection id the proxy
 * handed out, which is what Connector/J's {@code Statement.cancel()} sends from a second connection.
 */
@ExtendWith(LeakGuard.class)
class MySqlKillRewriterTest {

    private final MySqlModule module = Conversation.moduleWithGreeting();
    private final ListenerInfo listener = Conversation.listener(ListenerInfo.UpstreamTlsMode.DISABLE);

    /** A session that was greeted with a proxy id and authenticated to thread 0x42 of the server. */
    private long greetedSessionId(Conversation victim) {
        byte[] greeting = victim.toClient();
        long proxyId = MySqlGreeting.decode(io.netty.buffer.Unpooled.wrappedBuffer(greeting), 4, greeting.length - 4).connectionId();
        victim.client(Conversation.handshakeResponse(Conversation.CONNECTOR_J_CAPS, "u", "test", "app"));
        victim.session.onUpstreamConnected();
        victim.server(Packets.fixture("mariadb-select-transaction").get(0).bytes()); // thread id 0x42
        return proxyId;
    }

    @Test
    void killQueryWithAProxyIdIsRewrittenToTheRealThreadIdHoweverItIsCut() {
        Conversation victim = new Conversation(module, listener);
        long proxyId = greetedSessionId(victim);
        for (String statement : new String[] {"KILL QUERY " + proxyId, "kill " + proxyId, " KILL CONNECTION " + proxyId + ";",
                "KILL HARD QUERY " + proxyId, "kill soft\n" + proxyId + " "}) {
            byte[] sent = concat(query("select 1"), query(statement));
            for (int cut = 0; cut < sent.length; cut++) {
                Conversation canceller = new Conversation(module, listener).authenticate(Conversation.CONNECTOR_J_CAPS);
                if (cut > 0) {
                    canceller.client(Arrays.copyOfRange(sent, 0, cut));
                }
                canceller.client(Arrays.copyOfRange(sent, cut, sent.length));
                assertThat(canceller.toUpstream()).as("%s cut at %d", statement, cut)
                        .isEqualTo(concat(query("select 1"), query(statement.replace(String.valueOf(proxyId), "66"))));
                canceller.finish();
            }
        }
        victim.finish();
        assertThat(module.realThreadId(proxyId)).as("the mapping goes with the session").isEqualTo(-1);
    }

    @Test
    void comProcessKillIsRewrittenToo() {
        Conversation victim = new Conversation(module, listener);
        long proxyId = greetedSessionId(victim);
        Conversation canceller = new Conversation(module, listener).authenticate(Conversation.CONNECTOR_J_CAPS);
        canceller.client(packet(0, payload(0x0C, (int) proxyId & 0xFF, (int) (proxyId >>> 8) & 0xFF,
                (int) (proxyId >>> 16) & 0xFF, (int) (proxyId >>> 24) & 0xFF)));
        assertThat(canceller.toUpstream()).isEqualTo(packet(0, payload(0x0C, 0x42, 0, 0, 0)));
        canceller.finish();
        victim.finish();
    }

    @Test
    void idsTheProxyDidNotHandOutAndOtherStatementsPassUnchanged() {
        Conversation victim = new Conversation(module, listener);
        long proxyId = greetedSessionId(victim);
        Conversation canceller = new Conversation(module, listener).authenticate(Conversation.CONNECTOR_J_CAPS);
        for (String statement : new String[] {"KILL QUERY 12", "KILL QUERY ID " + proxyId, "KILL USER bob",
                "select 'KILL QUERY " + proxyId + "'", "KILL QUERY " + proxyId + " extra", "killall " + proxyId,
                "KILL QUERY 99999999999999999999999"}) {
            canceller.client(query(statement));
            assertThat(canceller.toUpstream()).as(statement).isEqualTo(query(statement));
            canceller.server(Packets.ok(1, 2));
        }
        canceller.finish();
        victim.finish();
    }

    /** Found by MySqlFuzzTest: the -1 that stands for "too many digits" was looked up as an id. */
    @Test
    void anIdTooLargeForALongIsNeverLookedUp() {
        MySqlKillRewriter rewriter = new MySqlKillRewriter(id -> {
            throw new AssertionError("looked up " + id);
        });
        byte[] text = "KILL 9333333333333333337".getBytes(java.nio.charset.StandardCharsets.US_ASCII);
        assertThat(rewriter.rewriteQuery(io.netty.buffer.UnpooledByteBufAllocator.DEFAULT,
                io.netty.buffer.Unpooled.wrappedBuffer(text), 0, text.length)).isNull();
    }
}
