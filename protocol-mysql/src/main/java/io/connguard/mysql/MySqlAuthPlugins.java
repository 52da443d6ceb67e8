package io.connguard.mysql;

import java.math.BigInteger;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Arrays;

/**
 * The auth responses connguard computes when it logs in to a server with a known password:
 * mysql_native_password, caching_sha2_password's scramble, and MariaDB's client_ed25519.
 *
 * <p>MariaDB's ed25519 plugin ({@code plugin/auth_ed25519/ref10/sign.c}) signs the server's 32-byte
 * scramble with Ed25519, but derives the secret scalar and nonce prefix from SHA-512 of the whole password
 * instead of a 32-byte seed; the server stores the public key. Bouncy Castle's Ed25519 only takes a seed it
 * hashes itself, so the signature is computed here with RFC 8032's group arithmetic (section 5.1, on
 * {@link BigInteger}, fine for one login) from that hash; the unit test verifies every signature with Bouncy
 * Castle's verifier and the public key against the one MariaDB stored.
 *
 * @see <a href="https://dev.mysql.com/doc/dev/mysql-server/latest/page_protocol_connection_phase_authentication_methods_native_password_authentication.html">Native authentication</a>
 * @see <a href="https://dev.mysql.com/doc/dev/mysql-server/latest/page_caching_sha2_authentication_exchanges.html">caching_sha2_password</a>
 * @see <a href="https://mariadb.com/kb/en/authentication-plugin-ed25519/">MariaDB ed25519</a>
 * @see <a href="https://www.rfc-editor.org/rfc/rfc8032#section-5.1">RFC 8032, Ed25519</a>
 */
final class MySqlAuthPlugins {

    static final String NATIVE = "mysql_native_password";
    static final String CACHING_SHA2 = "caching_sha2_password";
    static final String SHA256 = "sha256_password";
    static final String CLEAR = "mysql_clear_password";
    static final String ED25519 = "client_ed25519";

    private static final BigInteger P = BigInteger.TWO.pow(255).subtract(BigInteger.valueOf(19));
    private static final BigInteger L = BigInteger.TWO.pow(252).add(new BigInteger("27742317777372353535851937790883648493"));
    private static final BigInteger D = BigInteger.valueOf(-121665).multiply(BigInteger.valueOf(121666).modInverse(P)).mod(P);
    private static final BigInteger SQRT_M1 = BigInteger.TWO.modPow(P.subtract(BigInteger.ONE).shiftRight(2), P);
    private static final BigInteger[] BASE;

    static {
        BigInteger y = BigInteger.valueOf(4).multiply(BigInteger.valueOf(5).modInverse(P)).mod(P);
        BigInteger x = recoverX(y);
        BASE = new BigInteger[] {x, y, BigInteger.ONE, x.multiply(y).mod(P)};
    }

    private MySqlAuthPlugins() {
    }

    /** SHA1(password) XOR SHA1(scramble[0..20) + SHA1(SHA1(password))); empty for an empty password. */
    static byte[] nativePassword(byte[] password, byte[] scramble) {
        if (password.length == 0) {
            return new byte[0];
        }
        MessageDigest sha1 = digest("SHA-1");
        byte[] stage1 = sha1.digest(password);
        byte[] stage2 = sha1.digest(stage1);
        sha1.update(scramble, 0, Math.min(20, scramble.length));
        sha1.update(stage2);
        return xorInto(sha1.digest(), stage1);
    }

    /** SHA256(password) XOR SHA256(SHA256(SHA256(password)) + scramble); empty for an empty password. */
    static byte[] cachingSha2(byte[] password, byte[] scramble) {
        if (password.length == 0) {
            return new byte[0];
        }
        MessageDigest sha256 = digest("SHA-256");
        byte[] stage1 = sha256.digest(password);
        byte[] stage2 = sha256.digest(stage1);
        sha256.update(stage2);
        sha256.update(scramble, 0, Math.min(20, scramble.length));
        return xorInto(sha256.digest(), stage1);
    }

    /** MariaDB client_ed25519: the 64-byte Ed25519 signature of {@code scramble} under the password-derived key. */
    static byte[] ed25519(byte[] password, byte[] scramble) {
        byte[] az = digest("SHA-512").digest(password);
        BigInteger a = secretScalar(az);
        byte[] publicKey = encode(multiply(a, BASE));
        MessageDigest sha512 = digest("SHA-512");
        sha512.update(az, 32, 32);
        sha512.update(scramble);
        BigInteger r = littleEndian(sha512.digest()).mod(L);
        byte[] rEncoded = encode(multiply(r, BASE));
        sha512.update(rEncoded);
        sha512.update(publicKey);
        sha512.update(scramble);
        BigInteger h = littleEndian(sha512.digest()).mod(L);
        BigInteger s = r.add(h.multiply(a)).mod(L);
        byte[] signature = Arrays.copyOf(rEncoded, 64);
        System.arraycopy(toLittleEndian(s), 0, signature, 32, 32);
        Arrays.fill(az, (byte) 0);
        return signature;
    }

