package io.connguard.core.lifecycle;

import io.connguard.core.server.ProxyServer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import sun.misc.Signal;

import java.util.concurrent.atomic.AtomicBoolean;

/**
 * Maps process signals to the lifecycle: SIGTERM and SIGINT start the drain (a second one during the
 * drain exits at once with 143 / 130), SIGHUP reloads the configuration.
 */
public final class Signals {

    private static final Logger LOG = LoggerFactory.getLogger(Signals.class);

    private Signals() {
    }

    public static void install(ProxyServer server) {
        AtomicBoolean stopping = new AtomicBoolean();
        stopOn("TERM", 143, server, stopping);
        stopOn("INT", 130, server, stopping);
        try {
            Signal.handle(new Signal("HUP"), signal -> {
                Thread reload = new Thread(() -> {
                    LOG.info("SIGHUP: reloading the configuration");
                    server.reload();
                }, "connguard-sighup");
                reload.setDaemon(true);
                reload.start();
            });
        } catch (IllegalArgumentException e) {
            LOG.debug("SIGHUP is not available on this platform");
        }
    }

    private static void stopOn(String name, int exitCode, ProxyServer server, AtomicBoolean stopping) {
        Signal.handle(new Signal(name), signal -> {
            if (stopping.compareAndSet(false, true)) {
                LOG.info("SIG{}: draining (send it again to stop at once)", name);
                server.drain();
            } else {
                LOG.warn("SIG{} during the drain: stopping now", name);
                Runtime.getRuntime().halt(exitCode);
            }
        });
    }
}
