package io.connguard.core.config;

import java.net.InetAddress;
import java.net.InetSocketAddress;

/**
 * Whether two listen addresses would bind the same socket, decided as the bind decides it: a host name is
 * resolved as {@link HostPort#resolved()} resolves it for the bind ({@code localhost} is {@code 127.0.0.1}),
 * and a wildcard address ({@code 0.0.0.0}, {@code ::}) takes its port on every address. Port 0 (a port the
 * system picks) never conflicts. Catching this while the configuration is read makes it a configuration
 * error (exit 1, both keys named) instead of a bind failure halfway through the start.
 */
final class ListenAddresses {

    private ListenAddresses() {
    }

    static boolean sameSocket(HostPort a, HostPort b) {
        if (a.port() == 0 || a.port() != b.port()) {
            return false;
        }
        if (a.host().equalsIgnoreCase(b.host()) || wildcard(a) || wildcard(b)) {
            return true;
        }
        InetAddress first = address(a);
        InetAddress second = address(b);
        return first != null && first.equals(second);
    }

    /** What makes two different-looking addresses the same socket, for the error message ("" if they look alike). */
    static String why(HostPort a, HostPort b) {
        if (a.host().equalsIgnoreCase(b.host())) {
            return "";
        }
        if (wildcard(a) || wildcard(b)) {
            return ": a wildcard address binds the port on every address";
        }
        return ": both resolve to " + address(a).getHostAddress();
    }

    private static boolean wildcard(HostPort address) {
        if (address.host().equals("*")) {
            return true;
        }
        InetAddress resolved = address(address);
        return resolved != null && resolved.isAnyLocalAddress();
    }

    /** The address the bind would use, or null when the name does not resolve (the bind then reports it). */
    private static InetAddress address(HostPort address) {
        InetSocketAddress socket = address.resolved();
        return socket.isUnresolved() ? null : socket.getAddress();
    }
}
