package io.connguard.core.testing;

import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.io.InputStream;
import java.net.ConnectException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketException;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.Random;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;

/**
 * The fault relay against local targets it does not control: the Netty echo server for the byte faults,
 * and a plain server socket whose accepted end the test drives for the connection faults.
 */
class FaultRelayTest {

    private TestUpstreams upstreams;
    private ServerSocket target;

    @BeforeEach
    void targets() throws IOException {
        upstreams = new TestUpstreams();
        target = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
    }

    @AfterEach
    void close() throws IOException {
        upstreams.close();
        target.close();
    }

    private static Socket connect(FaultRelay relay) throws IOException {
        Socket socket = new Socket();
        socket.connect(new InetSocketAddress(InetAddress.getLoopbackAddress(), relay.port()), 2000);
        socket.setSoTimeout(5000);
        return socket;
    }

    private static byte[] readFully(InputStream in, int n) throws IOException {
        byte[] bytes = in.readNBytes(n);
        assertThat(bytes).as("bytes before end of stream").hasSize(n);
        return bytes;
    }

    @Test
    void relaysAMegabyteEachWayUnchanged() throws Exception {
        byte[] data = new byte[1 << 20];
        new Random(7).nextBytes(data);
        try (FaultRelay relay = FaultRelay.to(upstreams.echo()); Socket socket = connect(relay)) {
            Thread writer = new Thread(() -> {
                try {
                    socket.getOutputStream().write(data);
                } catch (IOException ignored) {
                    // the reader's assertion reports it
                }
            });
            writer.start();
            assertThat(readFully(socket.getInputStream(), data.length)).isEqualTo(data);
            writer.join();
            assertThat(relay.accepted()).isEqualTo(1);
        }
    }

    @Test
    void latencyDelaysEachDirection() throws Exception {
        try (FaultRelay relay = FaultRelay.to(upstreams.echo()); Socket socket = connect(relay)) {
            relay.latency(Duration.ofMillis(200));
            long start = System.nanoTime();
            socket.getOutputStream().write("ping".getBytes(StandardCharsets.US_ASCII));
            assertThat(new String(readFully(socket.getInputStream(), 4), StandardCharsets.US_ASCII)).isEqualTo("ping");
            assertThat(Duration.ofNanos(System.nanoTime() - start)).as("200 ms there, 200 ms back")
                    .isGreaterThanOrEqualTo(Duration.ofMillis(390));
        }
    }

    @Test
    void byteAtATimeSpacesEveryByteAndKeepsTheirOrder() throws Exception {
        try (FaultRelay relay = FaultRelay.to(upstreams.echo()); Socket socket = connect(relay)) {
            relay.byteAtATime(Duration.ofMillis(20));
            long start = System.nanoTime();
            socket.getOutputStream().write("0123456789".getBytes(StandardCharsets.US_ASCII));
            assertThat(new String(readFully(socket.getInputStream(), 10), StandardCharsets.US_ASCII))
                    .isEqualTo("0123456789");
            // 10 bytes, 20 ms apart on the way there (the way back overlaps with it): at least 9 gaps.
            assertThat(Duration.ofNanos(System.nanoTime() - start)).isGreaterThanOrEqualTo(Duration.ofMillis(180));
        }
    }

    @Test
    void aStallHoldsTheBytesUntilResumed() throws Exception {
        try (FaultRelay relay = FaultRelay.to(upstreams.echo()); Socket socket = connect(relay)) {
            relay.stall();
            socket.getOutputStream().write("held".getBytes(StandardCharsets.US_ASCII));
            socket.setSoTimeout(300);
            assertThat(catchThrowable(() -> socket.getInputStream().read())).isInstanceOf(SocketTimeoutException.class);
            relay.resume();
            socket.setSoTimeout(5000);
            assertThat(new String(readFully(socket.getInputStream(), 4), StandardCharsets.US_ASCII)).isEqualTo("held");
        }
    }

    @Test
    void resetAbortsBothSides() throws Exception {
        try (FaultRelay relay = FaultRelay.to((InetSocketAddress) target.getLocalSocketAddress());
             Socket client = connect(relay);
             Socket server = target.accept()) {
            server.setSoTimeout(5000);
            client.getOutputStream().write(1);
            assertThat(server.getInputStream().read()).isEqualTo(1);
            relay.reset();
            assertThat(catchThrowable(() -> server.getInputStream().read()))
                    .as("the target sees an RST, not an orderly end").isInstanceOf(SocketException.class)
                    .hasMessageContaining("reset");
            assertThat(catchThrowable(() -> client.getInputStream().read())).isInstanceOf(SocketException.class)
                    .hasMessageContaining("reset");
        }
    }

    @Test
    void halfCloseEndsTheWayToTheTargetAndKeepsTheWayBack() throws Exception {
        try (FaultRelay relay = FaultRelay.to((InetSocketAddress) target.getLocalSocketAddress());
             Socket client = connect(relay);
             Socket server = target.accept()) {
            server.setSoTimeout(5000);
            relay.halfClose();
            assertThat(server.getInputStream().read()).as("end of stream at the target").isEqualTo(-1);
            server.getOutputStream().write("bye".getBytes(StandardCharsets.US_ASCII));
            server.shutdownOutput();
            assertThat(new String(client.getInputStream().readAllBytes(), StandardCharsets.US_ASCII)).isEqualTo("bye");
        }
    }

    @Test
    void refusedConnectsFailAtOnceAndTheSamePortAcceptsAgainLater() throws Exception {
        try (FaultRelay relay = FaultRelay.to(upstreams.echo())) {
            relay.refuseConnects();
            assertThat(catchThrowable(() -> connect(relay).close())).isInstanceOf(ConnectException.class);
            relay.acceptConnects();
            try (Socket socket = connect(relay)) {
                socket.getOutputStream().write(42);
                assertThat(socket.getInputStream().read()).isEqualTo(42);
            }
        }
    }

    @Test
    void blackholedConnectsHangUntilTheirTimeout() throws Exception {
        try (FaultRelay relay = FaultRelay.to(upstreams.echo())) {
            relay.blackholeConnects();
            long start = System.nanoTime();
            Throwable failure = catchThrowable(() -> {
                try (Socket socket = new Socket()) {
                    socket.connect(new InetSocketAddress(InetAddress.getLoopbackAddress(), relay.port()), 500);
                }
            });
            assertThat(failure).isInstanceOf(SocketTimeoutException.class);
            assertThat(Duration.ofNanos(System.nanoTime() - start)).isGreaterThanOrEqualTo(Duration.ofMillis(450));
            relay.acceptConnects();
            try (Socket socket = connect(relay)) {
                socket.getOutputStream().write(7);
                assertThat(socket.getInputStream().read()).isEqualTo(7);
            }
            assertThat(relay.accepted()).as("the blackholed connect never reached the relay").isEqualTo(1);
        }
    }
}
