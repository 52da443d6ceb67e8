package io.connguard.mysql;

import javax.crypto.Cipher;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.KeyFactory;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.PrivateKey;
import java.security.PublicKey;
import java.security.spec.X509EncodedKeySpec;
import java.util.Arrays;
import java.util.Base64;

/**
 * The RSA step of caching_sha2_password full authentication on a plaintext leg: the password, NUL-terminated
 * and XOR-ed with the scramble, encrypted with RSA-OAEP (SHA-1, MGF1) under the server's public key, which
 * the server sends as a PEM SubjectPublicKeyInfo. connguard does it toward a plaintext server for a client
 * that sent its password over TLS, and offers its own key to a plaintext client when the server leg is TLS.
 *
 * @see <a href="https://dev.mysql.com/doc/dev/mysql-server/latest/page_caching_sha2_authentication_exchanges.html">caching_sha2_password exchanges</a>
 */
final class MySqlRsa {

    private static final String OAEP = "RSA/ECB/OAEPWithSHA-1AndMGF1Padding";
    private static final String PKCS1 = "RSA/ECB/PKCS1Padding";

    private MySqlRsa() {
    }

    static KeyPair generate() {
        try {
            KeyPairGenerator generator = KeyPairGenerator.getInstance("RSA");
            generator.initialize(2048);
            return generator.generateKeyPair();
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("cannot make an RSA key", e);
        }
    }

    /** The PEM form servers send in AuthMoreData. */
    static String pem(PublicKey key) {
        return "-----BEGIN PUBLIC KEY-----\n"
                + Base64.getMimeEncoder(64, new byte[] {'\n'}).encodeToString(key.getEncoded())
                + "\n-----END PUBLIC KEY-----\n";
    }

    static PublicKey parsePem(byte[] pem) {
        String text = new String(pem, StandardCharsets.US_ASCII)
                .replace("-----BEGIN PUBLIC KEY-----", "").replace("-----END PUBLIC KEY-----", "")
                .replaceAll("\\s", "");
        try {
            return KeyFactory.getInstance("RSA").generatePublic(new X509EncodedKeySpec(Base64.getDecoder().decode(text)));
        } catch (GeneralSecurityException | IllegalArgumentException e) {
            throw new MalformedPacketException("the server's RSA public key cannot be read: " + e.getMessage());
        }
    }

    /** {@code password} (NUL-terminated) XOR {@code scramble}, encrypted for {@code key}. Wipes its copy. */
    static byte[] encrypt(byte[] password, byte[] scramble, PublicKey key) {
        byte[] mixed = xor(password, scramble);
        try {
            Cipher cipher = Cipher.getInstance(OAEP);
            cipher.init(Cipher.ENCRYPT_MODE, key);
            return cipher.doFinal(mixed);
        } catch (GeneralSecurityException e) {
            throw new MalformedPacketException("cannot encrypt for the server's RSA key: " + e.getMessage());
        } finally {
            Arrays.fill(mixed, (byte) 0);
        }
    }

    /**
     * The NUL-terminated password a client encrypted for {@code key} with {@code scramble}: OAEP padding, or
     * PKCS #1 v1.5, which MySQL Connector/J uses for servers older than 8.0.5 (MariaDB's "5.5.5-" version).
     */
    static byte[] decrypt(byte[] blob, byte[] scramble, PrivateKey key) {
        byte[] mixed = null;
        try {
            try {
                Cipher cipher = Cipher.getInstance(OAEP);
                cipher.init(Cipher.DECRYPT_MODE, key);
                mixed = cipher.doFinal(blob);
            } catch (javax.crypto.BadPaddingException notOaep) {
                Cipher cipher = Cipher.getInstance(PKCS1);
                cipher.init(Cipher.DECRYPT_MODE, key);
                mixed = cipher.doFinal(blob);
            }
            return xor(mixed, scramble);
        } catch (GeneralSecurityException e) {
            throw new MalformedPacketException("the client's RSA-encrypted password cannot be decrypted");
        } finally {
            if (mixed != null) {
                Arrays.fill(mixed, (byte) 0);
            }
        }
    }

    static byte[] xor(byte[] data, byte[] scramble) {
        byte[] out = new byte[data.length];
        for (int i = 0; i < data.length; i++) {
            out[i] = (byte) (data[i] ^ scramble[i % scramble.length]);
        }
        return out;
    }
}