    /** The public key MariaDB stores (base64 in authentication_string) for {@code password}. */
    static byte[] ed25519PublicKey(byte[] password) {
        byte[] az = digest("SHA-512").digest(password);
        byte[] key = encode(multiply(secretScalar(az), BASE));
        Arrays.fill(az, (byte) 0);
        return key;
    }

    private static BigInteger secretScalar(byte[] az) {
        byte[] scalar = Arrays.copyOf(az, 32);
        scalar[0] &= (byte) 248;
        scalar[31] &= 63;
        scalar[31] |= 64;
        BigInteger a = littleEndian(scalar);
        Arrays.fill(scalar, (byte) 0);
        return a;
    }

    // RFC 8032 5.1.4: points in extended homogeneous coordinates (X, Y, Z, T), x = X/Z, y = Y/Z, xy = T/Z

    private static BigInteger[] add(BigInteger[] p, BigInteger[] q) {
        BigInteger a = p[1].subtract(p[0]).multiply(q[1].subtract(q[0])).mod(P);
        BigInteger b = p[1].add(p[0]).multiply(q[1].add(q[0])).mod(P);
        BigInteger c = p[3].multiply(BigInteger.TWO).multiply(D).multiply(q[3]).mod(P);
        BigInteger d = p[2].multiply(BigInteger.TWO).multiply(q[2]).mod(P);
        BigInteger e = b.subtract(a);
        BigInteger f = d.subtract(c);
        BigInteger g = d.add(c);
        BigInteger h = b.add(a);
        return new BigInteger[] {e.multiply(f).mod(P), g.multiply(h).mod(P), f.multiply(g).mod(P), e.multiply(h).mod(P)};
    }

    private static BigInteger[] multiply(BigInteger scalar, BigInteger[] point) {
        BigInteger[] result = {BigInteger.ZERO, BigInteger.ONE, BigInteger.ONE, BigInteger.ZERO};
        BigInteger[] addend = point;
        for (int i = 0; i < scalar.bitLength(); i++) {
            if (scalar.testBit(i)) {
                result = add(result, addend);
            }
            addend = add(addend, addend);
        }
        return result;
    }

    private static byte[] encode(BigInteger[] point) {
        BigInteger zInverse = point[2].modInverse(P);
        BigInteger x = point[0].multiply(zInverse).mod(P);
        BigInteger y = point[1].multiply(zInverse).mod(P);
        byte[] out = toLittleEndian(y);
        if (x.testBit(0)) {
            out[31] |= (byte) 0x80;
        }
        return out;
    }

    private static BigInteger recoverX(BigInteger y) {
        BigInteger x2 = y.multiply(y).subtract(BigInteger.ONE).multiply(D.multiply(y).multiply(y).add(BigInteger.ONE).modInverse(P)).mod(P);
        BigInteger x = x2.modPow(P.add(BigInteger.valueOf(3)).shiftRight(3), P);
        if (!x.multiply(x).subtract(x2).mod(P).equals(BigInteger.ZERO)) {
            x = x.multiply(SQRT_M1).mod(P);
        }
        return x.testBit(0) ? P.subtract(x) : x;           // the base point's x is even
    }

    private static BigInteger littleEndian(byte[] bytes) {
        byte[] big = new byte[bytes.length + 1];
        for (int i = 0; i < bytes.length; i++) {
            big[bytes.length - i] = bytes[i];
        }
        return new BigInteger(big);
    }

    private static byte[] toLittleEndian(BigInteger value) {
        byte[] big = value.toByteArray();
        byte[] out = new byte[32];
        for (int i = 0; i < 32 && i < big.length; i++) {
            out[i] = big[big.length - 1 - i];
        }
        return out;
    }

    private static byte[] xorInto(byte[] target, byte[] mask) {
        for (int i = 0; i < target.length; i++) {
            target[i] ^= mask[i];
        }
        return target;
    }

    private static MessageDigest digest(String algorithm) {
        try {
            return MessageDigest.getInstance(algorithm);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(algorithm + " is missing from this JVM", e);
        }
    }
}
