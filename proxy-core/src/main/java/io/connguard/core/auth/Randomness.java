package io.connguard.core.auth;

import io.netty.util.concurrent.FastThreadLocal;

import java.security.NoSuchAlgorithmException;
import java.security.SecureRandom;
import java.util.Arrays;
import java.util.Base64;

/**
 * The random bytes connguard mints on event loops (password salts, SCRAM nonces, cancel keys): a DRBG
 * seeded once, when this class is first used, which {@link #warm()} does off the loops at start-up. The
 * default {@code NativePRNG} reads {@code /dev/urandom} on every call, a file read on an event loop.
 *
 * <p>Each thread draws {@value #BATCH} bytes at a time and hands them out: a DRBG call costs the same few
 * SHA-256 rounds for 4 bytes as for 32, and a pooled login mints two values (a cancel key's process id and
 * secret). Bytes are zeroed in the batch once handed out.
 */
public final class Randomness {

    private static final SecureRandom RANDOM = create();
    private static final int BATCH = 256;
    private static final FastThreadLocal<Batch> BATCHES = new FastThreadLocal<>() {
        @Override
        protected Batch initialValue() {
            return new Batch();
        }
    };

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
        if (length > BATCH / 4) {
            RANDOM.nextBytes(out);
        } else {
            BATCHES.get().take(out, length);
        }
        return out;
    }

    /** A positive int. */
    public static int positiveInt() {
        Batch batch = BATCHES.get();
        int value;
        do {
            value = batch.takeInt() & Integer.MAX_VALUE;
        } while (value == 0);
        return value;
    }

    /** {@code length} random bytes as base64 without padding: printable, no comma (a SCRAM nonce). */
    public static String nonce(int length) {
        return Base64.getEncoder().withoutPadding().encodeToString(bytes(length));
    }

    /** One thread's unused random bytes: {@code bytes[next..]}. */
    private static final class Batch {
        private final byte[] bytes = new byte[BATCH];
        private int next = BATCH;

        void take(byte[] out, int length) {
            int at = reserve(length);
            System.arraycopy(bytes, at, out, 0, length);
            Arrays.fill(bytes, at, at + length, (byte) 0);
        }

        int takeInt() {
            int at = reserve(4);
            int value = (bytes[at] << 24) | ((bytes[at + 1] & 0xff) << 16) | ((bytes[at + 2] & 0xff) << 8)
                    | (bytes[at + 3] & 0xff);
            Arrays.fill(bytes, at, at + 4, (byte) 0);
            return value;
        }

        /** Where {@code length} unused bytes start, drawing a new batch when too few are left. */
        private int reserve(int length) {
            if (next + length > BATCH) {
                RANDOM.nextBytes(bytes);
                next = 0;
            }
            int at = next;
            next += length;
            return at;
        }
    }
}
