"""Just enough of the MySQL client protocol for the memory benchmarks (standard library only).

- ``hold_idle_sessions``: opens N client connections through a proxy, each authenticated and past one query
  (``SELECT 1``), and keeps them idle; ``pgwire.close_all`` closes them.
- ``run``: one blocking connection that runs statements (to create the benchmark's account directly on the
  server as its admin user).

Authentication answers the greeting with mysql_native_password. When asked (an AuthSwitchRequest to
caching_sha2_password, as connguard's pooled listeners send a client whose answer does not prove the pool's
password), it does caching_sha2_password's full authentication on a plaintext leg: it asks for the public
key and sends its password RSA-encrypted (OAEP, SHA-1), as libmariadb does.
"""
import base64
import hashlib
import os
import selectors
import socket
import struct
import time

CLIENT_LONG_PASSWORD = 1
CLIENT_LONG_FLAG = 4
CLIENT_CONNECT_WITH_DB = 8
CLIENT_PROTOCOL_41 = 0x200
CLIENT_TRANSACTIONS = 0x2000
CLIENT_SECURE_CONNECTION = 0x8000
CLIENT_MULTI_STATEMENTS = 0x10000
CLIENT_MULTI_RESULTS = 0x20000
CLIENT_PS_MULTI_RESULTS = 0x40000
CLIENT_PLUGIN_AUTH = 0x80000
CLIENT_CONNECT_ATTRS = 0x100000
# What libmariadb (the `mariadb` client, sysbench) asks for, without TLS, compression or session tracking.
CAPABILITIES = (CLIENT_LONG_PASSWORD | CLIENT_LONG_FLAG | CLIENT_CONNECT_WITH_DB | CLIENT_PROTOCOL_41
                | CLIENT_TRANSACTIONS | CLIENT_SECURE_CONNECTION | CLIENT_MULTI_STATEMENTS | CLIENT_MULTI_RESULTS
                | CLIENT_PS_MULTI_RESULTS | CLIENT_PLUGIN_AUTH | CLIENT_CONNECT_ATTRS)
UTF8MB4_GENERAL_CI = 45
COM_QUIT = 1
COM_QUERY = 3


def _attributes():
    """Connection attributes as libmariadb sends them (names and values of a few bytes each), the same on
    every connection of this process."""
    pairs = {"_client_name": "mywire", "_client_version": "1.0", "_os": "Linux", "_pid": str(os.getpid()),
             "_platform": "x86_64", "program_name": "idle_heap"}
    body = b"".join(bytes([len(k)]) + k.encode() + bytes([len(v)]) + v.encode() for k, v in pairs.items())
    return bytes([len(body)]) + body


ATTRIBUTES = _attributes()


def packet(sequence_id, payload):
    return struct.pack("<I", len(payload))[:3] + bytes([sequence_id & 0xFF]) + payload


def native_password(password, scramble):
    if not password:
        return b""
    stage1 = hashlib.sha1(password.encode()).digest()
    mix = hashlib.sha1(scramble[:20] + hashlib.sha1(stage1).digest()).digest()
    return bytes(a ^ b for a, b in zip(mix, stage1))


def caching_sha2_password(password, scramble):
    if not password:
        return b""
    stage1 = hashlib.sha256(password.encode()).digest()
    mix = hashlib.sha256(hashlib.sha256(stage1).digest() + scramble[:20]).digest()
    return bytes(a ^ b for a, b in zip(stage1, mix))


# ---------------------------------------------------------------------------------------------- RSA-OAEP

def _der(data, at):
    """(tag, content start, content end) of the DER element at ``at``."""
    tag, length = data[at], data[at + 1]
    at += 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(data[at:at + count], "big")
        at += count
    return tag, at, at + length


