#!/usr/bin/env python3
"""Writes the seed corpus of the protocol fuzz targets (PgFuzzTest, MySqlFuzzTest) into their Inputs
directories under src/test/resources, from the conversations captured from real servers and clients
(protocol-postgres/.../fixtures/*.pgtrace, protocol-mysql/.../fixtures/*.txt) and hand-made edge cases.

Run from the repository root:  python3 fuzz/seeds.py
It rewrites only the seed-*.bin files; crash inputs that fuzzing found are kept beside them.

The format is io.connguard.core.testing.FuzzScript: a setup byte, then records. A record is a control
byte (low two bits: 0 client bytes, 1 server bytes, 2 core connects the upstream, 3 core kills the
session; the other six bits: the read size for byte records, 0 = one read, or the ProxyError.Kind for a
kill) and, for byte records, a 2-byte big-endian length and the bytes.
"""
import glob
import os
import struct

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PG_FIXTURES = os.path.join(ROOT, "protocol-postgres/src/test/resources/io/connguard/postgres/fixtures")
MY_FIXTURES = os.path.join(ROOT, "protocol-mysql/src/test/resources/fixtures")
PG_INPUTS = os.path.join(ROOT, "protocol-postgres/src/test/resources/io/connguard/postgres/PgFuzzTestInputs")
MY_INPUTS = os.path.join(ROOT, "protocol-mysql/src/test/resources/io/connguard/mysql/MySqlFuzzTestInputs")

CLIENT, SERVER, CONNECT, KILL = 0, 1, 2, 3
# ProxyError.Kind order
IDLE_IN_TRANSACTION_TIMEOUT, ADMIN_KILL = 1, 4


def record(op, data=b"", read=0):
    if op in (CONNECT, KILL):
        return bytes([(read << 2) | op])
    out = b""
    for at in range(0, max(len(data), 1), 65535):
        part = data[at:at + 65535]
        out += bytes([(read << 2) | op]) + struct.pack(">H", len(part)) + part
    return out


def script(setup, *records):
    return bytes([setup]) + b"".join(records)


def write(directory, name, data):
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "seed-" + name + ".bin"), "wb") as f:
        f.write(data)


def clean(directory):
    for path in glob.glob(os.path.join(directory, "*", "seed-*.bin")):
        os.remove(path)


# ------------------------------------------------------------------ PostgreSQL

def pg_trace(name):
    with open(os.path.join(PG_FIXTURES, name + ".pgtrace"), "rb") as f:
        data = f.read()
    chunks, i = [], 0
    while i < len(data):
        tag, length = data[i], struct.unpack(">i", data[i + 1:i + 5])[0]
        chunks.append((tag == ord("C"), data[i + 5:i + 5 + length]))
        i += 5 + length
    return chunks


def pg_message(kind, body=b""):
    return kind.encode() + struct.pack(">i", len(body) + 4) + body


def pg_startup(*pairs, version=0x00030000):
    body = struct.pack(">i", version) + b"".join(p.encode() + b"\0" for p in pairs) + b"\0"
    return struct.pack(">i", len(body) + 4) + body


SSL_REQUEST = struct.pack(">ii", 8, 80877103)
GSSENC_REQUEST = struct.pack(">ii", 8, 80877104)
LOGIN_OK = (pg_message("R", struct.pack(">i", 0)) + pg_message("S", b"server_version\x0015.20\x00")
            + pg_message("K", struct.pack(">i", 7) + b"\1\2\3\4") + pg_message("Z", b"I"))


def pg_records(chunks, read=0):
    out = b""
    for from_client, data in chunks:
        out += record(CLIENT if from_client else SERVER, data, read)
        if from_client:
            out += record(CONNECT)
    return out


def after_login(chunks):
    for i, (from_client, data) in enumerate(chunks):
        if not from_client and b"Z\x00\x00\x00\x05" in data:
            return chunks[i + 1:]
    return chunks


