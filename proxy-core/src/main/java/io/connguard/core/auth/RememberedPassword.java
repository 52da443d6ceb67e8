package io.connguard.core.auth;

import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Arrays;

/**
 * A password the database has accepted, kept only as SHA-256 over a random per-entry salt and the
 * password: enough to admit a later client that presents the same password without a server login, and
 * useless to print or dump. A plain salted hash rather than a slow KDF on purpose: it is checked on the
 * event loop at every pooled login, where a KDF's milliseconds would stall every session of the loop;
 * it only ever lives in memory, next to connections already authenticated as that user.
 */
public final class RememberedPassword {

    private byte[] salt;
    private byte[] hash;

    /** Remembers {@code password} (replacing what was remembered). */
    public void remember(char[] password) {
        byte[] fresh = Randomness.bytes(16);
        salt = fresh;
        hash = digest(fresh, password);
    }

    /** Whether {@code password} is the remembered one (constant time in the hash comparison). */
    public boolean matches(char[] password) {
        return hash != null && MessageDigest.isEqual(hash, digest(salt, password));
    }

    public void forget() {
        salt = null;
        hash = null;
    }

    public boolean isEmpty() {
        return hash == null;
    }

    private static byte[] digest(byte[] salt, char[] password) {
        ByteBuffer bytes = StandardCharsets.UTF_8.encode(CharBuffer.wrap(password));
        try {
            MessageDigest sha = MessageDigest.getInstance("SHA-256");
            sha.update(salt);
            sha.update(bytes.duplicate());
            return sha.digest();
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("the JVM has no SHA-256", e);
        } finally {
            if (bytes.hasArray()) {
                Arrays.fill(bytes.array(), (byte) 0);
            }
        }
    }
}
