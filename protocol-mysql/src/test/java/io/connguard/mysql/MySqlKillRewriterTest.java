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
 * KILL from any session of the same listener reaches the real thread behind the connection id the proxy
 * handed out, which is what Connector/J's {@code Statement.cancel()} sends from a second connection, wherever
 * the KILL stands in a multi-statement; a minted id never reaches the server as it is, and an id handed out
 * by another listener is never rewritten into this listener's threads.
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
        assertThat(module.threadIds(listener).resolve(proxyId)).as("the mapping goes with the session; the minted id "
                + "then names no thread").isEqualTo(MySqlThreadIds.NO_THREAD);
    }

    @Test
    void killIsRewrittenWhereverItStandsInAMultiStatementHoweverItIsCut() {
        Conversation victim = new Conversation(module, listener);
        long id = greetedSessionId(victim);
        String[][] cases = {
                {"KILL QUERY " + id + "; SELECT 1", "KILL QUERY 66; SELECT 1"},
                {"SELECT 1;kill " + id, "SELECT 1;kill 66"},
                {"/* pool */ KILL CONNECTION " + id + ";\nKILL QUERY " + id + " ; DO 1", "/* pool */ KILL CONNECTION 66;\nKILL QUERY 66 ; DO 1"},
                {"SELECT 'x; KILL " + id + "', \"KILL " + id + "\"; KILL " + id, "SELECT 'x; KILL " + id + "', \"KILL " + id + "\"; KILL 66"},
                {"SELECT 1 -- ; KILL " + id + "\n; KILL " + id, "SELECT 1 -- ; KILL " + id + "\n; KILL 66"},
                {"SELECT 1 # ; KILL " + id + "\n; KILL " + id, "SELECT 1 # ; KILL " + id + "\n; KILL 66"},
                {"SELECT 'it''s'; KILL QUERY " + id, "SELECT 'it''s'; KILL QUERY 66"},
                {"SELECT 'a\\'; KILL " + id + "'; KILL " + id, "SELECT 'a\\'; KILL " + id + "'; KILL 66"},
        };
        for (String[] c : cases) {
            byte[] sent = query(c[0]);
            byte[] expected = query(c[1]);
            for (int cut = 0; cut < sent.length; cut++) {
                Conversation canceller = new Conversation(module, listener).authenticate(Conversation.CONNECTOR_J_CAPS);
                if (cut > 0) {
                    canceller.client(Arrays.copyOfRange(sent, 0, cut));
                }
                canceller.client(Arrays.copyOfRange(sent, cut, sent.length));
                assertThat(new String(canceller.toUpstream(), java.nio.charset.StandardCharsets.ISO_8859_1))
                        .as("%s cut at %d", c[0], cut).isEqualTo(new String(expected, java.nio.charset.StandardCharsets.ISO_8859_1));
                canceller.finish();
            }
        }
        victim.finish();
    }

    @Test
    void aMintedIdNoSessionOfThisListenerHoldsNeverReachesTheServerAsItIs() {
        Conversation victim = new Conversation(module, listener);
        long id = greetedSessionId(victim);
        // the same module, another listener with its own session on real thread 0x42
        ListenerInfo other = new ListenerInfo("other", listener.upstream(), ListenerInfo.UpstreamTlsMode.DISABLE,
                ListenerInfo.ClientTlsMode.DISABLE);
        module.remember(other, Conversation.serverGreeting(Conversation.REAL_THREAD_ID));
        Conversation elsewhere = new Conversation(module, other).authenticate(Conversation.CONNECTOR_J_CAPS);
        elsewhere.client(query("KILL QUERY " + id + "; SELECT 1"));
        assertThat(elsewhere.toUpstream()).as("listener B's id sent through listener A")
                .isEqualTo(query("KILL QUERY 0; SELECT 1"));
        elsewhere.server(Packets.err(1, 1094, "Unknown thread id: 0"));
        long unknownMinted = MySqlModule.FIRST_CONNECTION_ID + 999_999;
        elsewhere.client(packet(0, payload(0x0C, (int) unknownMinted & 0xFF, (int) (unknownMinted >>> 8) & 0xFF,
                (int) (unknownMinted >>> 16) & 0xFF, (int) (unknownMinted >>> 24) & 0xFF)));
        assertThat(elsewhere.toUpstream()).isEqualTo(packet(0, payload(0x0C, 0, 0, 0, 0)));
        elsewhere.finish();
        victim.finish();
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
                "select 'KILL QUERY " + proxyId + "'", "killall " + proxyId,
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
