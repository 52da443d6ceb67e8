package io.connguard.core.lifecycle;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Arrays;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

/**
 * Notices when the configuration file's content changes and asks for a reload. It compares content, not
 * timestamps, because a Kubernetes ConfigMap update swaps a symlink ({@code ..data}) rather than writing
 * the file; polling every two seconds sees that reliably where inotify on the link does not.
 */
public final class ConfigWatcher implements AutoCloseable {

    private static final Logger LOG = LoggerFactory.getLogger(ConfigWatcher.class);
    public static final long INTERVAL_MILLIS = 2000;

    private final Path file;
    private final String what;
    private final Runnable onChange;
    private final ScheduledExecutorService timer = Executors.newSingleThreadScheduledExecutor(r -> {
        Thread thread = new Thread(r, "connguard-config-watcher");
        thread.setDaemon(true);
        return thread;
    });
    private byte[] lastDigest;

    public ConfigWatcher(Path file, Runnable onChange) {
        this(file, "configuration file", onChange);
    }

    /** Watches {@code file}, named {@code what} in the log line of a change. */
    public ConfigWatcher(Path file, String what, Runnable onChange) {
        this.file = file;
        this.what = what;
        this.onChange = onChange;
        this.lastDigest = digest();
    }

    public void start() {
        timer.scheduleWithFixedDelay(this::check, INTERVAL_MILLIS, INTERVAL_MILLIS, TimeUnit.MILLISECONDS);
    }

    private void check() {
        byte[] now = digest();
        if (now == null || Arrays.equals(now, lastDigest)) {
            return;
        }
        lastDigest = now;
        LOG.info("{} {} changed; reloading", what, file);
        try {
            onChange.run();
        } catch (RuntimeException e) {
            LOG.warn("reload after a file change failed", e);
        }
    }

    private byte[] digest() {
        try {
            return MessageDigest.getInstance("SHA-256").digest(Files.readAllBytes(file));
        } catch (IOException e) {
            return lastDigest;
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    @Override
    public void close() {
        timer.shutdownNow();
    }
}