def public_key(pem):
    """(n, e) of a PEM SubjectPublicKeyInfo holding an RSA key."""
    body = b"".join(line for line in pem.strip().splitlines() if not line.startswith(b"-----"))
    der = base64.b64decode(body)
    _, at, _ = _der(der, 0)                  # SubjectPublicKeyInfo
    _, _, algorithm_end = _der(der, at)      # AlgorithmIdentifier
    _, bits, _ = _der(der, algorithm_end)    # BIT STRING: one byte of unused bits, then RSAPublicKey
    _, at, _ = _der(der, bits + 1)
    _, n_start, n_end = _der(der, at)
    _, e_start, e_end = _der(der, n_end)
    return int.from_bytes(der[n_start:n_end], "big"), int.from_bytes(der[e_start:e_end], "big")


def _mgf1(seed, length):
    out = b""
    counter = 0
    while len(out) < length:
        out += hashlib.sha1(seed + struct.pack(">I", counter)).digest()
        counter += 1
    return out[:length]


def rsa_oaep_encrypt(message, pem):
    n, e = public_key(pem)
    k = (n.bit_length() + 7) // 8
    h = hashlib.sha1(b"").digest()
    db = h + b"\0" * (k - len(message) - 2 * len(h) - 2) + b"\1" + message
    seed = os.urandom(len(h))
    masked_db = bytes(a ^ b for a, b in zip(db, _mgf1(seed, len(db))))
    masked_seed = bytes(a ^ b for a, b in zip(seed, _mgf1(masked_db, len(h))))
    return pow(int.from_bytes(b"\0" + masked_seed + masked_db, "big"), e, n).to_bytes(k, "big")


# ---------------------------------------------------------------------------------------------- one client

class Client:
    """A client's protocol state: ``feed`` takes what the server sent and returns what to send back.
    ``step`` goes greeting → auth → ready (→ query → ready per statement); ``rows`` has the last result's rows."""

    def __init__(self, user, password, database):
        self.user, self.password, self.database = user, password, database
        self.step = "greeting"
        self.buffer = b""
        self.sequence = 0
        self.scramble = b""
        self.columns = None
        self.eofs = 0
        self.rows = []

    def query(self, sql):
        self.step, self.columns, self.eofs, self.rows = "query", None, 0, []
        return packet(0, bytes([COM_QUERY]) + sql.encode())

    def feed(self, data):
        self.buffer += data
        out = b""
        while len(self.buffer) >= 4:
            length = int.from_bytes(self.buffer[:3], "little")
            if len(self.buffer) < 4 + length:
                break
            self.sequence = self.buffer[3]
            payload, self.buffer = self.buffer[4:4 + length], self.buffer[4 + length:]
            out += self._on_packet(payload)
        return out

    def _reply(self, payload):
        self.sequence = (self.sequence + 1) & 0xFF
        return packet(self.sequence, payload)

    def _on_packet(self, payload):
        if payload[0] == 0xFF and self.step != "greeting":
            raise ConnectionError("error during %s: %r" % (self.step, payload[9:].decode(errors="replace")))
        if self.step == "greeting":
            return self._greeting(payload)
        if self.step == "auth":
            return self._auth(payload)
        if self.step == "query":                                # no CLIENT_DEPRECATE_EOF: columns, EOF, rows, EOF
            if self.columns is None:
                if payload[0] == 0x00:
                    self.step = "ready"                         # OK: a statement without a result set
                self.columns = payload[0]
            elif payload[0] == 0xFE and len(payload) < 9:
                self.eofs += 1
                if self.eofs == 2:
                    self.step = "ready"
            elif self.eofs == 1:
                self.rows.append(payload)
            return b""
        raise ConnectionError("a packet while %s" % self.step)

    def _greeting(self, payload):
        if payload[0] == 0xFF:
            raise ConnectionError("refused: %r" % payload[3:].decode(errors="replace"))
        at = payload.index(b"\0", 1) + 1 + 4                    # server version, thread id
        self.scramble = payload[at:at + 8]
        at += 8 + 1 + 2 + 1 + 2 + 2                             # filler, capabilities, charset, status, capabilities
        at += 1 + 10                                            # auth data length, reserved
        self.scramble += payload[at:payload.index(b"\0", at)]
        answer = native_password(self.password, self.scramble)
        self.step = "auth"
        return self._reply(struct.pack("<IIB23x", CAPABILITIES, 1 << 24, UTF8MB4_GENERAL_CI)
                           + self.user.encode() + b"\0" + bytes([len(answer)]) + answer
                           + self.database.encode() + b"\0" + b"mysql_native_password\0" + ATTRIBUTES)

    def _auth(self, payload):
        kind = payload[0]
        if kind == 0x00:
            self.step = "ready"
            return b""
        if kind == 0xFE:                                        # AuthSwitchRequest: plugin, new scramble
            nul = payload.index(b"\0", 1)
            plugin = payload[1:nul].decode()
            self.scramble = payload[nul + 1:].rstrip(b"\0")
            if plugin == "mysql_native_password":
                return self._reply(native_password(self.password, self.scramble))
            if plugin == "caching_sha2_password":
                return self._reply(caching_sha2_password(self.password, self.scramble))
            raise ConnectionError("authentication plugin %s is not supported" % plugin)
        if kind == 0x01 and payload[1:] == b"\x03":             # caching_sha2_password: fast path passed
            return b""
        if kind == 0x01 and payload[1:] == b"\x04":             # ... full authentication: ask for the key
            return self._reply(b"\x02")
        if kind == 0x01 and payload[1:].startswith(b"-----BEGIN PUBLIC KEY"):
            secret = self.password.encode() + b"\0"
            mixed = bytes(c ^ self.scramble[i % len(self.scramble)] for i, c in enumerate(secret))
            return self._reply(rsa_oaep_encrypt(mixed, payload[1:]))
        raise ConnectionError("unexpected authentication packet %r" % payload[:16])