def pg_seeds():
    clean(PG_INPUTS)
    names = [os.path.basename(p)[:-len(".pgtrace")] for p in sorted(glob.glob(PG_FIXTURES + "/*.pgtrace"))]
    session, tracker, scanner, startup = (os.path.join(PG_INPUTS, t) for t in
                                          ("session", "sessionTracker", "frameScanner", "startupParser"))
    for name in names:
        chunks = pg_trace(name)
        write(session, name, script(0, pg_records(chunks)))
        write(tracker, name, script(0, pg_records(after_login(chunks))))
        write(startup, name, script(0, pg_records([c for c in chunks[:3] if c[0]])))
    for name in ("psql-copy", "pgbench-pipeline", "extended-copy", "replication"):
        chunks = after_login(pg_trace(name))
        write(scanner, name + "-whole", script(5, pg_records(chunks)))
        write(scanner, name + "-by-3", script(200, pg_records(chunks, read=3)))
    write(tracker, "psql-simple-byte-by-byte", script(0, pg_records(after_login(pg_trace("psql-simple")), read=1)))
    write(session, "psql-transaction-killed-idle", script(0, pg_records(pg_trace("psql-transaction")[:-2]),
                                                          record(KILL, read=IDLE_IN_TRANSACTION_TIMEOUT)))
    write(session, "scram-killed-mid-auth", script(0, pg_records(pg_trace("scram")[:3]), record(KILL, read=ADMIN_KILL)))

    # Start-up edge cases.
    hello = pg_startup("user", "postgres", "database", "test", "application_name", "fuzz")
    write(startup, "ssl-then-startup", script(0, record(CLIENT, SSL_REQUEST), record(CLIENT, hello), record(CONNECT)))
    write(startup, "gss-ssl-then-startup-split", script(0, record(CLIENT, GSSENC_REQUEST + SSL_REQUEST + hello, 3),
                                                        record(CONNECT)))
    write(startup, "ssl-twice", script(0, record(CLIENT, SSL_REQUEST + SSL_REQUEST)))
    write(startup, "ssl-request-length-16", script(0, record(CLIENT, struct.pack(">ii", 16, 80877103) + b"\0" * 8)))
    write(startup, "startup-10MB-length", script(0, record(CLIENT, struct.pack(">ii", 10_000_000, 0x30000) + b"user\0")))
    write(startup, "negative-length", script(0, record(CLIENT, struct.pack(">ii", -8, 0x30000))))
    write(startup, "length-7", script(0, record(CLIENT, struct.pack(">i", 7) + b"\0\3\0")))
    write(startup, "cancel-request", script(0, record(CLIENT, struct.pack(">iiii", 16, 80877102, 7, 0x01020304))))
    write(startup, "cancel-request-3.2-key", script(0, record(CLIENT, struct.pack(">iii", 8 + 4 + 32, 80877102, 7) + bytes(range(32)))))
    write(startup, "cancel-request-bad-length", script(0, record(CLIENT, struct.pack(">iii", 12, 80877102, 7))))
    write(startup, "direct-tls", script(0, record(CLIENT, bytes([0x16, 3, 1, 0, 0x80]) + b"\1" * 16)))
    write(startup, "protocol-3.2", script(0, record(CLIENT, pg_startup("user", "u", version=0x00030002)), record(CONNECT)))
    write(startup, "protocol-2.0", script(0, record(CLIENT, pg_startup("user", "u", version=0x00020000))))
    write(startup, "no-terminator", script(0, record(CLIENT, struct.pack(">i", len(hello) - 1) + hello[4:-1])))
    write(startup, "name-without-value", script(0, record(CLIENT, pg_startup("user", "u", "database"))))
    write(startup, "replication", script(0, record(CLIENT, pg_startup("user", "u", "replication", "database")), record(CONNECT)))
    write(startup, "early-query-before-admission", script(0, record(CLIENT, hello), record(CLIENT, pg_message("Q", b"select 1\0")),
                                                          record(CONNECT)))
    # Over 64 KiB of early bytes is covered by PgSessionStartupTest; a seed that size would dwarf the corpus.
    write(startup, "early-bytes-in-small-reads", script(0, record(CLIENT, hello), record(CLIENT, b"Q" * 2000, 40)))
    write(startup, "tls-upstream-accepts", script(1, record(CLIENT, hello), record(CONNECT), record(SERVER, b"S"),
                                                  record(SERVER, LOGIN_OK)))
    write(startup, "tls-upstream-refuses", script(1, record(CLIENT, hello), record(CONNECT), record(SERVER, b"N")))
    write(startup, "tls-upstream-plaintext-after-S", script(1, record(CLIENT, hello), record(CONNECT), record(SERVER, b"S" + LOGIN_OK)))

    # Relay edge cases.
    write(tracker, "data-row-claiming-1GiB", script(0, record(CLIENT, pg_message("Q", b"select\0")),
                                                    record(SERVER, b"D" + struct.pack(">i", 1 << 30) + b"\0\1" * 5)))
    write(tracker, "negative-lengths", script(0, record(CLIENT, b"Q" + struct.pack(">i", -5) + b"x"),
                                              record(SERVER, b"Z" + struct.pack(">i", -1))))
    write(tracker, "long-ready-for-query", script(0, record(CLIENT, pg_message("Q", b"select 1\0")),
                                                  record(SERVER, pg_message("Z", b"I" * 1000))))
    write(tracker, "backend-key-300", script(0, record(SERVER, pg_message("K", struct.pack(">i", 9) + b"k" * 300))))
    write(tracker, "unknown-status-and-types", script(0, record(CLIENT, pg_message("Q", b"begin\0") + pg_message("z")),
                                                      record(SERVER, pg_message("Z", b"X") + pg_message("?"))))
    write(tracker, "copy-in-with-syncs", script(0, record(CLIENT, pg_message("P", b"\0copy t from stdin\0\0\0")
                                                          + pg_message("S") + pg_message("S")),
                                                record(SERVER, pg_message("G", b"\0\0\0")),
                                                record(CLIENT, pg_message("d", b"1\n") + pg_message("c") + pg_message("S")),
                                                record(SERVER, pg_message("C", b"COPY 1\0") + pg_message("Z", b"I"))))
    write(scanner, "claims-1GiB", script(3, record(SERVER, b"D" + struct.pack(">i", 1 << 30) + b"abc", 2)))
    write(scanner, "length-below-4", script(3, record(CLIENT, pg_message("Q", b"x\0") + b"Q" + struct.pack(">i", 3), 1)))


