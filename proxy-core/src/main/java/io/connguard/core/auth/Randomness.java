package io.connguard.core.auth;

import java.security.NoSuchAlgorithmException;
import java.security.SecureRandom;
import java.util.Base64;

/**
 * The random bytes connguard mints on event loops (password salts, SCRAM nonces, cancel keys): a DRBG
 * seeded once, when this class is first used, which {@link #warm()} does off the loops at start-up. The
 * default {@code NativePRNG} reads {@code /dev/urandom} on every call, a file read on an event loop.
 */
public final class Randomness {

    private static final SecureRandom RANDOM = create();

    private Randomness() {
    }

    private static SecureRandom create() {
        SecureRandom random;
        try {
            random = SecureRandom.getInstance("DRBG");
        } catch (NoSuchAlgorithmException e) {
            random = new SecureRandom();
        }
        random.nextBytes(new byte[16]); // seeds now, not on the first event-loop call
        return random;
    }

    /** Seeds the generator; call once off the event loops. */
    public static void warm() {
        bytes(1);
    }

    public static byte[] bytes(int length) {
        byte[] out = new byte[length];
        RANDOM.nextBytes(out);
        return out;
    }

    /** A positive int. */
    public static int positiveInt() {
        return RANDOM.nextInt(Integer.MAX_VALUE - 1) + 1;
    }

    /** {@code length} random bytes as base64 without padding: printable, no comma (a SCRAM nonce). */
    public static String nonce(int length) {
        return Base64.getEncoder().withoutPadding().encodeToString(bytes(length));
    }
}