def run(port, user, password, database, statements, timeout=10):
    """Runs ``statements`` on one blocking connection; returns the rows of the last one (payloads)."""
    client = Client(user, password, database)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        def until_ready():
            while client.step != "ready":
                data = sock.recv(65536)
                if not data:
                    raise ConnectionError("closed during %s" % client.step)
                answer = client.feed(data)
                if answer:
                    sock.sendall(answer)
        until_ready()
        for sql in statements:
            sock.sendall(client.query(sql))
            until_ready()
        sock.sendall(packet(0, bytes([COM_QUIT])))
    return client.rows


# ---------------------------------------------------------------------------------------------- idle clients

class _IdleClient:
    """Connect → greeting → login → one ``SELECT 1`` → idle."""

    def __init__(self, port, user, password, database):
        self.sock = socket.socket()
        self.sock.setblocking(False)
        self.sock.connect_ex(("127.0.0.1", port))
        self.client = Client(user, password, database)
        self.queried = False

    def on_readable(self):
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("closed by the proxy during " + self.client.step)
        answer = self.client.feed(data)
        if answer:
            self.sock.sendall(answer)
        if self.client.step == "ready" and not self.queried:
            self.queried = True
            self.sock.sendall(self.client.query("SELECT 1"))

    @property
    def idle(self):
        return self.queried and self.client.step == "ready"


def hold_idle_sessions(port, user, password, database, count, held=None, in_flight=100, timeout=120):
    """Opens client connections until ``held`` (a list of sockets, extended in place) has ``count``."""
    held = [] if held is None else held
    selector = selectors.DefaultSelector()
    pending = set()
    deadline = time.monotonic() + timeout
    while len(held) < count:
        while len(pending) < in_flight and len(held) + len(pending) < count:
            client = _IdleClient(port, user, password, database)
            selector.register(client.sock, selectors.EVENT_READ, client)
            pending.add(client)
        if time.monotonic() > deadline:
            raise TimeoutError("only %d of %d sessions opened" % (len(held), count))
        for key, _ in selector.select(timeout=1):
            client = key.data
            client.on_readable()
            if client.idle:
                selector.unregister(client.sock)
                pending.discard(client)
                held.append(client.sock)
    selector.close()
    return held
