package io.connguard.core.server;

import io.netty.util.NetUtil;
import io.netty.util.concurrent.EventExecutor;
import io.netty.util.concurrent.Future;
import io.netty.util.concurrent.Promise;

import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.UnknownHostException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ThreadPoolExecutor;
import java.util.concurrent.TimeUnit;

/**
 * Resolves upstream host names off the event loops (the JVM resolver blocks; an event loop never may).
 * IP literals are converted in place. Results honour the JVM's DNS cache, so a sidecar in front of a
 * DNS name that moves (a failover) follows it within the cache TTL.
 */
public final class UpstreamResolver implements AutoCloseable {

    private final ExecutorService executor = new ThreadPoolExecutor(0, 2, 30, TimeUnit.SECONDS,
            new LinkedBlockingQueue<>(), r -> {
                Thread thread = new Thread(r, "connguard-resolver");
                thread.setDaemon(true);
                return thread;
            });

    public Future<InetSocketAddress> resolve(InetSocketAddress address, EventExecutor loop) {
        Promise<InetSocketAddress> promise = loop.newPromise();
        if (!address.isUnresolved()) {
            return promise.setSuccess(address);
        }
        String host = address.getHostString();
        if (NetUtil.isValidIpV4Address(host) || NetUtil.isValidIpV6Address(host)) {
            return promise.setSuccess(new InetSocketAddress(NetUtil.createInetAddressFromIpAddressString(host),
                    address.getPort()));
        }
        executor.execute(() -> {
            try {
                promise.trySuccess(new InetSocketAddress(InetAddress.getByName(host), address.getPort()));
            } catch (UnknownHostException e) {
                promise.tryFailure(new UnknownHostException("cannot resolve upstream host " + host));
            } catch (RuntimeException e) {
                promise.tryFailure(e);
            }
        });
        return promise;
    }

    @Override
    public void close() {
        executor.shutdownNow();
    }
}
