#!/usr/bin/env python3
"""Records real PostgreSQL conversations as byte fixtures for the protocol-postgres tests.

A small relay sits between a client and the server at 127.0.0.1:5432 and writes every chunk it reads,
in order, to a .pgtrace file: per chunk one byte 'C' (client to server) or 'S' (server to client), a
big-endian int32 length, then the bytes. The chunk boundaries are the ones TCP delivered.

Clients are the real psql and pgbench, plus a few raw-protocol conversations sent from here that the
tools cannot produce (several Syncs in one write, extended-protocol COPY, FunctionCall, CopyBoth).

Run it after .ci/setup-postgres.sh, from this directory:
    python3 pg_capture.py ../resources/io/connguard/postgres/fixtures
Only fixtures whose conversation is deterministic in shape are kept; the tests check structure, not
values (process ids, keys and SCRAM nonces differ on every run).
"""
import os
import select
import socket
import struct
import subprocess
import sys
import tempfile
import threading

UPSTREAM = ("127.0.0.1", 5432)


class Relay:
    """Relays every connection it accepts to the server and records each one's chunks."""

    def __init__(self):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port = self.listener.getsockname()[1]
        self.connections = []
        self.threads = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            chunks = []
            self.connections.append(chunks)
            thread = threading.Thread(target=self._relay, args=(client, chunks), daemon=True)
            self.threads.append(thread)
            thread.start()

    @staticmethod
    def _relay(client, chunks):
        server = socket.create_connection(UPSTREAM)
        for s in (client, server):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peers = {client: (server, b"C"), server: (client, b"S")}
        open_ = {client, server}
        while open_:
            readable, _, _ = select.select(list(open_), [], [], 30)
            if not readable:
                break
            for s in readable:
                data = s.recv(65536)
                other, tag = peers[s]
                if not data:
                    open_.clear()
                    break
                chunks.append((tag, data))
                other.sendall(data)
        client.close()
        server.close()

    def save(self, path):
        """Writes the last connection (pgbench's first one only looks around) to path."""
        self.listener.close()
        for thread in list(self.threads):
            thread.join(60)
        chunks = self.connections[-1]
        with open(path, "wb") as out:
            for tag, data in chunks:
                out.write(tag + struct.pack(">i", len(data)) + data)
        print(f"{os.path.basename(path)}: {len(chunks)} chunks, "
              f"{sum(len(d) for t, d in chunks if t == b'C')} bytes from the client, "
              f"{sum(len(d) for t, d in chunks if t == b'S')} from the server"
              f" ({len(self.connections)} connections)")


def env(port, **extra):
    e = dict(os.environ, PGHOST="127.0.0.1", PGPORT=str(port), PGSSLMODE="disable", PGGSSENCMODE="disable",
             PGDATABASE="test", PGUSER="postgres", PGAPPNAME="fixture")
    e.pop("PGPASSWORD", None)
    e.update(extra)
    return e


