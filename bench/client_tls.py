#!/usr/bin/env python3
"""What TLS on the client leg costs connguard: throughput and CPU per transaction of
`pgbench -S -M prepared -c 16` through one connguard listener with `clientTls: allow`, its clients in
plaintext (PGSSLMODE=disable) and over TLS (PGSSLMODE=require) in alternating rounds, the direct
connection both ways for reference; and the resident memory of an idle plaintext session beside an idle
TLS session, against bench/pgwire.py's stand-in server.

    bench/client_tls.py                     5 rounds x 10 s, 2,000 idle sessions each way (~8 min)
    bench/client_tls.py --rounds 5 --seconds 15 --sessions 3000

Needs the built jar (./mvnw -q -DskipTests package), pgbench and the cg_bench database that
bench/run.py creates (pgbench -i -s 10). Prints a Markdown summary. See bench/README.md.
"""
import argparse
import os
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import contenders as C  # noqa: E402
import pgwire  # noqa: E402
import workloads as W  # noqa: E402
from run import foreign_processes  # noqa: E402

BENCH = Path(__file__).resolve().parent
FAKE_PG_PORT = 25433
SSL_REQUEST = (8).to_bytes(4, "big") + (80877103).to_bytes(4, "big")


def log(message):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), message), flush=True)


def tls_config(workdir):
    """bench/connguard.yaml with clientTls: allow on the PostgreSQL listener (self-signed certificate)."""
    text = C.CONFIG.read_text()
    marker = "    upstream: ${BENCH_PG_UPSTREAM:-127.0.0.1:5432}\n"
    if marker not in text:
        raise RuntimeError("bench/connguard.yaml changed; cannot find the PostgreSQL listener's upstream line")
    path = Path(workdir) / "connguard-client-tls.yaml"
    path.write_text(text.replace(marker, marker + "    clientTls:\n      mode: allow\n", 1))
    return path


def pgbench(port, seconds, sslmode):
    cmd = ["pgbench", "-n", "-S", "-M", "prepared", "-c", "16", "-j", "2", "-T", str(seconds),
           "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", W.DATABASE]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120,
                          env=dict(os.environ, PGSSLMODE=sslmode))
    if done.returncode != 0:
        raise RuntimeError("%s failed:\n%s" % (" ".join(cmd), (done.stdout + done.stderr)[-2000:]))
    return W.parse_pgbench(done.stdout + done.stderr)


def throughput(proxy, rounds, seconds, warmup):
    legs = [("direct", C.PG[1], "disable", False), ("direct", C.PG[1], "require", False),
            ("connguard", proxy.pg_port, "disable", True), ("connguard", proxy.pg_port, "require", True)]
    # The JIT compiler needs tens of thousands of transactions on each path (TLS included) before
    # connguard's numbers settle; a 10 s warm-up left the TLS leg at a third of its later throughput.
    log("warm-up: %d s through connguard each way, 5 s direct" % warmup)
    for _, port, sslmode, through_proxy in legs:
        pgbench(port, warmup if through_proxy else 5, sslmode)
    rows = {(name, sslmode): [] for name, _, sslmode, _ in legs}
    for r in range(rounds):
        order = legs if r % 2 == 0 else list(reversed(legs))
        for name, port, sslmode, through_proxy in order:
            cpu0 = proxy.cpu() if through_proxy else 0.0
            tx, tps = pgbench(port, seconds, sslmode)
            cpu = (proxy.cpu() - cpu0) if through_proxy else 0.0
            rows[(name, sslmode)].append(dict(tps=tps, cpu_us=cpu * 1e6 / tx if through_proxy else None))
            log("round %d %-9s sslmode=%-7s %8.0f tps%s" % (
                r + 1, name, sslmode, tps, "  %.1f us proxy CPU/tx" % (cpu * 1e6 / tx) if through_proxy else ""))
    return rows


