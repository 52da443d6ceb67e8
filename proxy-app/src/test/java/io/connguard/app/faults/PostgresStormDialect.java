package io.connguard.app.faults;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;

/** A PostgreSQL storm client: StartupMessage (trust authentication), ReadyForQuery or ErrorResponse, Terminate. */
final class PostgresStormDialect implements StormDialect {

    private final String database;

    PostgresStormDialect(String database) {
        this.database = database;
    }

    @Override
    public Conversation newConversation(String user, String application) {
        return new Conversation() {
            private final ByteArrayOutputStream pending = new ByteArrayOutputStream();

            @Override
            public byte[] onConnected() {
                ByteArrayOutputStream body = new ByteArrayOutputStream();
                for (String s : new String[] {"user", user, "database", database, "application_name", application}) {
                    body.writeBytes(s.getBytes(StandardCharsets.UTF_8));
                    body.write(0);
                }
                body.write(0);
                byte[] params = body.toByteArray();
                return ByteBuffer.allocate(8 + params.length).putInt(8 + params.length).putInt(196608).put(params).array();
            }

            @Override
            public Step onBytes(ByteBuffer in) {
                byte[] chunk = new byte[in.remaining()];
                in.get(chunk);
                pending.writeBytes(chunk);
                ByteBuffer messages = ByteBuffer.wrap(pending.toByteArray());
                while (messages.remaining() >= 5) {
                    int start = messages.position();
                    byte type = messages.get();
                    int length = messages.getInt();
                    if (messages.remaining() < length - 4) {
                        messages.position(start);
                        break;
                    }
                    byte[] body = new byte[length - 4];
                    messages.get(body);
                    if (type == 'Z') {
                        return new Ready();
                    }
                    if (type == 'E') {
                        return refused(body);
                    }
                }
                byte[] rest = new byte[messages.remaining()];
                messages.get(rest);
                pending.reset();
                pending.writeBytes(rest);
                return new NeedMore();
            }

            @Override
            public byte[] goodbye() {
                return new byte[] {'X', 0, 0, 0, 4};
            }
        };
    }

    private static Refused refused(byte[] body) {
        String code = "";
        String message = "";
        int i = 0;
        while (i < body.length && body[i] != 0) {
            int end = i + 1;
            while (end < body.length && body[end] != 0) {
                end++;
            }
            String value = new String(body, i + 1, end - i - 1, StandardCharsets.UTF_8);
            if (body[i] == 'C') {
                code = value;
            } else if (body[i] == 'M') {
                message = value;
            }
            i = end + 1;
        }
        return new Refused(code, message);
    }
}