# ------------------------------------------------------------------ MySQL

def my_fixture(name):
    chunks = []
    with open(os.path.join(MY_FIXTURES, name + ".txt")) as f:
        for line in f:
            if line.strip():
                chunks.append((line[0] == "C", bytes.fromhex(line[2:].strip())))
    return chunks


def my_packet(sequence, payload):
    return struct.pack("<I", len(payload))[:3] + bytes([sequence]) + payload


def lenenc(data):
    return bytes([len(data)]) + data


LIBMARIADB_CAPS = 0x00bfa28c | 0x1d << 32
CONNECTOR_J_CAPS = 0x01ffa20f & ~(1 << 5) & ~(1 << 11)


def handshake_response(caps, user=b"cg_my_native", database=b"test", program=b"fuzz", auth=b"\0" * 20):
    attributes = lenenc(b"program_name") + lenenc(program)
    extended = struct.pack("<I", caps >> 32) if caps & 1 == 0 else b"\0" * 4
    return (struct.pack("<IIB", caps & 0xFFFFFFFF, 1 << 24, 45) + b"\0" * 19 + extended + user + b"\0"
            + lenenc(auth) + database + b"\0" + b"mysql_native_password\0" + lenenc(attributes))


def command_phase(chunks):
    for i in range(1, len(chunks)):
        if not chunks[i][0] and chunks[i][1][4] == 0:
            return chunks[i + 1:]
    return []


def my_records(chunks, read=0):
    return b"".join(record(CLIENT if c else SERVER, data, read) for c, data in chunks)


