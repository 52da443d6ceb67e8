package io.connguard.mysql;

import io.netty.util.concurrent.FastThreadLocal;

import java.security.MessageDigest;
import java.util.Arrays;

/**
 * What a pooled listener keeps of the password a server login was last accepted with, to admit a later
 * client whose HandshakeResponse41 answers connguard's scramble with the same password, without asking it
 * for the password itself: the double hashes the server itself stores, SHA1(SHA1(password)) for
 * mysql_native_password and SHA256(SHA256(password)) for caching_sha2_password's fast path. From the
 * client's answer and the scramble each gives back the first hash, whose hash must then equal the kept one.
 * An empty password is kept as such (its answer is empty).
 *
 * @see <a href="https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_connection_phase_authentication_methods_native_password_authentication.html">mysql_native_password</a>
 */
final class MySqlPasswordProof {

    /**
     * One SHA-1 and one SHA-256 per thread (an event loop checks every client of its connections): a
     * {@code MessageDigest.getInstance} looks the algorithm up among the security providers each time, a
     * measurable part of a pooled connect. {@code digest()} leaves an instance reset for the next use.
     */
    private static final FastThreadLocal<MessageDigest> SHA1 = new FastThreadLocal<>() {
        @Override
        protected MessageDigest initialValue() {
            return digest("SHA-1");
        }
    };
    private static final FastThreadLocal<MessageDigest> SHA256 = new FastThreadLocal<>() {
        @Override
        protected MessageDigest initialValue() {
            return digest("SHA-256");
        }
    };

    private final boolean empty;
    private final byte[] nativeStage2;
    private final byte[] sha2Stage2;

    private MySqlPasswordProof(boolean empty, byte[] nativeStage2, byte[] sha2Stage2) {
        this.empty = empty;
        this.nativeStage2 = nativeStage2;
        this.sha2Stage2 = sha2Stage2;
    }

    /** The proof of {@code password} (UTF-8; not kept). */
    static MySqlPasswordProof of(byte[] password) {
        MessageDigest sha1 = SHA1.get();
        MessageDigest sha256 = SHA256.get();
        byte[] native1 = sha1.digest(password);
        byte[] sha21 = sha256.digest(password);
        MySqlPasswordProof proof = new MySqlPasswordProof(password.length == 0, sha1.digest(native1), sha256.digest(sha21));
        Arrays.fill(native1, (byte) 0);
        Arrays.fill(sha21, (byte) 0);
        return proof;
    }

    /** Whether {@code password} is the one this proof was made of. */
    boolean matches(byte[] password) {
        MySqlPasswordProof other = of(password);
        return empty == other.empty && MessageDigest.isEqual(nativeStage2, other.nativeStage2);
    }

    /**
     * Whether {@code answer}, the client's auth response for {@code plugin} to {@code scramble}, was made with
     * this password. Plugins other than mysql_native_password and caching_sha2_password never prove it.
     */
    boolean proves(String plugin, byte[] answer, byte[] scramble) {
        if (answer.length == 0) {
            return empty && (MySqlAuthPlugins.NATIVE.equals(plugin) || MySqlAuthPlugins.CACHING_SHA2.equals(plugin));
        }
        if (empty) {
            return false;
        }
        if (MySqlAuthPlugins.NATIVE.equals(plugin) && answer.length == 20) {
            MessageDigest sha1 = SHA1.get();
            sha1.reset(); // a digest() that threw midway would have left input behind
            sha1.update(scramble, 0, Math.min(20, scramble.length));
            sha1.update(nativeStage2);
            return firstHashMatches(sha1.digest(), answer, sha1, nativeStage2);
        }
        if (MySqlAuthPlugins.CACHING_SHA2.equals(plugin) && answer.length == 32) {
            MessageDigest sha256 = SHA256.get();
            sha256.reset();
            sha256.update(sha2Stage2);
            sha256.update(scramble, 0, Math.min(20, scramble.length));
            return firstHashMatches(sha256.digest(), answer, sha256, sha2Stage2);
        }
        return false;
    }

    /** {@code mask} XOR {@code answer} is the first hash; its hash must be {@code stage2}. */
    private static boolean firstHashMatches(byte[] mask, byte[] answer, MessageDigest digest, byte[] stage2) {
        for (int i = 0; i < mask.length; i++) {
            mask[i] ^= answer[i];
        }
        byte[] again = digest.digest(mask);
        Arrays.fill(mask, (byte) 0);
        return MessageDigest.isEqual(again, stage2);
    }

    private static MessageDigest digest(String algorithm) {
        try {
            return MessageDigest.getInstance(algorithm);
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException(algorithm + " is part of every Java runtime", e);
        }
    }
}
