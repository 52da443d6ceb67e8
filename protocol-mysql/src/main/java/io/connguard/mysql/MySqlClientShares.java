package io.connguard.mysql;

import io.connguard.core.api.ClientIdentity;
import io.netty.util.concurrent.FastThreadLocal;

import java.util.Arrays;

/**
 * What the clients of one application's pool send alike, kept once per event loop instead of once per
 * session: a value equal to the one the loop's previous client sent is that one. Both are immutable once
 * made (a record; an array nobody writes), so sharing them changes nothing they say.
 */
final class MySqlClientShares {

    private static final FastThreadLocal<ClientIdentity> LAST_IDENTITY = new FastThreadLocal<>();
    private static final FastThreadLocal<byte[]> LAST_ATTRIBUTES = new FastThreadLocal<>();

    private MySqlClientShares() {
    }

    /** {@code made}, or the identity this thread made last when equal to it. */
    static ClientIdentity identity(ClientIdentity made) {
        ClientIdentity last = LAST_IDENTITY.getIfExists();
        if (made.equals(last)) {
            return last;
        }
        LAST_IDENTITY.set(made);
        return made;
    }

    /**
     * The connection attributes of a HandshakeResponse41 as kept for later server logins: null for none,
     * else {@code sent}, or the attributes this thread kept last when equal to them (drivers send the same
     * client name, version and process id on every connection of a process).
     */
    static byte[] attributes(byte[] sent) {
        if (sent == null || sent.length == 0) {
            return null;
        }
        byte[] last = LAST_ATTRIBUTES.getIfExists();
        if (Arrays.equals(sent, last)) {
            return last;
        }
        LAST_ATTRIBUTES.set(sent);
        return sent;
    }
}