def my_seeds():
    clean(MY_INPUTS)
    names = [os.path.basename(p)[:-len(".txt")] for p in sorted(glob.glob(MY_FIXTURES + "/*.txt"))]
    d = {t: os.path.join(MY_INPUTS, t) for t in ("greeting", "handshakeResponse", "changeUser", "killRewriter",
                                                  "packetScanner", "session", "commandTracker")}
    for name in names:
        chunks = my_fixture(name)
        # The proxy greets the client itself: the client answers first, then core connects, then the
        # server's own greeting and the rest arrive.
        session = [chunks[1]] + [chunks[0]] + chunks[2:]
        write(d["session"], name, script(0, record(CLIENT, session[0][1]), record(CONNECT), my_records(session[1:32])))
        commands = command_phase(chunks)[:40]
        write(d["commandTracker"], name, script(0, my_records(commands)))
        write(d["handshakeResponse"], name, chunks[1][1][4:])
    greeting = my_fixture("mariadb-select-transaction")[0][1]
    write(d["greeting"], "mariadb-10.11", script(0, record(SERVER, greeting)))
    write(d["greeting"], "mariadb-10.11-by-5", script(0, record(SERVER, greeting, 5)))
    write(d["greeting"], "truncated", script(0, record(SERVER, greeting[:40])))
    write(d["greeting"], "protocol-9", script(0, record(SERVER, greeting[:4] + b"\x09" + greeting[5:])))
    write(d["greeting"], "err-too-many", script(0, record(SERVER, my_packet(0, b"\xff\x10\x04Too many connections"))))
    write(d["greeting"], "header-16MiB-with-10-bytes", script(0, record(SERVER, b"\xff\xff\xff\x00" + b"\x0a" * 10)))
    write(d["greeting"], "auth-data-length-255", script(0, record(SERVER, greeting[:4 + 1 + greeting[5:].index(0) + 1 + 4 + 9 + 5]
                                                                  + b"\xff" + greeting[4 + 1 + greeting[5:].index(0) + 1 + 4 + 9 + 6:])))
    write(d["handshakeResponse"], "connector-j", handshake_response(CONNECTOR_J_CAPS))
    write(d["handshakeResponse"], "ssl-request", struct.pack("<IIB", CONNECTOR_J_CAPS | 1 << 11, 1 << 24, 45) + b"\0" * 23)
    write(d["handshakeResponse"], "lenenc-auth-huge", handshake_response(CONNECTOR_J_CAPS | 1 << 21)[:37] + b"\xfe" + b"\xff" * 8)
    write(d["handshakeResponse"], "attributes-past-end", handshake_response(LIBMARIADB_CAPS)[:-5] + b"\xfc\xff\xff")
    write(d["handshakeResponse"], "pre-4.1", struct.pack("<I", 0x0f) + b"u\0")
    change = b"\x11" + b"other\0" + lenenc(b"\1" * 20) + b"test\0" + struct.pack("<H", 45) + b"mysql_native_password\0" \
        + lenenc(lenenc(b"program_name") + lenenc(b"next-app"))
    for caps_name, caps in (("libmariadb", LIBMARIADB_CAPS), ("connector-j", CONNECTOR_J_CAPS), ("no-secure-connection", 0x200)):
        write(d["changeUser"], caps_name, struct.pack("<Q", caps) + change)
    write(d["changeUser"], "truncated", struct.pack("<Q", LIBMARIADB_CAPS) + change[:12])
    write(d["changeUser"], "auth-length-past-end", struct.pack("<Q", LIBMARIADB_CAPS) + b"\x11u\0\xff")
    for text in (b"KILL 1000000001", b"kill query 42;", b"  Kill Connection 7 ; ", b"KILL HARD QUERY 12",
                 b"KILL 99999999999999999999", b"killer", b"KILL\t\n5", b"\x01\x00\x00\x00"):
        write(d["killRewriter"], text.decode("latin-1").strip().replace(" ", "_").replace("\t", "").replace("\n", "")
              .replace(";", "").replace("\x01", "id1").replace("\x00", "") or "id", text)
    server = [c for c in command_phase(my_fixture("mariadb-procedure-two-results")) if not c[0]]
    write(d["packetScanner"], "procedure-two-results", script(0, my_records(server)))
    write(d["packetScanner"], "procedure-two-results-by-3", script(0, my_records(server, 3)))
    write(d["packetScanner"], "header-16MiB-with-10-bytes", script(0, record(SERVER, b"\xff\xff\xff\x00" + b"\x0a" * 10, 2)))
    write(d["packetScanner"], "continuation", script(0, record(SERVER, b"\xff\xff\xff\x01" + b"x" * 20), record(SERVER, b"\x00\x00\x00\x02")))

    q = lambda sql: my_packet(0, b"\x03" + sql)
    ok = lambda seq, status=2: my_packet(seq, b"\x00\x00\x00" + struct.pack("<H", status) + b"\x00\x00")
    write(d["commandTracker"], "change-user", script(0, record(CLIENT, my_packet(0, change)),
                                                     record(SERVER, my_packet(1, b"\xfemysql_native_password\0" + b"s" * 20 + b"\0")),
                                                     record(CLIENT, my_packet(2, b"\1" * 20)), record(SERVER, ok(3))))
    write(d["commandTracker"], "kill-proxy-id", script(0, record(CLIENT, q(b"KILL QUERY 1000000000")), record(SERVER, ok(1))))
    write(d["commandTracker"], "process-kill", script(1, record(CLIENT, my_packet(0, b"\x0c" + struct.pack("<I", 1000000000)), 2),
                                                      record(SERVER, ok(1))))
    write(d["commandTracker"], "command-claiming-16MiB", script(0, record(CLIENT, b"\xff\xff\xff\x00\x03select" + b" " * 4)))
    write(d["commandTracker"], "response-claiming-16MiB", script(0, record(CLIENT, q(b"select 1")),
                                                                 record(SERVER, b"\xff\xff\xff\x01\x01" + b"\0" * 9)))
    write(d["commandTracker"], "local-infile", script(0, record(CLIENT, q(b"load data local infile 'x' into table t")),
                                                      record(SERVER, my_packet(1, b"\xfbx")),
                                                      record(CLIENT, my_packet(2, b"1\n2\n") + my_packet(3, b"")),
                                                      record(SERVER, ok(4))))
    write(d["commandTracker"], "pipelined-in-transaction", script(1, record(CLIENT, q(b"begin") + q(b"select 1") + q(b"commit"), 7),
                                                                  record(SERVER, ok(1, 3) + ok(1, 3) + ok(1, 2))))
    write(d["session"], "ssl-request", script(0, record(CLIENT, my_packet(1, struct.pack("<IIB", CONNECTOR_J_CAPS | 1 << 11, 1 << 24, 45) + b"\0" * 23))))
    write(d["session"], "upstream-tls", script(1, record(CLIENT, my_packet(1, handshake_response(CONNECTOR_J_CAPS))), record(CONNECT),
                                               record(SERVER, my_fixture("mariadb-select-transaction")[0][1]),
                                               record(SERVER, ok(3))))
    write(d["session"], "server-refuses", script(0, record(CLIENT, my_packet(1, handshake_response(LIBMARIADB_CAPS))), record(CONNECT),
                                                 record(SERVER, my_packet(0, b"\xff\x10\x04Too many connections"))))
    write(d["session"], "response-claiming-16MiB", script(0, record(CLIENT, b"\xff\xff\xff\x01" + b"\0" * 10)))
    write(d["session"], "early-command", script(0, record(CLIENT, my_packet(1, handshake_response(LIBMARIADB_CAPS)) + q(b"select 1"))))
    write(d["session"], "killed-while-idle", script(0, record(CLIENT, my_packet(1, handshake_response(LIBMARIADB_CAPS))), record(CONNECT),
                                                    record(SERVER, my_fixture("mariadb-select-transaction")[0][1]),
                                                    record(SERVER, ok(2)), record(KILL, read=IDLE_IN_TRANSACTION_TIMEOUT),
                                                    record(CLIENT, q(b"select 1"))))


if __name__ == "__main__":
    pg_seeds()
    my_seeds()