def open_session(port, tls_context):
    """Connect (TLS through SSLRequest when tls_context is set), start up, run one query, stay idle."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    if tls_context is not None:
        sock.sendall(SSL_REQUEST)
        if sock.recv(1) != b"S":
            raise ConnectionError("TLS refused")
        sock = tls_context.wrap_socket(sock, server_hostname="localhost")
    reader = pgwire.MessageReader()
    sock.sendall(pgwire.startup_message("postgres", W.DATABASE, "idle-tls-bench"))
    for step in ("startup", "query"):
        while True:
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("closed during " + step)
            kinds = [kind for kind, _ in reader.feed(data)]
            if b"E" in kinds:
                raise ConnectionError("error during " + step)
            if b"Z" in kinds:
                break
        if step == "startup":
            sock.sendall(pgwire.query_message("SELECT 1"))
    return sock


def idle_memory(proxy, counts, workdir):
    """Resident memory slope per idle session, plaintext then TLS, each on a fresh connguard."""
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    tls.check_hostname = False
    tls.verify_mode = ssl.CERT_NONE
    server = subprocess.Popen([sys.executable, str(BENCH / "pgwire.py"), "serve", str(FAKE_PG_PORT)],
                              stdout=subprocess.PIPE, start_new_session=True)
    out = {}
    try:
        server.stdout.readline()
        for label, context in (("plaintext", None), ("tls", tls)):
            proxy.start(workdir, pg_upstream=("127.0.0.1", FAKE_PG_PORT))
            held = []
            try:
                for _ in range(20):
                    held.append(open_session(proxy.pg_port, context))
                pgwire.close_all(held)
                time.sleep(2)
                points = []
                for count in counts:
                    while len(held) < count:
                        held.append(open_session(proxy.pg_port, context))
                    time.sleep(3)
                    points.append((count, proxy.rss()))
                    log("%-9s %6d idle sessions: %8d KiB resident" % (label, count, points[-1][1]))
            finally:
                pgwire.close_all(held)
                proxy.stop()
            (n1, r1), (n2, r2) = points[0], points[-1]
            out[label] = dict(points=points, slope_kib=(r2 - r1) / (n2 - n1))
    finally:
        os.kill(server.pid, 15)
        server.wait()
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=40, help="seconds of unmeasured load through connguard, each way")
    parser.add_argument("--sessions", type=int, default=2000, help="idle sessions at the second memory point")
    parser.add_argument("--phases", default="throughput,memory")
    parser.add_argument("--port-offset", type=int, default=700,
                        help="added to connguard's bench ports (16432, 16033, 19633), away from a bench/run.py run")
    parser.add_argument("--jvm-arg", action="append", default=[],
                        help="an extra JVM flag for connguard, e.g. -Dconnguard.tls=jdk for the JDK's TLS provider")
    parser.add_argument("--java", help="JVM for connguard (default: Temurin 25 when installed, else java)")
    args = parser.parse_args()
    temurin = Path("/usr/lib/jvm/temurin-25-jdk-amd64/bin/java")
    java = args.java or (str(temurin) if temurin.exists() else shutil.which("java"))
    phases = args.phases.split(",")
    load = os.getloadavg()
    others = len(foreign_processes())
    with tempfile.TemporaryDirectory(prefix="cg-bench-tls-") as workdir:
        proxy = C.Connguard(java, jvm_flags=C.dockerfile_jvm_flags() + args.jvm_arg, config=tls_config(workdir),
                            port_offset=args.port_offset)
        lines = ["## TLS on the client leg (bench/client_tls.py)", "",
                 "connguard %s %s; load average before the run %.2f %.2f %.2f; %d other java/mvn processes." % (
                     java, " ".join(args.jvm_arg), load[0], load[1], load[2], others), ""]
        if "throughput" in phases:
            proxy.start(workdir)
            try:
                rows = throughput(proxy, args.rounds, args.seconds, args.warmup)
            finally:
                proxy.stop()
            base = statistics.median(r["tps"] for r in rows[("direct", "disable")])
            lines += ["`pgbench -S -M prepared -c 16 -j 2`, %d rounds x %d s after a %d s warm-up each way, median:" % (
                args.rounds, args.seconds, args.warmup), "",
                      "| leg | client sslmode | tps | vs direct plaintext | connguard CPU per tx |", "|---|---|---|---|---|"]
            for (name, sslmode), values in rows.items():
                tps = statistics.median(v["tps"] for v in values)
                cpu = [v["cpu_us"] for v in values if v["cpu_us"] is not None]
                lines.append("| %s | %s | %.0f | %.2fx | %s |" % (
                    name, sslmode, tps, tps / base, "%.1f us" % statistics.median(cpu) if cpu else ""))
            lines.append("")
        if "memory" in phases:
            counts = (max(100, args.sessions // 4), args.sessions)
            memory = idle_memory(proxy, counts, workdir)
            lines += ["Idle sessions against the stand-in server (resident memory, %d to %d sessions):" % counts, "",
                      "| client leg | KiB per idle session |", "|---|---|"]
            for label, m in memory.items():
                lines.append("| %s | %.1f |" % (label, m["slope_kib"]))
            lines.append("")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
