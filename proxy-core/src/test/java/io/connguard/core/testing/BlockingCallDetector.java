package io.connguard.core.testing;

import org.junit.jupiter.api.extension.AfterAllCallback;
import org.junit.jupiter.api.extension.AfterEachCallback;
import org.junit.jupiter.api.extension.ExtensionContext;
import reactor.blockhound.BlockHound;
import reactor.blockhound.BlockingOperationError;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedQueue;

/**
 * Fails a test when anything blocked a Netty event loop while it ran. One blocked loop stalls every
 * session on it, so the integration tests run with BlockHound installed (Netty's own integration marks
 * its event-loop threads as non-blocking) and this extension turns each detected call into a test
 * failure with the stack that made it.
 *
 * <p>BlockHound throws {@link BlockingOperationError} in the offending thread, where Netty may catch it
 * and close a channel, so a test could pass while the loop blocked; the detector therefore also records
 * every detection and fails the test after it runs. It is registered as a service and auto-detected in
 * the failsafe runs only ({@code -Dconnguard.blockhound=true}, see the parent pom); unit tests drive
 * handlers on the test thread and have nothing to detect.
 *
 * <p>Nothing is allowed beyond Netty's own integration (its allocator's and task queue's short locks):
 * connguard's loops log through Logback's non-blocking async appender and hand DNS, reloads and
 * file reads to other threads.
 */
public final class BlockingCallDetector implements AfterEachCallback, AfterAllCallback {

    private static final ConcurrentLinkedQueue<Throwable> DETECTED = new ConcurrentLinkedQueue<>();

    static {
        if (Boolean.getBoolean("connguard.blockhound")) {
            // install(...) also applies the integrations found by ServiceLoader, Netty's among them,
            // which marks its event-loop threads as non-blocking; builder() alone would not.
            BlockHound.install(builder -> builder
                    .blockingMethodCallback(method -> {
                        BlockingOperationError error = new BlockingOperationError(method);
                        DETECTED.add(new AssertionError("blocking call " + method + " on event loop "
                                + Thread.currentThread().getName(), error));
                        throw error;
                    }));
        }
    }

    /** True when BlockHound watches this JVM's event loops. */
    public static boolean active() {
        return Boolean.getBoolean("connguard.blockhound");
    }

    /** Takes the detections recorded so far, so that a test which blocks on purpose can check them. */
    public static List<Throwable> takeDetections() {
        List<Throwable> found = new ArrayList<>();
        for (Throwable t; (t = DETECTED.poll()) != null; ) {
            found.add(t);
        }
        return found;
    }

    @Override
    public void afterEach(ExtensionContext context) {
        failOnDetections();
    }

    @Override
    public void afterAll(ExtensionContext context) {
        failOnDetections();
    }

    private static void failOnDetections() {
        List<Throwable> found = takeDetections();
        if (found.isEmpty()) {
            return;
        }
        AssertionError failure = new AssertionError(found.size() + " blocking call(s) on a Netty event loop; first: "
                + found.get(0).getMessage());
        found.forEach(failure::addSuppressed);
        throw failure;
    }
}
