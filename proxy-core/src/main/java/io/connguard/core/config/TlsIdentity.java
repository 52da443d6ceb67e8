package io.connguard.core.config;

import org.bouncycastle.asn1.pkcs.PrivateKeyInfo;
import org.bouncycastle.openssl.PEMEncryptedKeyPair;
import org.bouncycastle.openssl.PEMKeyPair;
import org.bouncycastle.openssl.PEMParser;
import org.bouncycastle.openssl.jcajce.JcaPEMKeyConverter;
import org.bouncycastle.pkcs.PKCS8EncryptedPrivateKeyInfo;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.StringReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.PrivateKey;
import java.security.PublicKey;
import java.security.Signature;
import java.security.cert.CertificateException;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.util.ArrayList;
import java.util.List;

/**
 * A server certificate chain and its private key, as TLS on the client leg presents them: read from PEM
 * files (the key in PKCS#8, PKCS#1 or SEC1 form, as openssl, cert-manager and Kubernetes Secrets write
 * them) and checked to belong together, or made at start (see {@code SelfSignedCertificate}).
 *
 * @param key   the private key of the first certificate
 * @param chain the server certificate first, then any intermediates
 */
public record TlsIdentity(PrivateKey key, List<X509Certificate> chain) {

    public TlsIdentity {
        chain = List.copyOf(chain);
    }

    /** Why a pair of files cannot be used; {@code field} is {@code certFile} or {@code keyFile}. */
    public static final class Invalid extends Exception {
        private static final long serialVersionUID = 1L;
        private final String field;

        Invalid(String field, String message) {
            super(message);
            this.field = field;
        }

        public String field() {
            return field;
        }
    }

    /** Reads and checks the pair. */
    public static TlsIdentity read(Path certFile, Path keyFile) throws Invalid {
        return parse(readAll(certFile, "certFile"), certFile, readAll(keyFile, "keyFile"), keyFile);
    }

    /** Checks a pair already read; the paths only name the files in messages. */
    public static TlsIdentity parse(byte[] certPem, Path certFile, byte[] keyPem, Path keyFile) throws Invalid {
        List<X509Certificate> chain = parseChain(certPem, certFile);
        PrivateKey key = parseKey(keyPem, keyFile);
        if (!matches(key, chain.get(0).getPublicKey())) {
            throw new Invalid("keyFile", "the key in " + keyFile + " does not belong to the certificate in " + certFile
                    + " (" + chain.get(0).getSubjectX500Principal().getName() + ")");
        }
        return new TlsIdentity(key, chain);
    }

    public static byte[] readAll(Path file, String field) throws Invalid {
        try {
            return Files.readAllBytes(file);
        } catch (IOException e) {
            throw new Invalid(field, "cannot read " + file + ": " + e.getMessage());
        }
    }

    private static List<X509Certificate> parseChain(byte[] pem, Path file) throws Invalid {
        List<X509Certificate> chain = new ArrayList<>();
        try {
            for (var cert : CertificateFactory.getInstance("X.509").generateCertificates(new ByteArrayInputStream(pem))) {
                chain.add((X509Certificate) cert);
            }
        } catch (CertificateException e) {
            throw new Invalid("certFile", "not a PEM certificate: " + file + " (" + e.getMessage() + ")");
        }
        if (chain.isEmpty()) {
            throw new Invalid("certFile", "no certificate in " + file);
        }
        return chain;
    }

    private static PrivateKey parseKey(byte[] pem, Path file) throws Invalid {
        Object object;
        try (PEMParser parser = new PEMParser(new StringReader(new String(pem, StandardCharsets.US_ASCII)))) {
            object = parser.readObject();
        } catch (IOException e) {
            throw new Invalid("keyFile", "not a PEM key: " + file + " (" + e.getMessage() + ")");
        }
        try {
            JcaPEMKeyConverter converter = new JcaPEMKeyConverter();
            if (object instanceof PrivateKeyInfo info) {
                return converter.getPrivateKey(info);
            }
            if (object instanceof PEMKeyPair pair) {
                return converter.getKeyPair(pair).getPrivate();
            }
        } catch (IOException e) {
            throw new Invalid("keyFile", "cannot decode the key in " + file + ": " + e.getMessage());
        }
        if (object instanceof PEMEncryptedKeyPair || object instanceof PKCS8EncryptedPrivateKeyInfo) {
            throw new Invalid("keyFile", "the key in " + file + " is encrypted; give an unencrypted PEM key");
        }
        throw new Invalid("keyFile", "no PEM private key in " + file);
    }

    /** Signs a probe with the key and verifies it with the certificate's public key. */
    private static boolean matches(PrivateKey key, PublicKey publicKey) {
        if (!key.getAlgorithm().equals(publicKey.getAlgorithm())) {
            return false;
        }
        String algorithm = switch (key.getAlgorithm()) {
            case "RSA" -> "SHA256withRSA";
            case "EC" -> "SHA256withECDSA";
            default -> key.getAlgorithm(); // EdDSA
        };
        try {
            byte[] probe = "connguard".getBytes(StandardCharsets.US_ASCII);
            Signature signer = Signature.getInstance(algorithm);
            signer.initSign(key);
            signer.update(probe);
            byte[] signature = signer.sign();
            Signature verifier = Signature.getInstance(algorithm);
            verifier.initVerify(publicKey);
            verifier.update(probe);
            return verifier.verify(signature);
        } catch (GeneralSecurityException e) {
            return false;
        }
    }
}
