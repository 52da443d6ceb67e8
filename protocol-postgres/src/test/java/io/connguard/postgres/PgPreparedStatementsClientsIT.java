package io.connguard.postgres;

import io.connguard.core.testing.LeakGuard;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.UnpooledByteBufAllocator;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.ExtendWith;

import java.io.DataInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;

import static io.connguard.postgres.PgMessages.concat;
import static io.connguard.postgres.PgMessages.int32;
import static io.connguard.postgres.PgMessages.message;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * pgjdbc, with {@code prepareThreshold=1} and with its default, through a minimal transaction-mode pooler
 * built for this test from {@link PgPreparedStatements} and {@link PgServerStatements}: three JDBC
 * connections on their own threads share two real server connections whose LRU holds two statements, so
 * every connection's {@code S_n} is prepared, evicted and prepared again on both server connections under
 * other names, and must still return the right rows. Then {@code pgbench -M prepared} (TPC-B-like, four
 * clients, two server connections holding three of its seven statements): no failed transaction, balances
 * that add up.
 */
@ExtendWith(LeakGuard.class)
class PgPreparedStatementsClientsIT {

    private static final ByteBufAllocator ALLOC = new UnpooledByteBufAllocator(false);

    @Test
    void pgjdbcPreparingAtTheFirstExecution() throws Exception {
        runClients("1");
    }

    @Test
    void pgjdbcPreparingAtItsDefaultThreshold() throws Exception {
        runClients("5");
    }

    @Test
    void pgbenchPreparedTpcbOverTwoServerConnections() throws Exception {
        String database = PgIt.unique("prepared_bench");
        try (Connection direct = PgIt.direct(); java.sql.Statement statement = direct.createStatement()) {
            statement.execute("CREATE DATABASE " + database);
        }
        try {
            Map<String, String> env = new HashMap<>();
            env.put("PGHOST", PgIt.db().host());
            env.put("PGPORT", String.valueOf(PgIt.db().port()));
            env.put("PGUSER", PgIt.db().user());
            env.put("PGDATABASE", database);
            env.put("PGSSLMODE", "disable");
            env.put("PGGSSENCMODE", "disable");
            env.put("PGCONNECT_TIMEOUT", "10");
            if (PgIt.db().password() != null) {
                env.put("PGPASSWORD", PgIt.db().password());
            }
            PgTool.Result init = PgTool.run(env, 300, "pgbench", "-i", "-s", "1", "-q");
            assertThat(init.exitCode()).as(init.toString()).isZero();
            try (MiniPooler pooler = new MiniPooler(2, 3, database)) {
                env.put("PGHOST", "127.0.0.1");
                env.put("PGPORT", String.valueOf(pooler.port()));
                PgTool.Result run = PgTool.run(env, 300, "pgbench", "-n", "-M", "prepared", "-c", "4", "-j", "4", "-t", "20");
                assertThat(run.exitCode()).as(run.toString()).isZero();
                assertThat(run.out()).as(run.toString()).contains("number of transactions actually processed: 80/80")
                        .contains("number of failed transactions: 0 (0.000%)");
                pooler.assertHealthy();
            }
            String url = PgIt.db().jdbcUrl().replaceAll("/[^/?]*(\\?.*)?$", "/" + database);
            try (Connection check = DriverManager.getConnection(url, PgIt.props("cg-prepared-bench-check"))) {
                long history = PgIt.longValue(check, "SELECT coalesce(sum(delta), 0) FROM pgbench_history");
                assertThat(PgIt.longValue(check, "SELECT count(*) FROM pgbench_history")).isEqualTo(80);
                assertThat(PgIt.longValue(check, "SELECT sum(abalance) FROM pgbench_accounts")).isEqualTo(history);
                assertThat(PgIt.longValue(check, "SELECT sum(tbalance) FROM pgbench_tellers")).isEqualTo(history);
            }
        } finally {
            try (Connection direct = PgIt.direct(); java.sql.Statement statement = direct.createStatement()) {
                statement.execute("DROP DATABASE IF EXISTS " + database + " WITH (FORCE)");
            }
        }
    }

    private void runClients(String prepareThreshold) throws Exception {
        try (MiniPooler pooler = new MiniPooler(2, 2, PgIt.db().database())) {
            ExecutorService threads = Executors.newFixedThreadPool(3);
            List<Future<Integer>> results = new ArrayList<>();
            for (int c = 0; c < 3; c++) {
                int client = c;
                results.add(threads.submit(() -> work(pooler.port(), prepareThreshold, client)));
            }
            for (Future<Integer> result : results) {
                assertThat(result.get(120, TimeUnit.SECONDS)).isEqualTo(200);
            }
            threads.shutdown();
            pooler.assertHealthy();
        }
    }

