"""Just enough of the PostgreSQL wire protocol for the memory benchmarks (standard library only).

- ``FakeServer`` (run as ``python3 pgwire.py serve PORT``): accepts any StartupMessage with trust
  authentication, answers every Query with CommandComplete + ReadyForQuery, and holds thousands of idle
  connections cheaply. It stands in for PostgreSQL when 10,000 sessions are wanted (the local server has
  max_connections 400).
- ``hold_idle_sessions``: opens N client sessions through a proxy, each authenticated and past one query
  (PgBouncer in session mode only takes a server connection at the first query), and keeps them idle.
- ``stream``: one client that runs a query and reads its result at a fixed rate (a slow client).
"""
import selectors
import socket
import struct
import sys
import time

PROTOCOL_3_0 = 196608


def startup_message(user, database, application):
    params = b""
    for key, value in (("user", user), ("database", database), ("application_name", application)):
        params += key.encode() + b"\0" + value.encode() + b"\0"
    params += b"\0"
    return struct.pack("!ii", 8 + len(params), PROTOCOL_3_0) + params


def query_message(sql):
    body = sql.encode() + b"\0"
    return b"Q" + struct.pack("!i", 4 + len(body)) + body


def message(kind, body=b""):
    return kind + struct.pack("!i", 4 + len(body)) + body


class MessageReader:
    """Splits a byte stream into (type, body) messages; bodies are skipped, not kept, past ``keep`` bytes."""

    def __init__(self, keep=64):
        self.keep = keep
        self.header = b""
        self.kind = None
        self.remaining = 0
        self.body = b""

    def feed(self, data):
        """Yields the type and the kept body prefix of every message completed by ``data``."""
        view = memoryview(data)
        at = 0
        while at < len(view):
            if self.kind is None:
                need = 5 - len(self.header)
                self.header += bytes(view[at:at + need])
                at += need
                if len(self.header) < 5:
                    return
                self.kind = self.header[:1]
                self.remaining = struct.unpack("!i", self.header[1:])[0] - 4
                self.header = b""
                self.body = b""
            take = min(self.remaining, len(view) - at)
            if len(self.body) < self.keep:
                self.body += bytes(view[at:at + min(take, self.keep - len(self.body))])
            at += take
            self.remaining -= take
            if self.remaining == 0:
                kind, body = self.kind, self.body
                self.kind = None
                yield kind, body


# ---------------------------------------------------------------------------------------------- fake server

WELCOME = b"".join([
    message(b"R", struct.pack("!i", 0)),
    message(b"S", b"server_version\x0015.0\x00"),
    message(b"S", b"server_encoding\x00UTF8\x00"),
    message(b"S", b"client_encoding\x00UTF8\x00"),
    message(b"S", b"DateStyle\x00ISO, MDY\x00"),
    message(b"S", b"TimeZone\x00UTC\x00"),
    message(b"S", b"integer_datetimes\x00on\x00"),
    message(b"S", b"standard_conforming_strings\x00on\x00"),
    message(b"K", struct.pack("!ii", 4242, 1234)),
    message(b"Z", b"I"),
])
QUERY_DONE = message(b"C", b"SELECT 0\x00") + message(b"Z", b"I")


class _ServerConn:
    def __init__(self):
        self.started = False
        self.pending = b""

    def on_data(self, data):
        """Returns what to answer."""
        self.pending += data
        out = b""
        while True:
            if not self.started:
                if len(self.pending) < 8:
                    return out
                length, code = struct.unpack("!ii", self.pending[:8])
                if len(self.pending) < length:
                    return out
                self.pending = self.pending[length:]
                if code == 80877103 or code == 80877104:  # SSLRequest, GSSENCRequest
                    out += b"N"
                    continue
                self.started = True
                out += WELCOME
            else:
                if len(self.pending) < 5:
                    return out
                length = struct.unpack("!i", self.pending[1:5])[0]
                if len(self.pending) < 1 + length:
                    return out
                kind = self.pending[:1]
                self.pending = self.pending[1 + length:]
                if kind == b"Q":
                    out += QUERY_DONE
                elif kind == b"X":
                    raise ConnectionResetError("terminate")


