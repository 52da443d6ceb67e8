package io.connguard.core.server;

import io.connguard.core.lifecycle.ConfigWatcher;

import java.util.Collection;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;

/**
 * Checks the client TLS certificate files of every listener at the configuration watcher's cadence, on a
 * thread of its own (file reads never run on an event loop), so a renewed certificate Secret is used for
 * new handshakes within seconds, without a reload and without dropping a session.
 */
final class ClientTlsWatcher implements AutoCloseable {

    private final Supplier<Collection<Listener>> listeners;
    private final ScheduledExecutorService timer = Executors.newSingleThreadScheduledExecutor(r -> {
        Thread thread = new Thread(r, "connguard-tls-watcher");
        thread.setDaemon(true);
        return thread;
    });

    ClientTlsWatcher(Supplier<Collection<Listener>> listeners) {
        this.listeners = listeners;
    }

    void start() {
        timer.scheduleWithFixedDelay(this::check, ConfigWatcher.INTERVAL_MILLIS, ConfigWatcher.INTERVAL_MILLIS,
                TimeUnit.MILLISECONDS);
    }

    private void check() {
        for (Listener listener : listeners.get()) {
            ClientTlsContext tls = listener.clientTls();
            if (tls != null) {
                try {
                    tls.reloadIfChanged();
                } catch (RuntimeException e) {
                    org.slf4j.LoggerFactory.getLogger(ClientTlsWatcher.class)
                            .warn("checking the client TLS certificate of listener {} failed", listener.name(), e);
                }
            }
        }
    }

    @Override
    public void close() {
        timer.shutdownNow();
    }
}