def tool(out_dir, name, args, stdin=None, check=True, **extra):
    relay = Relay()
    result = subprocess.run(args, env=env(relay.port, **extra), input=stdin, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise SystemExit(f"{name}: {args} failed: {result.stderr}")
    relay.save(os.path.join(out_dir, name + ".pgtrace"))


# ---------------------------------------------------------------- raw protocol conversations

def msg(tag, body=b""):
    return tag + struct.pack(">i", len(body) + 4) + body


def cstr(s):
    return s.encode() + b"\0"


def startup(user="postgres", database="test", **params):
    body = struct.pack(">i", 196608) + cstr("user") + cstr(user) + cstr("database") + cstr(database)
    for k, v in params.items():
        body += cstr(k) + cstr(v)
    body += b"\0"
    return struct.pack(">i", len(body) + 4) + body


def parse(sql, name=""):
    return msg(b"P", cstr(name) + cstr(sql) + struct.pack(">h", 0))


def bind(portal="", name=""):
    return msg(b"B", cstr(portal) + cstr(name) + struct.pack(">hhh", 0, 0, 0))


def execute(portal=""):
    return msg(b"E", cstr(portal) + struct.pack(">i", 0))


def describe_portal(portal=""):
    return msg(b"D", b"P" + cstr(portal))


SYNC = msg(b"S")
TERMINATE = msg(b"X")


class Conn:
    def __init__(self, port, **startup_params):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.sock.sendall(startup(**startup_params))
        self.until_ready()

    def read_message(self):
        while len(self.buf) < 5 or len(self.buf) < 1 + struct.unpack(">i", self.buf[1:5])[0]:
            data = self.sock.recv(65536)
            if not data:
                raise SystemExit("server closed the connection")
            self.buf += data
        length = struct.unpack(">i", self.buf[1:5])[0]
        tag, body, self.buf = self.buf[:1], self.buf[5:1 + length], self.buf[1 + length:]
        return tag, body

    def until(self, *tags):
        seen = []
        while True:
            tag, body = self.read_message()
            seen.append(tag)
            if tag == b"E" and b"E" not in tags and False:
                pass
            if tag in tags:
                return seen, body

    def until_ready(self, count=1):
        for _ in range(count):
            self.until(b"Z")

    def send(self, data):
        self.sock.sendall(data)

    def close(self):
        self.send(TERMINATE)
        self.sock.close()


def raw(out_dir, name, conversation, **startup_params):
    relay = Relay()
    conn = Conn(relay.port, **startup_params)
    conversation(conn)
    conn.close()
    relay.save(os.path.join(out_dir, name + ".pgtrace"))


def pipelined_syncs(c):
    # Three extended batches in one write, the second failing: the server skips to its Sync.
    c.send(parse("SELECT 1") + bind() + describe_portal() + execute() + SYNC
           + parse("SELECT 1/0") + bind() + execute() + SYNC
           + parse("SELECT 2") + bind() + execute() + SYNC)
    c.until_ready(3)
    # A transaction opened and left open by an extended batch, then closed by a simple query.
    c.send(parse("BEGIN") + bind() + execute() + parse("SELECT 3") + bind() + execute() + SYNC)
    c.until_ready()
    c.send(msg(b"Q", cstr("COMMIT")))
    c.until_ready()


def extended_copy(c):
    # libpq's way: Sync goes with the COPY command (the server ignores it in copy-in mode), and another
    # Sync follows CopyDone.
    c.send(msg(b"Q", cstr("CREATE TEMP TABLE cg_pg_fixture_copy (a int, b text)")))
    c.until_ready()
    c.send(parse("COPY cg_pg_fixture_copy FROM STDIN") + bind() + execute() + SYNC)
    c.until(b"G")
    c.send(msg(b"d", b"1\tone\n") + msg(b"d", b"2\ttwo\n") + msg(b"c") + SYNC)
    c.until_ready()
    c.send(parse("COPY cg_pg_fixture_copy TO STDOUT") + bind() + execute() + SYNC)
    c.until_ready()
    # A simple-protocol COPY that the client fails.
    c.send(msg(b"Q", cstr("COPY cg_pg_fixture_copy FROM STDIN")))
    c.until(b"G")
    c.send(msg(b"d", b"3\tthree\n") + msg(b"f", cstr("client gave up")))
    c.until_ready()


def function_call(c):
    # FunctionCall (the fast-path interface large objects use): lo_creat(-1), then lo_unlink of it.
    c.send(msg(b"Q", cstr("BEGIN")))
    c.until_ready()
    lo_creat, lo_unlink = 957, 964
    c.send(msg(b"F", struct.pack(">ihhhii", lo_creat, 1, 1, 1, 4, -1) + struct.pack(">h", 1)))
    _, _ = c.until(b"V")
    c.until_ready()
    c.send(msg(b"Q", cstr("ROLLBACK")))
    c.until_ready()


def replication(c):
    c.send(msg(b"Q", cstr("IDENTIFY_SYSTEM")))
    _, row = c.until(b"D")
    c.until_ready()
    # DataRow: systemid, timeline, xlogpos, dbname; stream from the current position, so little WAL flows.
    fields, at = [], 2
    for _ in range(struct.unpack(">h", row[:2])[0]):
        n = struct.unpack(">i", row[at:at + 4])[0]
        fields.append(row[at + 4:at + 4 + n].decode() if n >= 0 else None)
        at += 4 + max(n, 0)
    c.send(msg(b"Q", cstr("START_REPLICATION PHYSICAL " + fields[2])))
    c.until(b"W")
    c.send(msg(b"c"))
    c.until_ready()


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else "."
    os.makedirs(out_dir, exist_ok=True)
    tool(out_dir, "psql-simple", ["psql", "-X", "-c", "SELECT 1 AS one, 'x' AS two"])
    tool(out_dir, "psql-transaction", ["psql", "-X", "-c", "BEGIN", "-c", "SELECT 1", "-c", "SELECT 1/0",
                                       "-c", "ROLLBACK", "-c", "BEGIN", "-c", "SELECT 2", "-c", "COMMIT"],
         check=False)
    tool(out_dir, "psql-copy", ["psql", "-X", "-v", "ON_ERROR_STOP=1", "-f", "-"], stdin="""
CREATE TEMP TABLE cg_pg_fixture (id int, name text);
\\copy cg_pg_fixture from stdin
1\tone
2\ttwo
\\.
COPY cg_pg_fixture TO STDOUT;
\\copy (SELECT * FROM cg_pg_fixture) to stdout
""")
    tool(out_dir, "psql-notify", ["psql", "-X", "-v", "ON_ERROR_STOP=1", "-f", "-"], stdin="""
LISTEN cg_pg_fixture;
NOTIFY cg_pg_fixture, 'hello';
DO $$ BEGIN RAISE NOTICE 'a notice'; END $$;
SET application_name = 'renamed';
""")
    tool(out_dir, "scram", ["psql", "-X", "-c", "SELECT current_user"], PGUSER="cg_scram", PGPASSWORD="cg_scram_pw")
    tool(out_dir, "md5", ["psql", "-X", "-c", "SELECT current_user"], PGUSER="cg_md5", PGPASSWORD="cg_md5_pw")
    tool(out_dir, "wrong-password", ["psql", "-X", "-c", "SELECT 1"], check=False,
         PGUSER="cg_scram", PGPASSWORD="not the password")
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as script:
        script.write("SELECT 1;\nSELECT :scale;\n")
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as pipeline:
        pipeline.write("\\startpipeline\nSELECT 1;\nSELECT 2;\nSELECT 3;\n\\endpipeline\n")
    for mode in ("simple", "extended", "prepared"):
        tool(out_dir, "pgbench-" + mode, ["pgbench", "-n", "-t", "3", "-M", mode, "-f", script.name])
    tool(out_dir, "pgbench-pipeline", ["pgbench", "-n", "-t", "3", "-M", "extended", "-f", pipeline.name])
    raw(out_dir, "pipelined-syncs", pipelined_syncs)
    raw(out_dir, "extended-copy", extended_copy)
    raw(out_dir, "function-call", function_call)
    raw(out_dir, "replication", replication, user="cg_repl", database="test", replication="true")


if __name__ == "__main__":
    main()