    /** Mixed prepared statements, autocommit and a transaction over several round trips; returns the checks passed. */
    private static int work(int port, String prepareThreshold, int client) throws Exception {
        Properties props = new Properties();
        props.setProperty("user", PgIt.db().user());
        props.setProperty("sslmode", "disable");
        props.setProperty("prepareThreshold", prepareThreshold);
        props.setProperty("assumeMinServerVersion", "15");
        int passed = 0;
        String url = "jdbc:postgresql://127.0.0.1:" + port + "/" + PgIt.db().database();
        try (Connection connection = DriverManager.getConnection(url, props);
             PreparedStatement plus = connection.prepareStatement("SELECT ?::int + " + client);
             PreparedStatement concat = connection.prepareStatement("SELECT ?::text || 'x'");
             PreparedStatement count = connection.prepareStatement("SELECT count(*) FROM generate_series(1, ?)")) {
            for (int i = 0; i < 50; i++) {
                plus.setInt(1, i);
                passed += single(plus) == i + client ? 1 : 0;
                concat.setString(1, "c" + client + "-" + i);
                try (ResultSet rs = concat.executeQuery()) {
                    rs.next();
                    passed += rs.getString(1).equals("c" + client + "-" + i + "x") ? 1 : 0;
                }
                if (i % 5 == 0) {
                    connection.setAutoCommit(false);
                    count.setInt(1, i + 1);
                    long inside = single(count);
                    plus.setInt(1, 1);
                    long other = single(plus);
                    connection.commit();
                    connection.setAutoCommit(true);
                    passed += inside == i + 1 && other == 1 + client ? 10 : 0;
                }
            }
        }
        return passed;
    }

    private static long single(PreparedStatement statement) throws Exception {
        try (ResultSet rs = statement.executeQuery()) {
            rs.next();
            return rs.getLong(1);
        }
    }

    /**
     * A transaction-mode pooler reduced to what the test needs, on one thread polling plain sockets: a client
     * borrows a server connection when it has bytes to send and gives it back at ReadyForQuery {@code I} with
     * nothing in flight. Logins are answered locally with the first server connection's parameters.
     */
    private static final class MiniPooler implements AutoCloseable {
        private final ServerSocket listener = new ServerSocket(0, 50, InetAddress.getLoopbackAddress());
        private final List<PgRawConnection> servers = new ArrayList<>();
        private final List<PgServerStatements> states = new ArrayList<>();
        private final ArrayDeque<Integer> free = new ArrayDeque<>();
        private final ConcurrentLinkedQueue<Client> arrived = new ConcurrentLinkedQueue<>();
        private final List<Client> clients = new ArrayList<>();
        private final List<String> problems = new ArrayList<>();
        private final Thread acceptor;
        private final Thread loop;
        private volatile boolean stopping;

        private final int capacity;

        MiniPooler(int size, int capacity, String database) throws IOException {
            this.capacity = capacity;
            for (int i = 0; i < size; i++) {
                servers.add(new PgRawConnection(PgIt.db(), database, "cg_prepared_jdbc_it"));
                states.add(new PgServerStatements(capacity, ALLOC));
                free.add(i);
            }
            acceptor = new Thread(this::accept, "mini-pooler-accept");
            loop = new Thread(this::serve, "mini-pooler-loop");
            acceptor.start();
            loop.start();
        }

        int port() {
            return listener.getLocalPort();
        }

        private void accept() {
            while (!stopping) {
                try {
                    Socket socket = listener.accept();
                    DataInputStream in = new DataInputStream(socket.getInputStream());
                    OutputStream out = socket.getOutputStream();
                    while (true) {
                        byte[] startup = new byte[in.readInt() - 4];
                        in.readFully(startup);
                        int code = java.nio.ByteBuffer.wrap(startup).getInt();
                        if (code != 80877103 && code != 80877104) {
                            break;
                        }
                        out.write('N');             // SSLRequest, GSSENCRequest: no
                        out.flush();
                    }
                    out.write(concat(message('R', int32(0)), concat(servers.get(0).parameterStatuses().toArray(new byte[0][])),
                            message('K', int32(4242), int32(4242)), message('Z', new byte[] {'I'})));
                    out.flush();
                    arrived.add(new Client(socket));
                } catch (IOException e) {
                    return;
                }
            }
        }

