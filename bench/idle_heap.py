#!/usr/bin/env python3
"""What one idle client session costs connguard, measured without the collector's timing in it:
the live heap per session (`jcmd PID GC.class_histogram` with 0 and with N idle sessions, the difference
by class divided by N) and the resident memory after a full collection (`jcmd PID GC.run`, then 3 s,
before each reading) with 1,000 and 9,900 idle sessions. Same proxy, flags (the image's,
-XX:MaxRAM=256m) and clients (authenticated, past one query) as bench/run.py's memory phase, after the
same 3,000 sessions opened and closed.

PostgreSQL (the default): bench/pgwire.py's clients in front of its fake server. MySQL (`--protocol
mysql`): bench/mywire.py's clients (mysql_native_password, a plaintext leg) through the transaction-mode
MySQL listener of bench/connguard-mysql-transaction.yaml in front of the local MariaDB (127.0.0.1:3306,
root without a password), logging in as an account with a password that the script creates there when
missing (`--mysql-user`, `--mysql-password`; database `test`): the pool's first logins get the password
through caching_sha2_password's RSA exchange, every later client is admitted by its answer to the greeting.

    bench/idle_heap.py                                          PostgreSQL transaction mode, 2,000 sessions
    bench/idle_heap.py --config bench/connguard.yaml            relay (session) mode
    bench/idle_heap.py --protocol mysql                         MySQL transaction mode
    bench/idle_heap.py --jar /tmp/before.jar --top 40           another build; more classes

Needs the built jar (./mvnw -q -DskipTests package) and jcmd on the PATH. Prints the histogram
difference (bytes and instances per session, largest first) and both measures. See bench/README.md.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import contenders as C  # noqa: E402
import mywire  # noqa: E402
import pgwire  # noqa: E402

FAKE_PG_PORT = 25434
PORT_OFFSET = 91  # connguard's bench ports + 91: away from a bench/run.py run
TEMURIN = Path("/usr/lib/jvm/temurin-25-jdk-amd64/bin/java")


def histogram(pid):
    """Live objects by class: {class: (instances, bytes)}; the heap's filler arrays left out."""
    out = subprocess.run(["jcmd", str(pid), "GC.class_histogram"], capture_output=True, text=True,
                         check=True).stdout
    classes = {}
    for line in out.splitlines():
        m = re.match(r"\s*\d+:\s+(\d+)\s+(\d+)\s+(\S+)", line)
        if m and "FillerElement" not in m.group(3):
            classes[m.group(3)] = (int(m.group(1)), int(m.group(2)))
    return classes


class PostgresClients:
    """pgwire.py's clients in front of its fake server."""

    config = "connguard-transaction.yaml"

    def __init__(self, args):
        self.server = None

    def upstream(self):
        self.server = subprocess.Popen([sys.executable, str(C.ROOT / "bench" / "pgwire.py"), "serve",
                                        str(FAKE_PG_PORT)], stdout=subprocess.PIPE, start_new_session=True)
        self.server.stdout.readline()
        return {"pg_upstream": ("127.0.0.1", FAKE_PG_PORT)}

    def hold(self, proxy, count, held):
        pgwire.hold_idle_sessions(proxy.pg_port, "cg_bench", count, held)

    def stop(self):
        if self.server:
            os.kill(self.server.pid, 15)
            self.server.wait()


class MySqlClients:
    """mywire.py's clients through a transaction-mode listener in front of the local MariaDB."""

    config = "connguard-mysql-transaction.yaml"

    def __init__(self, args):
        self.user, self.password, self.database = args.mysql_user, args.mysql_password, args.mysql_database

    def upstream(self):
        host, port = C.MYSQL
        mywire.run(port, "root", "", self.database, [
            "CREATE USER IF NOT EXISTS '%s'@'%%' IDENTIFIED BY '%s'" % (self.user, self.password),
            "GRANT ALL PRIVILEGES ON `%s`.* TO '%s'@'%%'" % (self.database, self.user)])
        return {"mysql_upstream": (host, port)}

    def hold(self, proxy, count, held):
        mywire.hold_idle_sessions(proxy.mysql_port, self.user, self.password, self.database, count, held)

    def stop(self):
        pass


PROTOCOLS = {"postgres": PostgresClients, "mysql": MySqlClients}


def rss_after_gc(proxy):
    subprocess.run(["jcmd", str(proxy.pid), "GC.run"], capture_output=True, check=True)
    time.sleep(3)
    return proxy.rss()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--protocol", choices=sorted(PROTOCOLS), default="postgres")
    parser.add_argument("--jar", default=str(C.JAR))
    parser.add_argument("--config", help="connguard's configuration; default: "
                        + ", ".join("%s for %s" % (p.config, name) for name, p in sorted(PROTOCOLS.items())))
    parser.add_argument("--java", default=str(TEMURIN) if TEMURIN.exists() else "java")
    parser.add_argument("--sessions", type=int, default=2000, help="idle sessions for the histogram")
    parser.add_argument("--top", type=int, default=25, help="classes shown")
    parser.add_argument("--mysql-user", default="cg_my_pool")
    parser.add_argument("--mysql-password", default="cg_my_pool_pw")
    parser.add_argument("--mysql-database", default="test")
    args = parser.parse_args()

    clients = PROTOCOLS[args.protocol](args)
    config = Path(args.config).resolve() if args.config else C.ROOT / "bench" / clients.config
    proxy = C.Connguard(args.java, None, "connguard", PORT_OFFSET, jar=Path(args.jar), config=config,
                        max_ram_mib=256)
    held = []
    try:
        proxy.start(tempfile.mkdtemp(prefix="connguard-idle-heap-"), **clients.upstream())
        for _ in range(3):
            clients.hold(proxy, 1000, held)
            pgwire.close_all(held)
        time.sleep(2)
        empty = histogram(proxy.pid)
        clients.hold(proxy, args.sessions, held)
        time.sleep(3)
        full = histogram(proxy.pid)
        pgwire.close_all(held)
        n = args.sessions
        rows = []
        for name in set(empty) | set(full):
            instances = full.get(name, (0, 0))[0] - empty.get(name, (0, 0))[0]
            size = full.get(name, (0, 0))[1] - empty.get(name, (0, 0))[1]
            rows.append((size / n, instances / n, name))
        rows.sort(reverse=True)
        print("| bytes per session | instances per session | class |\n|---|---|---|")
        for size, instances, name in rows[:args.top]:
            print("| %.0f | %.2f | `%s` |" % (size, instances, name))
        print("\nlive heap per idle session: %.0f bytes (%d sessions, %s)" % (sum(r[0] for r in rows), n, args.protocol))

        time.sleep(2)
        points = []
        for count in (1000, 9900):
            clients.hold(proxy, count, held)
            time.sleep(3)
            points.append((count, rss_after_gc(proxy)))
        (n1, r1), (n2, r2) = points
        print("resident after a full collection: %d sessions %.1f MiB, %d sessions %.1f MiB: %.2f KiB per session"
              % (n1, r1 / 1024, n2, r2 / 1024, (r2 - r1) / (n2 - n1)))
    finally:
        pgwire.close_all(held)
        proxy.stop()
        clients.stop()


if __name__ == "__main__":
    main()
