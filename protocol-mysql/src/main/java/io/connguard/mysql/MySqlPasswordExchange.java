package io.connguard.mysql;

import io.connguard.core.api.SessionContext;
import io.netty.buffer.ByteBuf;

import java.nio.charset.StandardCharsets;
import java.security.KeyPair;
import java.util.Arrays;
import java.util.concurrent.CompletableFuture;

/**
 * The password step of authentication when the two legs differ in security. A client on a TLS leg sends
 * its password as it is when the server asks for it (caching_sha2_password full authentication,
 * sha256_password, mysql_clear_password), and a plaintext client asks for an RSA key instead; the server
 * decides by its own leg. So for caching_sha2_password connguard does the RSA exchange toward a plaintext
 * server itself, and offers its own key to a plaintext client when the server leg is TLS; any other
 * cleartext password is never forwarded to a plaintext server leg. Every other packet is the handshake's
 * to relay. A password held here is wiped once used.
 *
 * @see <a href="https://dev.mysql.com/doc/dev/mysql-server/latest/page_caching_sha2_authentication_exchanges.html">caching_sha2_password exchanges</a>
 */
final class MySqlPasswordExchange {

    /** What the handshake does for the exchange: the two legs and their sequence ids. */
    interface Legs {
        void toServer(ByteBuf packet);

        void toClient(ByteBuf packet);

        /** Server-leg sequence id minus client-leg sequence id. */
        int delta();

        void shift(int by);

        /** The sequence id the client expects next from connguard. */
        void clientExpects(int sequenceId);

        /** Still authenticating (an asynchronous step may come back after the session ended). */
        boolean authenticating();

        /** Go on relaying the client's packets (after an asynchronous step). */
        void relayClient();

        /** Ends the handshake with this ERR to the client. */
        void refuse(ByteBuf err);
    }

    /** caching_sha2_password's AuthMoreData status: the server needs the password itself. */
    private static final int PERFORM_FULL_AUTHENTICATION = 0x04;
    private static final int AUTH_MORE_DATA = 0x01;
    private static final int REQUEST_PUBLIC_KEY = 0x02;

    private enum Step { NONE, AWAIT_SERVER_KEY, AWAIT_CLIENT_BLOB }

    private final MySqlModule module;
    private final SessionContext context;
    private final Legs legs;
    /** The server's last packet asks for the password in clear (for a client on a secure leg). */
    private boolean cleartextAsked;
    /** ... and it was caching_sha2_password's "perform full authentication". */
    private boolean fullAuthAsked;
    private byte[] scramble;
    private Step step = Step.NONE;
    private byte[] password;

    MySqlPasswordExchange(MySqlModule module, SessionContext context, Legs legs) {
        this.module = module;
        this.context = context;
        this.legs = legs;
    }

    /** The scramble of the server's greeting, which the client answers unless an AuthSwitchRequest brings another. */
    void scramble(byte[] fromGreeting) {
        scramble = fromGreeting;
    }

    /** A server packet before it is translated: true when it was the exchange's own (not for the client). */
    boolean takeServerPacket(ByteBuf packet) {
        if (step != Step.AWAIT_SERVER_KEY || packet.readableBytes() <= MySqlWire.HEADER_SIZE
                || packet.getUnsignedByte(packet.readerIndex() + MySqlWire.HEADER_SIZE) != AUTH_MORE_DATA) {
            return false;
        }
        sendEncryptedPassword(packet);
        return true;
    }

    /** A server packet the handshake relays, with its first payload byte: what it asks of the client. */
    void observeServerPacket(ByteBuf packet, int first) {
        cleartextAsked = asksForCleartext(packet, first);
        fullAuthAsked = first == AUTH_MORE_DATA && cleartextAsked;
        if (first == 0xFE) {
            scramble = switchScramble(packet);
        }
    }

    /** A client packet (its sequence id untranslated): true when the exchange took it. */
    boolean takeClientPacket(ByteBuf packet, boolean clientTls, boolean serverTls) {
        int sequenceId = packet.getUnsignedByte(packet.readerIndex() + 3);
        if (step == Step.AWAIT_CLIENT_BLOB) {
            sendDecryptedPassword(packet, sequenceId);
            return true;
        }
        if (fullAuthAsked && clientTls && !serverTls) {
            askServerKey(packet, sequenceId);
            return true;
        }
        if (fullAuthAsked && !clientTls && serverTls && packet.readableBytes() == MySqlWire.HEADER_SIZE + 1
                && packet.getUnsignedByte(packet.readerIndex() + MySqlWire.HEADER_SIZE) == REQUEST_PUBLIC_KEY) {
            packet.release();
            offerOwnKey(sequenceId);
            return true;
        }
        if (cleartextAsked && !fullAuthAsked && clientTls && !serverTls) {
            packet.release();
            refuseCleartext((sequenceId + 1) & 0xFF);
            return true;
        }
        fullAuthAsked = false;
        return false;
    }

    /** Whether the exchange waits for an answer of its own (the client's packets then wait too). */
    boolean waitingForOwnKey() {
        return step == Step.AWAIT_CLIENT_BLOB && !module.ownRsaKey().isDone();
    }

    void close() {
        wipe();
    }

