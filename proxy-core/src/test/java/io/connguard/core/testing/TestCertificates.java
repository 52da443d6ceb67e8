package io.connguard.core.testing;

import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.asn1.x509.BasicConstraints;
import org.bouncycastle.asn1.x509.Extension;
import org.bouncycastle.asn1.x509.GeneralName;
import org.bouncycastle.asn1.x509.GeneralNames;
import org.bouncycastle.cert.X509v3CertificateBuilder;
import org.bouncycastle.cert.jcajce.JcaX509CertificateConverter;
import org.bouncycastle.cert.jcajce.JcaX509v3CertificateBuilder;
import org.bouncycastle.openssl.jcajce.JcaPEMWriter;
import org.bouncycastle.openssl.jcajce.JcaPKCS8Generator;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;

import java.io.IOException;
import java.io.StringWriter;
import java.io.UncheckedIOException;
import java.math.BigInteger;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.cert.X509Certificate;
import java.time.Duration;
import java.time.Instant;
import java.util.Date;
import java.util.concurrent.atomic.AtomicLong;

/**
 * A throw-away certificate authority for tests of TLS on the client leg: it issues RSA server
 * certificates for {@code localhost} and {@code 127.0.0.1} and writes them, their keys (PKCS#8 or the
 * traditional PKCS#1 form) and itself as PEM files, so that a driver can verify connguard with
 * {@code verify-full} against a known CA.
 */
public final class TestCertificates {

    private static final AtomicLong SERIAL = new AtomicLong(System.currentTimeMillis());

    /** The files of one issued certificate. */
    public record Issued(Path certFile, Path keyFile, X509Certificate certificate) {
    }

    private final KeyPair caKeys;
    private final X509Certificate ca;

    private TestCertificates(KeyPair caKeys, X509Certificate ca) {
        this.caKeys = caKeys;
        this.ca = ca;
    }

    /** A new CA named {@code CN=name}. */
    public static TestCertificates authority(String name) {
        try {
            KeyPair keys = rsa();
            X500Name subject = new X500Name("CN=" + name);
            X509v3CertificateBuilder builder = builder(subject, subject, keys);
            builder.addExtension(Extension.basicConstraints, true, new BasicConstraints(true));
            return new TestCertificates(keys, sign(builder, keys));
        } catch (Exception e) {
            throw new IllegalStateException("cannot make a test CA", e);
        }
    }

    public X509Certificate certificate() {
        return ca;
    }

    /** Writes the CA certificate (what a client trusts) to {@code file}. */
    public Path writeCa(Path file) {
        write(file, pem(ca));
        return file;
    }

    /** Issues a server certificate for localhost and 127.0.0.1 and writes {@code dir/name.crt}, {@code dir/name.key}. */
    public Issued issue(Path dir, String name, boolean pkcs1Key) {
        try {
            KeyPair keys = rsa();
            X509v3CertificateBuilder builder = builder(new X500Name(ca.getSubjectX500Principal().getName()),
                    new X500Name("CN=" + name), keys);
            builder.addExtension(Extension.subjectAlternativeName, false, new GeneralNames(new GeneralName[] {
                    new GeneralName(GeneralName.dNSName, "localhost"),
                    new GeneralName(GeneralName.iPAddress, "127.0.0.1")}));
            builder.addExtension(Extension.basicConstraints, true, new BasicConstraints(false));
            X509Certificate certificate = sign(builder, caKeys);
            Path cert = dir.resolve(name + ".crt");
            Path key = dir.resolve(name + ".key");
            write(cert, pem(certificate));
            write(key, pkcs1Key ? pem(keys.getPrivate()) : pem(new JcaPKCS8Generator(keys.getPrivate(), null)));
            return new Issued(cert, key, certificate);
        } catch (Exception e) {
            throw new IllegalStateException("cannot issue a test certificate", e);
        }
    }

    private static KeyPair rsa() throws Exception {
        KeyPairGenerator generator = KeyPairGenerator.getInstance("RSA");
        generator.initialize(2048);
        return generator.generateKeyPair();
    }

    private static X509v3CertificateBuilder builder(X500Name issuer, X500Name subject, KeyPair keys) {
        Instant now = Instant.now();
        return new JcaX509v3CertificateBuilder(issuer, BigInteger.valueOf(SERIAL.incrementAndGet()),
                Date.from(now.minus(Duration.ofHours(1))), Date.from(now.plus(Duration.ofDays(30))), subject,
                keys.getPublic());
    }

    private static X509Certificate sign(X509v3CertificateBuilder builder, KeyPair signer) throws Exception {
        return new JcaX509CertificateConverter()
                .getCertificate(builder.build(new JcaContentSignerBuilder("SHA256withRSA").build(signer.getPrivate())));
    }

    private static String pem(Object object) {
        StringWriter out = new StringWriter();
        try (JcaPEMWriter writer = new JcaPEMWriter(out)) {
            writer.writeObject(object);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return out.toString();
    }

    private static void write(Path file, String text) {
        try {
            // Written aside and moved into place, as a Secret update swaps files, so a watcher never reads half.
            Path temp = Files.createTempFile(file.getParent(), ".tmp", ".pem");
            Files.writeString(temp, text);
            Files.move(temp, file, java.nio.file.StandardCopyOption.REPLACE_EXISTING,
                    java.nio.file.StandardCopyOption.ATOMIC_MOVE);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
