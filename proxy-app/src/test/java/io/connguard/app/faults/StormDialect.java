package io.connguard.app.faults;

import java.nio.ByteBuffer;

/**
 * The few bytes of a protocol a storm client needs: what to send first, how to tell from the server's
 * bytes that the connection was admitted (authenticated and ready) or refused, and how to say goodbye.
 */
interface StormDialect {

    /** What happened after some bytes from the server. */
    sealed interface Step permits NeedMore, Send, Ready, Refused {
    }

    /** Nothing decided yet. */
    record NeedMore() implements Step {
    }

    /** The client must answer (a MySQL handshake response or auth switch reply). */
    record Send(byte[] bytes) implements Step {
    }

    /** The session is authenticated and ready for queries. */
    record Ready() implements Step {
    }

    /** The server or the proxy refused the connection with this error. */
    record Refused(String code, String message) implements Step {
    }

    /** One connection's conversation. */
    interface Conversation {
        /** The bytes to send once connected (may be empty when the server speaks first). */
        byte[] onConnected();

        /** Consumes the server's bytes (all of {@code in}; keep what is incomplete) and says what follows. */
        Step onBytes(ByteBuffer in);

        /** Terminate / COM_QUIT. */
        byte[] goodbye();
    }

    Conversation newConversation(String user, String application);
}
