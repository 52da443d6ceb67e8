package io.connguard.core.server;

import io.connguard.core.testing.LeakGuard;
import io.connguard.core.testing.LineClient;
import io.connguard.core.testing.TestProxy;
import io.connguard.core.testing.TestUpstreams;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

import java.io.IOException;
import java.net.ServerSocket;
import java.net.SocketException;
import java.util.ArrayList;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

/**
 * A listener's port across runs: taken by another proxy it is an error that leaves the running one alone;
 * stopping closes every connection, and the next run binds the port although they linger in TIME_WAIT.
 */
@ExtendWith(LeakGuard.class)
class ListenIT {

    private static TestUpstreams upstreams;

    @BeforeAll
    static void servers() {
        upstreams = new TestUpstreams();
    }

    @AfterAll
    static void stop() {
        upstreams.close();
    }

    private static TestProxy proxy(int port) {
        return TestProxy.start("""
                listeners:
                  - name: relay
                    protocol: line
                    listen: 127.0.0.1:%d
                    upstream: 127.0.0.1:%d
                clients:
                  defaults:
                    maxConnections: 0
                """.formatted(port, upstreams.echo().getPort()));
    }

    private static int freePort() throws IOException {
        try (ServerSocket socket = new ServerSocket(0)) {
            return socket.getLocalPort();
        }
    }

    @Test
    void aSecondProxyOnTheSamePortIsRefusedAndTheFirstKeepsEveryConnection() throws Exception {
        int port = freePort();
        try (TestProxy first = proxy(port)) {
            assertThatThrownBy(() -> proxy(port)).hasMessageContaining("cannot listen on 127.0.0.1:" + port)
                    .hasMessageContaining("Address already in use");
            for (int i = 0; i < 16; i++) {
                try (LineClient client = LineClient.hello(port, "u" + i, "db", "app")) {
                    assertThat(client.readLine()).isEqualTo("WELCOME");
                    client.send("ping " + i + "\n");
                    assertThat(client.readLine()).isEqualTo("ping " + i);
                }
            }
        }
    }

    @Test
    void stoppingClosesEveryConnectionAndARestartOnTheSamePortSucceedsWhileTheyLinger() throws Exception {
        int port = freePort();
        List<LineClient> clients = new ArrayList<>();
        try {
            try (TestProxy before = proxy(port)) {
                for (int i = 0; i < 8; i++) {
                    LineClient client = LineClient.hello(port, "u" + i, "db", "app");
                    assertThat(client.readLine()).isEqualTo("WELCOME");
                    clients.add(client);
                }
                // Traffic in flight keeps the loops busy as they are told to stop.
                for (LineClient client : clients) {
                    client.send(new byte[256 * 1024]);
                }
            }
            // Stopping closed every connection (one still open would time out reading here), and the proxy
            // closed first, so its side of those it ended cleanly waits in TIME_WAIT on this port.
            for (LineClient client : clients) {
                readToTheEnd(client);
            }
            try (TestProxy after = proxy(port);
                 LineClient client = LineClient.hello(port, "again", "db", "app")) {
                assertThat(client.readLine()).isEqualTo("WELCOME");
                assertThat(after.port("relay")).isEqualTo(port);
            }
        } finally {
            for (LineClient client : clients) {
                client.close();
            }
        }
    }

    /** Reads until the end of the stream or a reset (the proxy closed with the client's bytes unread). */
    private static void readToTheEnd(LineClient client) throws IOException {
        try {
            client.input().readAllBytes();
        } catch (SocketException reset) {
            assertThat(reset).hasMessageContaining("reset");
        }
    }
}
