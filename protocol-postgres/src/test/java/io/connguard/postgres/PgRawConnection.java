package io.connguard.postgres;

import io.connguard.core.testing.Database;

import java.io.DataInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

import static org.assertj.core.api.Assertions.fail;

/** A plain protocol 3.0 connection to the test server, logged in with trust, for tests that speak bytes. */
final class PgRawConnection implements AutoCloseable {

    private final Socket socket;
    private final DataInputStream in;
    private final OutputStream out;
    private final List<byte[]> parameterStatuses = new ArrayList<>();

    PgRawConnection(Database db, String application) throws IOException {
        this(db, db.database(), application);
    }

    PgRawConnection(Database db, String database, String application) throws IOException {
        socket = new Socket(db.host(), db.port());
        socket.setSoTimeout(20_000);
        in = new DataInputStream(socket.getInputStream());
        out = socket.getOutputStream();
        out.write(PgMessages.startup("user", db.user(), "database", database, "application_name", application));
        while (true) {
            byte[] message = readMessage();
            if (message[0] == 'R' && ByteBuffer.wrap(message, 5, 4).getInt() != 0) {
                fail("the server asks " + db.user() + " for a password; this test needs trust on " + db.hostPort()
                        + " (" + PgIt.SETUP + ")");
            }
            if (message[0] == 'E') {
                fail("login failed: " + new String(message, StandardCharsets.UTF_8));
            }
            if (message[0] == 'S') {
                parameterStatuses.add(message);
            }
            if (message[0] == 'Z') {
                return;
            }
        }
    }

    /** The ParameterStatus messages of the login, whole. */
    List<byte[]> parameterStatuses() {
        return parameterStatuses;
    }

    InputStream input() {
        return in;
    }

    void write(byte[] bytes) throws IOException {
        out.write(bytes);
        out.flush();
    }

    /** One whole message, header included. */
    byte[] readMessage() throws IOException {
        byte type = in.readByte();
        int length = in.readInt();
        byte[] message = new byte[1 + length];
        message[0] = type;
        ByteBuffer.wrap(message, 1, 4).putInt(length);
        in.readFully(message, 5, length - 4);
        return message;
    }

    /** The names in pg_prepared_statements, asked with a simple Query (the connection must be idle). */
    List<String> preparedStatementNames() throws IOException {
        write(PgMessages.query("SELECT name FROM pg_prepared_statements ORDER BY name"));
        List<String> names = new ArrayList<>();
        while (true) {
            byte[] message = readMessage();
            if (message[0] == 'D') {
                ByteBuffer row = ByteBuffer.wrap(message, 7, message.length - 7);
                byte[] value = new byte[row.getInt()];
                row.get(value);
                names.add(new String(value, StandardCharsets.UTF_8));
            } else if (message[0] == 'Z') {
                return names;
            }
        }
    }

    @Override
    public void close() throws IOException {
        out.write(PgMessages.terminate());
        socket.close();
    }
}