        private void serve() {
            try {
                while (!stopping) {
                    Client next;
                    while ((next = arrived.poll()) != null) {
                        clients.add(next);
                    }
                    boolean busy = false;
                    for (Client client : new ArrayList<>(clients)) {
                        busy |= client.step();
                    }
                    if (!busy) {
                        LockSupport.parkNanos(200_000);
                    }
                }
            } catch (Throwable e) {
                synchronized (problems) {
                    problems.add(e.toString());
                }
            }
        }

        void assertHealthy() throws IOException {
            synchronized (problems) {
                assertThat(problems).isEmpty();
            }
            for (int i = 0; i < servers.size(); i++) {
                assertThat(states.get(i).lost()).isFalse();
            }
        }

        @Override
        public void close() throws Exception {
            stopping = true;
            listener.close();
            acceptor.join(5000);
            loop.join(5000);
            for (int i = 0; i < servers.size(); i++) {
                assertThat(states.get(i).idle()).isTrue();
                List<String> names = servers.get(i).preparedStatementNames();
                assertThat(names).hasSize(states.get(i).preparedCount());
                assertThat(names.size()).isLessThanOrEqualTo(capacity + 5);   // closes wait for a transaction's end
                servers.get(i).close();
            }
        }

        /** One client connection with its statements and, between transactions, no server. */
        private final class Client implements PgPreparedStatements.Output, PgFrameScanner.Sink {
            private final Socket socket;
            private final InputStream in;
            private final OutputStream out;
            private final PgPreparedStatements statements = new PgPreparedStatements(
                    new PgPreparedStatements.Limits(100, 1 << 20), ALLOC);
            private final PgFrameScanner toClientScanner = PgFrameScanner.to(this);
            private int server = -1;
            private byte status = 'I';
            private boolean closed;

            Client(Socket socket) throws IOException {
                this.socket = socket;
                this.in = socket.getInputStream();
                this.out = socket.getOutputStream();
            }

            /** Moves what is available in either direction; true when something moved. */
            boolean step() throws IOException {
                boolean moved = false;
                if (!closed && in.available() > 0 && (server >= 0 || !free.isEmpty())) {
                    if (server < 0) {
                        server = free.poll();
                    }
                    byte[] bytes = in.readNBytes(in.available());
                    if (bytes.length == 5 && bytes[0] == 'X') {
                        closed = true;                  // Terminate: the server connection stays with the pool
                        socket.close();
                    } else {
                        statements.clientBytes(ALLOC.heapBuffer(bytes.length).writeBytes(bytes), states.get(server), this);
                    }
                    moved = true;
                }
                if (server >= 0) {
                    InputStream fromServer = servers.get(server).input();
                    if (fromServer.available() > 0) {
                        byte[] bytes = fromServer.readNBytes(fromServer.available());
                        states.get(server).serverBytes(ALLOC.heapBuffer(bytes.length).writeBytes(bytes), statements, this);
                        moved = true;
                    }
                    if (states.get(server).idle() && statements.atBoundary() && status == 'I') {
                        free.add(server);
                        server = -1;
                    }
                }
                if (closed && server < 0) {
                    clients.remove(this);
                }
                return moved;
            }

            @Override
            public void toServer(ByteBuf buf) {
                try {
                    byte[] bytes = new byte[buf.readableBytes()];
                    buf.readBytes(bytes);
                    servers.get(server).write(bytes);
                } catch (IOException e) {
                    throw new IllegalStateException(e);
                } finally {
                    buf.release();
                }
            }

            @Override
            public void toClient(ByteBuf buf) {
                try {
                    toClientScanner.scan(buf);
                    byte[] bytes = new byte[buf.readableBytes()];
                    buf.readBytes(bytes);
                    if (!closed) {
                        out.write(bytes);
                        out.flush();
                    }
                } catch (IOException e) {
                    closed = true;
                } finally {
                    buf.release();
                }
            }

            @Override
            public void pinned(int pins) {
            }

            @Override
            public void lostSync(String reason) {
                synchronized (problems) {
                    problems.add("lost sync: " + reason);
                }
            }

            @Override
            public int onMessageStart(byte type, int bodyLength) {
                return type == 'Z' ? 1 : 0;
            }

            @Override
            public void onBody(ByteBuf buf, int index, int length) {
                status = buf.getByte(index);
            }

            @Override
            public void onMessageEnd(byte type) {
            }

            @Override
            public void onUnframeable(String reason) {
                lostSync(reason);
            }
        }
    }
}
