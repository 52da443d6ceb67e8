package io.connguard.postgres;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static io.connguard.postgres.PgMessages.concat;
import static io.connguard.postgres.PgMessages.cstring;
import static io.connguard.postgres.PgMessages.int16;
import static io.connguard.postgres.PgMessages.int32;
import static io.connguard.postgres.PgMessages.message;

/**
 * A small model of a PostgreSQL backend's extended-query rules, for tests: named and unnamed statements
 * and portals, the errors for duplicate and unknown names, skipping to Sync after an error, Describe
 * answers whose column is named after the statement's text and Execute answers whose row is that text
 * (so a client can tell which statement ran), DISCARD ALL / DEALLOCATE ALL, and failures on demand.
 */
final class PgModelServer {

    private final Map<String, String> statements = new HashMap<>();
    private final Map<String, String> portals = new HashMap<>();
    /** The statement each portal was bound from: closing a statement closes its portals. */
    private final Map<String, String> portalStatements = new HashMap<>();
    private final Set<String> failingTexts = new HashSet<>();
    private final Set<String> staleNames = new HashSet<>();
    private boolean skipping;
    private byte status = 'I';
    /** Every message received, as "P cg_1 SELECT 1", "B  cg_1", ... */
    final List<String> received = new ArrayList<>();

    /** Parsing {@code text} fails with 42P01 from now on (a dropped table). */
    void failParsesOf(String text) {
        failingTexts.add(text);
    }

    void parsesSucceed() {
        failingTexts.clear();
    }

    /** The next Bind of statement {@code name} fails with "cached plan must not change result type". */
    void makeStale(String name) {
        staleNames.add(name);
    }

    Set<String> statementNames() {
        return statements.keySet();
    }

    /** Consumes whole messages from {@code client} and returns the responses. */
    byte[] receive(byte[] client) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteBuffer in = ByteBuffer.wrap(client);
        while (in.hasRemaining()) {
            char type = (char) in.get();
            byte[] body = new byte[in.getInt() - 4];
            in.get(body);
            handle(type, ByteBuffer.wrap(body), out);
        }
        return out.toByteArray();
    }

    private void handle(char type, ByteBuffer body, ByteArrayOutputStream out) {
        if (type == 'S') {
            received.add("S");
            skipping = false;
            portals.remove("");
            out.writeBytes(message('Z', new byte[] {status}));
            return;
        }
        if (type == 'H') {
            return;
        }
        if (skipping) {
            received.add("skipped " + type);
            return;
        }
        switch (type) {
            case 'P' -> {
                String name = read(body);
                String text = read(body);
                received.add("P " + name + " " + text);
                if (!name.isEmpty() && statements.containsKey(name)) {
                    error(out, "42P05", "prepared statement \"" + name + "\" already exists");
                } else if (failingTexts.contains(text)) {
                    error(out, "42P01", "relation \"dropped\" does not exist");
                } else {
                    statements.put(name, text);
                    out.writeBytes(message('1'));
                }
            }
            case 'B' -> {
                String portal = read(body);
                String name = read(body);
                received.add("B " + portal + " " + name);
                String text = statements.get(name);
                if (text == null) {
                    error(out, "26000", "prepared statement \"" + name + "\" does not exist");
                } else if (staleNames.remove(name)) {
                    error(out, "0A000", "cached plan must not change result type");
                } else {
                    portals.put(portal, text + body.remaining());   // the parameters' length shows they arrived whole
                    portalStatements.put(portal, name);
                    out.writeBytes(message('2'));
                }
            }
            case 'D' -> {
                char kind = (char) body.get();
                String name = read(body);
                received.add("D " + kind + " " + name);
                String text = kind == 'S' ? statements.get(name) : portals.get(name);
                if (text == null) {
                    error(out, kind == 'S' ? "26000" : "34000", (kind == 'S' ? "prepared statement \"" : "portal \"")
                            + name + "\" does not exist");
                } else {
                    if (kind == 'S') {
                        out.writeBytes(message('t', int16(0)));
                    }
                    out.writeBytes(message('T', int16(1), cstring(text), int32(0), int16(0), int32(25), int16(-1),
                            int32(-1), int16(0)));
                }
            }
            case 'E' -> {
                String portal = read(body);
                received.add("E " + portal);
                String text = portals.get(portal);
                if (text == null) {
                    error(out, "34000", "portal \"" + portal + "\" does not exist");
                } else {
                    byte[] value = text.getBytes(StandardCharsets.UTF_8);
                    out.writeBytes(message('D', int16(1), int32(value.length), value));
                    out.writeBytes(message('C', cstring("SELECT 1")));
                }
            }
            case 'C' -> {
                char kind = (char) body.get();
                String name = read(body);
                received.add("C " + kind + " " + name);
                (kind == 'S' ? statements : portals).remove(name);
                if (kind == 'S') {
                    portalStatements.entrySet().removeIf(e -> {
                        if (e.getValue().equals(name)) {
                            portals.remove(e.getKey());
                            return true;
                        }
                        return false;
                    });
                }
                out.writeBytes(message('3'));
            }
            case 'Q' -> {
                String text = read(body);
                received.add("Q " + text);
                if (text.equals("BEGIN")) {
                    status = 'T';
                } else if (text.equals("COMMIT")) {
                    status = 'I';
                }
                if (text.equals("DISCARD ALL") || text.equals("DEALLOCATE ALL")) {
                    statements.clear();
                    out.writeBytes(message('C', cstring(text)));
                } else {
                    out.writeBytes(message('C', cstring("SELECT 1")));
                }
                out.writeBytes(message('Z', new byte[] {status}));
            }
            default -> throw new AssertionError("model server got message " + type);
        }
    }

    private void error(ByteArrayOutputStream out, String code, String text) {
        skipping = true;
        out.writeBytes(errorResponse(code, text));
    }

    /** The ErrorResponse layout connguard writes as well: S, V, C, M. */
    static byte[] errorResponse(String code, String text) {
        return message('E', cstring("SERROR"), cstring("VERROR"), cstring("C" + code), cstring("M" + text),
                new byte[] {0});
    }

    private static String read(ByteBuffer buf) {
        int start = buf.position();
        while (buf.get() != 0) {
            // find the terminator
        }
        return new String(buf.array(), start, buf.position() - start - 1, StandardCharsets.UTF_8);
    }

    // ------------------------------------------------------------------ client messages for tests

    static byte[] parse(String name, String text, int... types) {
        byte[][] oids = new byte[types.length][];
        for (int i = 0; i < types.length; i++) {
            oids[i] = int32(types[i]);
        }
        return message('P', cstring(name), cstring(text), int16(types.length), concat(oids));
    }

    /** A Bind with one text parameter of {@code parameterBytes} bytes. */
    static byte[] bind(String portal, String statement, int parameterBytes) {
        byte[] value = new byte[parameterBytes];
        java.util.Arrays.fill(value, (byte) 'v');
        return message('B', cstring(portal), cstring(statement), int16(0), int16(1), int32(value.length), value,
                int16(0));
    }

    static byte[] describe(char kind, String name) {
        return message('D', new byte[] {(byte) kind}, cstring(name));
    }

    static byte[] close(char kind, String name) {
        return message('C', new byte[] {(byte) kind}, cstring(name));
    }

    static byte[] execute(String portal) {
        return message('E', cstring(portal), int32(0));
    }
}
