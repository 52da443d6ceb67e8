#!/usr/bin/env python3
"""Fleet budgets: the cost of a lease per new connection.

Runs connguard twice in front of the local PostgreSQL, once without a fleet store and once with
fleet.store on the local Redis (127.0.0.1:6379) and a fleetMaxConnections far above the load (so
nobody waits: what is measured is the lease itself, one Lua script per connection, plus its release).
Each run is `pgbench -C` (a new connection for every transaction, `SELECT 1`), which reports the
connection rate (its tps) and the average connection time (start-up message to ready, through the
proxy: the admission latency as a client sees it). Rounds alternate off/on so that load from other
processes on the machine hits both alike; the median of the rounds is reported.

    bench/fleet.py [--rounds 5] [--seconds 10] [--clients 4] [--java PATH]

Prerequisites: the jar (./mvnw -q -DskipTests package), pgbench, PostgreSQL on 127.0.0.1:5432 (user
postgres, trust), Redis on 127.0.0.1:6379. Python 3 standard library only.
"""
import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
JAR = os.path.join(REPO, "proxy-app", "target", "connguard.jar")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config(port, fleet):
    text = f"""
admin:
  listen: 127.0.0.1:0
listeners:
  - name: pg
    protocol: postgres
    listen: 127.0.0.1:{port}
    upstream: 127.0.0.1:5432
clients:
  defaults:
    maxConnections: 1000
    queueTimeout: 30s
logging:
  level: warn
ioThreads: 2
"""
    if fleet:
        text = text.replace("    queueTimeout: 30s\n", "    queueTimeout: 30s\n    fleetMaxConnections: 10000\n")
        text += f"fleet:\n  store: redis://127.0.0.1:6379/0\n  name: bench-{uuid.uuid4().hex[:8]}\n  leaseTtl: 15s\n"
    return text


def start(java, workdir, fleet):
    port = free_port()
    path = os.path.join(workdir, f"connguard-{'on' if fleet else 'off'}.yaml")
    with open(path, "w") as f:
        f.write(config(port, fleet))
    log = open(os.path.join(workdir, f"connguard-{'on' if fleet else 'off'}.log"), "w")
    proc = subprocess.Popen([java, "-XX:+UseSerialGC", "-jar", JAR, "--config", path], stdout=log,
                            stderr=subprocess.STDOUT)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc, port
        except OSError:
            time.sleep(0.2)
    proc.kill()
    sys.exit(f"connguard did not start, see {log.name}")


def pgbench(port, seconds, clients, script):
    out = subprocess.run(["pgbench", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-n", "-C",
                          "-c", str(clients), "-j", str(min(clients, 2)), "-T", str(seconds), "-f", script,
                          "postgres"], capture_output=True, text=True, env={**os.environ, "PGAPPNAME": "bench-fleet"})
    if out.returncode != 0:
        sys.exit(out.stderr)
    tps = float(re.search(r"tps = ([0-9.]+)", out.stdout).group(1))
    conn = float(re.search(r"average connection time = ([0-9.]+) ms", out.stdout).group(1))
    return tps, conn


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--java", default="java")
    args = ap.parse_args()
    if not os.path.exists(JAR):
        sys.exit("build the jar first: ./mvnw -q -DskipTests package")
    with tempfile.TemporaryDirectory() as workdir:
        script = os.path.join(workdir, "select1.sql")
        with open(script, "w") as f:
            f.write("SELECT 1;\n")
        procs = {}
        try:
            for fleet in (False, True):
                procs[fleet] = start(args.java, workdir, fleet)
            # Warm-up: the JVM compiles the connection set-up path over its first thousands of connections.
            for fleet in (False, True):
                pgbench(procs[fleet][1], max(5, args.seconds), args.clients, script)
            results = {False: [], True: []}
            for r in range(args.rounds):
                for fleet in (False, True) if r % 2 == 0 else (True, False):
                    results[fleet].append(pgbench(procs[fleet][1], args.seconds, args.clients, script))
        finally:
            for proc, _ in procs.values():
                proc.terminate()
                proc.wait(30)
    load = os.getloadavg()
    print(f"pgbench -C -c {args.clients} -T {args.seconds}, SELECT 1, {args.rounds} rounds alternating, median;"
          f" load average at the end {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on {os.cpu_count()} CPUs")
    print("| fleet store | connections/s | average connection time (ms) |")
    print("|---|---|---|")
    for fleet in (False, True):
        tps = statistics.median(t for t, _ in results[fleet])
        conn = statistics.median(c for _, c in results[fleet])
        print(f"| {'on (local Redis)' if fleet else 'off'} | {tps:.0f} | {conn:.2f} |")


if __name__ == "__main__":
    main()