def serve(port):
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(4096)
    listener.setblocking(False)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, None)
    print("listening", flush=True)
    while True:
        for key, _ in selector.select():
            if key.data is None:
                try:
                    while True:
                        conn, _ = listener.accept()
                        conn.setblocking(False)
                        selector.register(conn, selectors.EVENT_READ, _ServerConn())
                except BlockingIOError:
                    pass
                continue
            conn = key.fileobj
            try:
                data = conn.recv(65536)
                if not data:
                    raise ConnectionResetError("closed")
                answer = key.data.on_data(data)
                if answer:
                    conn.sendall(answer)
            except (ConnectionError, OSError):
                selector.unregister(conn)
                conn.close()


# ---------------------------------------------------------------------------------------------- idle clients

class _IdleClient:
    """Connect → StartupMessage → ReadyForQuery → one Query → ReadyForQuery → idle."""

    def __init__(self, port, database):
        self.sock = socket.socket()
        self.sock.setblocking(False)
        self.sock.connect_ex(("127.0.0.1", port))
        self.reader = MessageReader()
        self.database = database
        self.step = "connecting"

    def on_writable(self):
        self.sock.sendall(startup_message("postgres", self.database, "idle-sessions"))
        self.step = "startup"

    def on_readable(self):
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("closed by the proxy during " + self.step)
        for kind, body in self.reader.feed(data):
            if kind == b"E":
                raise ConnectionError("error during %s: %r" % (self.step, body))
            if kind == b"Z":
                if self.step == "startup":
                    self.sock.sendall(query_message("SELECT 1"))
                    self.step = "query"
                elif self.step == "query":
                    self.step = "idle"


def hold_idle_sessions(port, database, count, held=None, in_flight=100, timeout=120):
    """Opens sessions until ``held`` (a list, extended in place) has ``count``; returns it."""
    held = [] if held is None else held
    selector = selectors.DefaultSelector()
    pending = set()
    deadline = time.monotonic() + timeout
    while len(held) < count:
        while len(pending) < in_flight and len(held) + len(pending) < count:
            client = _IdleClient(port, database)
            selector.register(client.sock, selectors.EVENT_WRITE, client)
            pending.add(client)
        if time.monotonic() > deadline:
            raise TimeoutError("only %d of %d sessions opened" % (len(held), count))
        for key, events in selector.select(timeout=1):
            client = key.data
            if client.step == "connecting":
                client.on_writable()
                selector.modify(client.sock, selectors.EVENT_READ, client)
                continue
            client.on_readable()
            if client.step == "idle":
                selector.unregister(client.sock)
                pending.discard(client)
                held.append(client.sock)
    selector.close()
    return held


def close_all(socks):
    for sock in socks:
        try:
            sock.close()
        except OSError:
            pass
    socks.clear()


# ---------------------------------------------------------------------------------------------- slow client

def stream(port, database, sql, bytes_per_second=None, on_tick=None, chunk=65536):
    """Runs ``sql`` and reads the whole result, at most ``bytes_per_second``; returns bytes received."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)
    reader = MessageReader()
    sock.sendall(startup_message("postgres", database, "slow-client"))
    _wait_ready(sock, reader)
    sock.sendall(query_message(sql))
    received = 0
    started = time.monotonic()
    done = False
    while not done:
        data = sock.recv(chunk)
        if not data:
            raise ConnectionError("closed by the proxy")
        received += len(data)
        for kind, body in reader.feed(data):
            if kind == b"E":
                raise ConnectionError("query failed: %r" % body)
            if kind == b"Z":
                done = True
        if on_tick:
            on_tick()
        if bytes_per_second:
            ahead = received / bytes_per_second - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
    sock.sendall(message(b"X"))
    sock.close()
    return received


def _wait_ready(sock, reader):
    while True:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed by the proxy during start-up")
        for kind, body in reader.feed(data):
            if kind == b"E":
                raise ConnectionError("start-up failed: %r" % body)
            if kind == b"Z":
                return


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "serve":
        serve(int(sys.argv[2]))
    else:
        sys.exit("usage: pgwire.py serve PORT")
