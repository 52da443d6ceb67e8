package io.connguard.app.faults;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.StandardSocketOptions;
import java.nio.ByteBuffer;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.nio.channels.SocketChannel;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * Thousands of raw-protocol clients on one thread and one selector, so that a storm of connections costs
 * the test machine almost nothing but the sockets: every client connects at once, speaks its dialect
 * until it is ready or refused, holds a ready session for a while, then says goodbye and closes.
 */
final class StormClients {

    /** How one client's connection ended. */
    enum Outcome { READY, REFUSED, CLOSED_WITHOUT_ANSWER, CONNECT_FAILED, UNFINISHED }

    /** What the storm came to. */
    record Result(Map<Outcome, Integer> outcomes, Map<String, Integer> refusals, Duration took) {
        int count(Outcome outcome) {
            return outcomes.getOrDefault(outcome, 0);
        }
    }

    private final InetSocketAddress target;
    private final StormDialect dialect;
    private final Duration hold;

    StormClients(InetSocketAddress target, StormDialect dialect, Duration hold) {
        this.target = target;
        this.dialect = dialect;
        this.hold = hold;
    }

    private final class Client {
        final StormDialect.Conversation conversation;
        final SocketChannel channel;
        Outcome outcome;
        long closeAt;

        Client(StormDialect.Conversation conversation, SocketChannel channel) {
            this.conversation = conversation;
            this.channel = channel;
        }
    }

    /** Opens {@code count} connections at once, users and applications chosen by index, and runs them to their end. */
    Result run(int count, java.util.function.IntFunction<String[]> userAndApplication, Duration deadline)
            throws IOException {
        long start = System.nanoTime();
        long end = start + deadline.toNanos();
        Map<Outcome, Integer> outcomes = new EnumMap<>(Outcome.class);
        Map<String, Integer> refusals = new TreeMap<>();
        Deque<Client> holding = new ArrayDeque<>();
        List<Client> all = new ArrayList<>(count);
        ByteBuffer buffer = ByteBuffer.allocate(64 * 1024);
        int open = 0;
        try (Selector selector = Selector.open()) {
            for (int i = 0; i < count; i++) {
                String[] who = userAndApplication.apply(i);
                SocketChannel channel = SocketChannel.open();
                channel.configureBlocking(false);
                channel.setOption(StandardSocketOptions.TCP_NODELAY, true);
                Client client = new Client(dialect.newConversation(who[0], who[1]), channel);
                all.add(client);
                channel.connect(target);
                channel.register(selector, SelectionKey.OP_CONNECT, client);
                open++;
            }
            while (open > 0 && System.nanoTime() < end) {
                selector.select(10);
                for (SelectionKey key : selector.selectedKeys()) {
                    Client client = (Client) key.attachment();
                    if (client.outcome != null) {
                        continue;
                    }
                    try {
                        if (key.isConnectable()) {
                            client.channel.finishConnect();
                            send(client, client.conversation.onConnected());
                            key.interestOps(SelectionKey.OP_READ);
                        } else if (key.isReadable()) {
                            buffer.clear();
                            int n = client.channel.read(buffer);
                            if (n < 0) {
                                open -= finish(client, Outcome.CLOSED_WITHOUT_ANSWER);
                                continue;
                            }
                            buffer.flip();
                            StormDialect.Step step = client.conversation.onBytes(buffer);
                            if (step instanceof StormDialect.Send send) {
                                send(client, send.bytes());
                            } else if (step instanceof StormDialect.Ready) {
                                client.outcome = Outcome.READY;
                                client.closeAt = System.nanoTime() + hold.toNanos();
                                key.interestOps(0);
                                holding.add(client);
                            } else if (step instanceof StormDialect.Refused refused) {
                                refusals.merge(refused.code() + " " + refused.message().replaceAll("[0-9]+", "#"), 1,
                                        Integer::sum);
                                open -= finish(client, Outcome.REFUSED);
                            }
                        }
                    } catch (IOException e) {
                        open -= finish(client, key.isValid() && key.isConnectable()
                                ? Outcome.CONNECT_FAILED : Outcome.CLOSED_WITHOUT_ANSWER);
                    }
                }
                selector.selectedKeys().clear();
                long now = System.nanoTime();
                while (!holding.isEmpty() && holding.peek().closeAt <= now) {
                    Client client = holding.poll();
                    try {
                        send(client, client.conversation.goodbye());
                    } catch (IOException ignored) {
                        // the session ended on its own; it was ready, which is what counts
                    }
                    close(client);
                    open--;
                }
            }
        }
        for (Client client : all) {
            Outcome outcome = client.outcome == null ? Outcome.UNFINISHED : client.outcome;
            outcomes.merge(outcome, 1, Integer::sum);
            close(client);
        }
        return new Result(outcomes, refusals, Duration.ofNanos(System.nanoTime() - start));
    }

    private static void send(Client client, byte[] bytes) throws IOException {
        ByteBuffer out = ByteBuffer.wrap(bytes);
        while (out.hasRemaining()) {
            if (client.channel.write(out) == 0) {
                Thread.onSpinWait(); // a few dozen bytes into a fresh socket buffer: never waits for long
            }
        }
    }

    private static int finish(Client client, Outcome outcome) {
        client.outcome = outcome;
        close(client);
        return 1;
    }

    private static void close(Client client) {
        try {
            client.channel.close();
        } catch (IOException ignored) {
            // already closed
        }
    }
}