    /**
     * Whether a server authentication packet makes a client on a secure leg send its password as it is:
     * AuthMoreData "perform full authentication" (caching_sha2_password), or a switch to sha256_password or
     * mysql_clear_password.
     */
    static boolean asksForCleartext(ByteBuf packet, int first) {
        int payload = packet.readerIndex() + MySqlWire.HEADER_SIZE;
        int end = packet.writerIndex();
        if (first == AUTH_MORE_DATA) {
            return end - payload == 2 && packet.getUnsignedByte(payload + 1) == PERFORM_FULL_AUTHENTICATION;
        }
        if (first == 0xFE && end - payload > 1) {
            int nul = packet.indexOf(payload + 1, end, (byte) 0);
            String plugin = packet.toString(payload + 1, (nul < 0 ? end : nul) - payload - 1, StandardCharsets.US_ASCII);
            return plugin.equals("sha256_password") || plugin.equals("mysql_clear_password");
        }
        return false;
    }

    /** The plugin data of an AuthSwitchRequest (the new scramble), without its trailing NUL. */
    private byte[] switchScramble(ByteBuf packet) {
        int end = packet.writerIndex();
        int nul = packet.indexOf(packet.readerIndex() + MySqlWire.HEADER_SIZE + 1, end, (byte) 0);
        if (nul < 0) {
            return scramble;
        }
        int dataEnd = end > nul + 1 && packet.getByte(end - 1) == 0 ? end - 1 : end;
        byte[] data = new byte[dataEnd - nul - 1];
        packet.getBytes(nul + 1, data);
        return data.length == 0 ? scramble : data;
    }

    /** TLS client, plaintext server: keep the password the client sent and ask the server for its RSA key. */
    private void askServerKey(ByteBuf packet, int sequenceId) {
        password = new byte[packet.readableBytes() - MySqlWire.HEADER_SIZE];
        packet.getBytes(packet.readerIndex() + MySqlWire.HEADER_SIZE, password);
        packet.setZero(0, packet.capacity());
        packet.release();
        fullAuthAsked = false;
        step = Step.AWAIT_SERVER_KEY;
        legs.toServer(packet(sequenceId + legs.delta(), new byte[] {REQUEST_PUBLIC_KEY}));
    }

    /** The server's key arrived: the password goes to it encrypted, two packets later than the client counts. */
    private void sendEncryptedPassword(ByteBuf keyPacket) {
        int sequenceId = keyPacket.getUnsignedByte(keyPacket.readerIndex() + 3);
        byte[] pem = new byte[keyPacket.readableBytes() - MySqlWire.HEADER_SIZE - 1];
        keyPacket.getBytes(keyPacket.readerIndex() + MySqlWire.HEADER_SIZE + 1, pem);
        keyPacket.release();
        byte[] blob;
        try {
            blob = MySqlRsa.encrypt(password, scramble, MySqlRsa.parsePem(pem));
        } finally {
            wipe();
        }
        step = Step.NONE;
        legs.toServer(packet(sequenceId + 1, blob));
        legs.shift(2); // the server's answer comes two packets later than the client expects it
    }

    /** Plaintext client, TLS server: the client asked for the key; it gets connguard's own. */
    private void offerOwnKey(int requestSequence) {
        fullAuthAsked = false;
        step = Step.AWAIT_CLIENT_BLOB;
        CompletableFuture<KeyPair> key = module.ownRsaKey();
        if (key.isDone()) {
            sendOwnKey(key.join(), requestSequence);
        } else {
            key.whenComplete((pair, failure) -> context.eventLoop().execute(() -> {
                if (legs.authenticating() && pair != null) {
                    sendOwnKey(pair, requestSequence);
                    legs.relayClient();
                }
            }));
        }
    }

    private void sendOwnKey(KeyPair pair, int requestSequence) {
        byte[] pem = MySqlRsa.pem(pair.getPublic()).getBytes(StandardCharsets.US_ASCII);
        byte[] payload = new byte[1 + pem.length];
        payload[0] = AUTH_MORE_DATA;
        System.arraycopy(pem, 0, payload, 1, pem.length);
        legs.toClient(packet(requestSequence + 1, payload));
        legs.clientExpects(requestSequence + 2);
    }

    /** The client's password, encrypted with connguard's key, goes to the server over TLS. */
    private void sendDecryptedPassword(ByteBuf packet, int sequenceId) {
        byte[] blob = new byte[packet.readableBytes() - MySqlWire.HEADER_SIZE];
        packet.getBytes(packet.readerIndex() + MySqlWire.HEADER_SIZE, blob);
        packet.release();
        byte[] clear = MySqlRsa.decrypt(blob, scramble, module.ownRsaKey().join().getPrivate());
        step = Step.NONE;
        legs.shift(-2); // two packets of the client's exchange with connguard never reach the server
        legs.toServer(packet(sequenceId + legs.delta(), clear));
        Arrays.fill(clear, (byte) 0);
    }

    /** A cleartext password for another plugin would go to a plaintext server leg: refused, never sent. */
    private void refuseCleartext(int sequenceId) {
        context.log().warn("refused to forward a cleartext password to the plaintext upstream of listener {}",
                context.listener().name());
        legs.refuse(MySqlErrorWriter.write(context.alloc(), sequenceId, 1251, "08004",
                "connguard: the server asked for the password in clear (sha256_password or mysql_clear_password), "
                        + "which the client sends because its leg to connguard is TLS; listener " + context.listener().name()
                        + " speaks to the database in plaintext (upstreamTls.mode: disable), so connguard does not forward "
                        + "it. Enable upstreamTls, or connect to connguard without TLS"));
    }

    private ByteBuf packet(int sequenceId, byte[] payload) {
        ByteBuf out = context.alloc().buffer(MySqlWire.HEADER_SIZE + payload.length);
        int start = MySqlWire.startPacket(out, sequenceId & 0xFF);
        out.writeBytes(payload);
        MySqlWire.finishPacket(out, start);
        return out;
    }

    private void wipe() {
        if (password != null) {
            Arrays.fill(password, (byte) 0);
            password = null;
        }
    }
}
