package io.connguard.core.config;

import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.UnknownHostException;

/** A {@code host:port} pair as written in the configuration ({@code [::1]:6432} for IPv6). */
public record HostPort(String host, int port) {

    /** Parses {@code host:port}; throws IllegalArgumentException with a message fit for a config error. */
    public static HostPort parse(String text) {
        String host;
        String port;
        if (text.startsWith("[")) {
            int close = text.indexOf(']');
            if (close < 0 || close + 1 >= text.length() || text.charAt(close + 1) != ':') {
                throw new IllegalArgumentException("expected [ipv6]:port, got '" + text + "'");
            }
            host = text.substring(1, close);
            port = text.substring(close + 2);
        } else {
            int colon = text.lastIndexOf(':');
            if (colon <= 0 || text.indexOf(':') != colon) {
                throw new IllegalArgumentException("expected host:port, got '" + text + "'");
            }
            host = text.substring(0, colon);
            port = text.substring(colon + 1);
        }
        int number;
        try {
            number = Integer.parseInt(port);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("port must be a number from 0 to 65535, got '" + port + "'");
        }
        if (number < 0 || number > 65535) {
            throw new IllegalArgumentException("port must be a number from 0 to 65535, got " + number);
        }
        if (host.isBlank()) {
            throw new IllegalArgumentException("host is missing in '" + text + "'");
        }
        return new HostPort(host, number);
    }

    /** An address to connect to, resolved when the connection is made (DNS may change). */
    public InetSocketAddress unresolved() {
        return InetSocketAddress.createUnresolved(host, port);
    }

    /** An address to bind to. */
    public InetSocketAddress resolved() {
        return new InetSocketAddress(host, port);
    }

    /** Whether the host is a loopback address (names are resolved; an unresolvable name is not loopback). */
    public boolean isLoopback() {
        if (host.equalsIgnoreCase("localhost")) {
            return true;
        }
        try {
            return InetAddress.getByName(host).isLoopbackAddress();
        } catch (UnknownHostException e) {
            return false;
        }
    }

    @Override
    public String toString() {
        return host.indexOf(':') >= 0 ? "[" + host + "]:" + port : host + ":" + port;
    }
}
