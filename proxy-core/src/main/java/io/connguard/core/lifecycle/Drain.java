package io.connguard.core.lifecycle;

import io.connguard.core.config.Durations;
import io.connguard.core.config.ShutdownConfig;
import io.connguard.core.metrics.CloseReason;
import io.connguard.core.server.Listener;
import io.connguard.core.server.ProxyServer;
import io.connguard.core.session.Session;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;

/**
 * The drain after SIGTERM or {@code POST /quitquitquit}: readiness turns 503 at once; connections are
 * still admitted for {@code minDrainDelay} (the application may still be stopping); then new ones are
 * refused with the protocol's shutdown error while open sessions finish, for up to {@code drainTimeout};
 * what is still open then is ended with the administrator-command error, and the proxy stops (exit 0).
 */
public final class Drain {

    private static final Logger LOG = LoggerFactory.getLogger(Drain.class);
    private static final long POLL_MILLIS = 50;
    private static final long KILL_GRACE_NANOS = TimeUnit.SECONDS.toNanos(5);

    private final ProxyServer server;
    private final ScheduledExecutorService timer = Executors.newSingleThreadScheduledExecutor(r -> {
        Thread thread = new Thread(r, "connguard-drain");
        thread.setDaemon(true);
        return thread;
    });
    private volatile boolean started;
    private volatile boolean refusing;
    private long deadline;
    private long killedAt;

    public Drain(ProxyServer server) {
        this.server = server;
    }

    /** Starts the drain; a second call does nothing. */
    public synchronized void start() {
        if (started) {
            return;
        }
        started = true;
        ShutdownConfig shutdown = server.config().shutdown();
        LOG.info("drain started: readiness is now 503; admitting new connections for minDrainDelay {} more",
                Durations.format(shutdown.minDrainDelay()));
        timer.schedule(this::refuse, shutdown.minDrainDelay().toMillis(), TimeUnit.MILLISECONDS);
    }

    public boolean started() {
        return started;
    }

    /** New connections are being refused. */
    public boolean refusing() {
        return refusing;
    }

    private void refuse() {
        refusing = true;
        for (Listener listener : server.listeners()) {
            listener.admission().refuse();
        }
        ShutdownConfig shutdown = server.config().shutdown();
        deadline = System.nanoTime() + shutdown.drainTimeout().toNanos();
        LOG.info("drain: refusing new connections; waiting up to drainTimeout {} for {} open session(s)",
                Durations.format(shutdown.drainTimeout()), server.registry().size());
        timer.schedule(this::poll, 0, TimeUnit.MILLISECONDS);
    }

    private void poll() {
        int open = server.registry().size();
        long now = System.nanoTime();
        if (open == 0) {
            finish();
            return;
        }
        if (killedAt == 0 && now >= deadline) {
            killedAt = now;
            LOG.warn("drain: drainTimeout passed; ending {} open session(s)", open);
            for (Session session : server.registry().all()) {
                session.kill(CloseReason.SHUTDOWN);
            }
        } else if (killedAt != 0 && now - killedAt >= KILL_GRACE_NANOS) {
            LOG.warn("drain: {} session(s) did not close in time; stopping anyway", open);
            finish();
            return;
        }
        timer.schedule(this::poll, POLL_MILLIS, TimeUnit.MILLISECONDS);
    }

    private void finish() {
        LOG.info("drain complete; stopping");
        timer.shutdown();
        server.stopped(0);
    }
}
