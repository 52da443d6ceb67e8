#!/usr/bin/env python3
"""connguard's benchmark: connguard side by side with a direct connection, PgBouncer (session mode) and
HAProxy (TCP mode), all on loopback in front of the local PostgreSQL and MariaDB, in interleaved rounds.

    bench/run.py --preset short     3 rounds x 8 s per data point (~40 min)
    bench/run.py --preset full      5 rounds x 15 s per data point (~100 min)
    bench/run.py --preset quick     1 round x 4 s, for a look while developing (~12 min)

Writes bench/RESULTS.md (and bench/results.json with every round). Needs the built jar
(./mvnw -q -DskipTests package), pgbench, sysbench, and pgbouncer / haproxy when installed. See
bench/README.md.
"""
import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import contenders as C  # noqa: E402
import pgwire  # noqa: E402
import workloads as W  # noqa: E402

BENCH = Path(__file__).resolve().parent
PRESETS = {
    "quick": dict(rounds=1, seconds=4, stream_mib=256, sessions=(1000, 3000), startup_runs=3),
    "short": dict(rounds=3, seconds=8, stream_mib=1024, sessions=(1000, 9900), startup_runs=5),
    "full": dict(rounds=5, seconds=15, stream_mib=1024, sessions=(1000, 9900), startup_runs=9),
}
FAKE_PG_PORT = 25432
STREAM_SQL = "SELECT repeat('x', 1048576) FROM generate_series(1, %d)"


def log(message):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), message), flush=True)


# Server connections per pool of the transaction-mode contenders (pgbouncer-tx and the connguard variant
# configured by bench/connguard-transaction.yaml, whose pool.size must match).
TRANSACTION_POOL_SIZE = 20
WARM_TRANSACTIONS = 12000
WARM_MAX_SECONDS = 90


def foreign_processes(own_pids=()):
    """Command lines of java and mvn processes that are not this script's contenders (a build or test)."""
    out = subprocess.run(["pgrep", "-a", "-f", "java|mvn"], capture_output=True, text=True).stdout.strip()
    own = {str(os.getpid())} | {str(pid) for pid in own_pids}
    return [line for line in out.splitlines() if line.split()[0] not in own and "pgrep" not in line]


def wait_until_quiet(max_load, sleep, max_wait):
    """Waits until the 1-minute load average is below max_load and no other java or mvn process runs;
    returns whether it got quiet within max_wait seconds."""
    deadline = time.monotonic() + max_wait
    while True:
        load = os.getloadavg()[0]
        others = foreign_processes()
        if load < max_load and not others:
            return True
        if time.monotonic() + sleep > deadline:
            log("machine still busy (load %.2f, %d java/mvn processes); going on" % (load, len(others)))
            return False
        log("machine busy (load %.2f, %d java/mvn processes); waiting %d s" % (load, len(others), sleep))
        time.sleep(sleep)


# ---------------------------------------------------------------------------------------------- throughput

def throughput(contenders, workloads, rounds, seconds, results, meta):
    """Rounds A B C, C B A, ...: every workload per round, contenders in alternating order.

    First every contender runs every workload unmeasured, so that connguard's JIT compiler has compiled
    each code path before anything counts: for max(2, seconds / 3) seconds and at least WARM_TRANSACTIONS
    transactions (at most WARM_MAX_SECONDS). The count matters for the new-connection workloads: a
    query path runs thousands of times a second, the connection set-up only hundreds, and the JIT compiles
    a method after some ten thousand calls. The CPU per transaction of each warm-up chunk is kept in
    ``meta["warmup"]``, so the report can show what a cold proxy costs.
    """
    chunk = max(2, seconds // 3)
    for contender in contenders:
        for workload in workloads:
            if not contender.serves(workload.protocol):
                continue
            done, started, chunks = 0, time.monotonic(), []
            while True:
                cpu0 = contender.cpu()
                transactions, _ = workload.run(contender.port(workload.protocol), chunk)
                chunks.append(dict(transactions=transactions, cpu_seconds=contender.cpu() - cpu0))
                done += transactions
                if done >= WARM_TRANSACTIONS or time.monotonic() - started >= WARM_MAX_SECONDS:
                    break
            if contender.pid:
                meta["warmup"].setdefault(workload.key, {})[contender.name] = chunks
        log("warmed up %s" % contender.name)
    for r in range(rounds):
        order = contenders if r % 2 == 0 else list(reversed(contenders))
        for workload in workloads:
            for contender in order:
                if not contender.serves(workload.protocol):
                    continue
                cpu0, switches0, machine0 = contender.cpu(), contender.switches(), C.machine_jiffies()
                transactions, tps = workload.run(contender.port(workload.protocol), seconds)
                cpu, switches = contender.cpu() - cpu0, contender.switches() - switches0
                machine1 = C.machine_jiffies()
                busy, total = machine1[0] - machine0[0], machine1[1] - machine0[1]
                meta["data_points"] += 1
                if foreign_processes(c.pid for c in contenders if c.pid):
                    meta["disturbed_points"] += 1
                results.setdefault(workload.key, {}).setdefault(contender.name, []).append(
                    dict(round=r, tps=tps, transactions=transactions, cpu_seconds=cpu, switches=switches,
                         machine_busy=busy / total if total else 0.0,
                         machine_cpu_seconds=busy / C.CLK_TCK))
                log("round %d %-28s %-10s %10.0f tps  %6.1f us CPU/tx  %5.2f switches/tx" % (
                    r + 1, workload.key, contender.name, tps,
                    1e6 * cpu / transactions if contender.pid and transactions else 0,
                    switches / transactions if contender.pid and transactions else 0))


# ---------------------------------------------------------------------------------------------- memory

def idle_sessions(proxies, counts, workdir, churn=3000):
    """Resident memory of each proxy holding idle sessions against the fake PostgreSQL server.

    A fresh proxy gets 10 sessions opened and closed (so that every proxy has served one), then: 90 idle
    sessions (a sidecar's start-up state: ``start_90``); ``churn`` more sessions opened and closed, 1,000 at a
    time, so that connguard's JIT compiler has compiled the session set-up before the slope is measured
    (its growth is a one-time cost, shown as ``churned``, not a cost per session); then ``counts`` sessions
    held (the 90 closed first). The slope is between the first and the last of ``counts``.
    """
    server = subprocess.Popen([sys.executable, str(BENCH / "pgwire.py"), "serve", str(FAKE_PG_PORT)],
                              stdout=subprocess.PIPE, start_new_session=True)
    out = {}
    try:
        server.stdout.readline()
        for proxy in proxies:
            proxy.start(workdir, pg_upstream=("127.0.0.1", FAKE_PG_PORT))
            held = []
            try:
                pgwire.hold_idle_sessions(proxy.pg_port, W.DATABASE, 10, held)
                pgwire.close_all(held)
                time.sleep(2)
                points = [(0, proxy.rss())]
                pgwire.hold_idle_sessions(proxy.pg_port, W.DATABASE, 90, held)
                time.sleep(3)
                start_90 = proxy.rss()
                log("%-10s     90 idle sessions: %8d KiB resident" % (proxy.name, start_90))
                pgwire.close_all(held)
                for _ in range(churn // 1000):
                    pgwire.hold_idle_sessions(proxy.pg_port, W.DATABASE, 1000, held)
                    pgwire.close_all(held)
                time.sleep(3)
                churned = proxy.rss()
                log("%-10s after %d sessions opened and closed: %8d KiB resident" % (proxy.name, churn, churned))
                for count in counts:
                    pgwire.hold_idle_sessions(proxy.pg_port, W.DATABASE, count, held)
                    time.sleep(3)
                    points.append((count, proxy.rss()))
                    log("%-10s %6d idle sessions: %8d KiB resident" % (proxy.name, count, points[-1][1]))
            finally:
                pgwire.close_all(held)
                proxy.stop()
            (n1, r1), (n2, r2) = points[1], points[-1]
            out[proxy.name] = dict(points=points, slope_kib=(r2 - r1) / (n2 - n1), start_90_kib=start_90,
                                   churned_kib=churned, churn=churn)
    finally:
        os.kill(server.pid, 15)
        server.wait()
    return out


def streaming(proxies, mib, rate_mib, workdir):
    """Resident memory growth of each proxy while a client reads a ``mib`` MiB result at ``rate_mib`` MiB/s."""
    out = {}
    for proxy in proxies:
        proxy.start(workdir)
        try:
            pgwire.stream(proxy.pg_port, W.DATABASE, STREAM_SQL % 16)  # warm the path up at full speed
            time.sleep(1)
            baseline = proxy.rss()
            peak = [baseline]
            done = threading.Event()

            def sample():
                while not done.wait(0.02):
                    peak[0] = max(peak[0], proxy.rss())

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            started = time.monotonic()
            received = pgwire.stream(proxy.pg_port, W.DATABASE, STREAM_SQL % mib, rate_mib * 1024 * 1024)
            elapsed = time.monotonic() - started
            done.set()
            sampler.join()
            peak[0] = max(peak[0], proxy.rss())
            out[proxy.name] = dict(baseline_kib=baseline, peak_kib=peak[0], growth_kib=peak[0] - baseline,
                                   received=received, seconds=elapsed)
            log("%-10s streamed %d MiB in %.1f s: resident %d -> peak %d KiB" % (
                proxy.name, received >> 20, elapsed, baseline, peak[0]))
        finally:
            proxy.stop()
    return out


# ---------------------------------------------------------------------------------------------- start-up

def startup(javas, runs, workdir, max_ram_mib=0):
    """Process start to /readyz 200, per JVM, without and with a class-data archive made by a training run."""
    out = {}
    for java in javas:
        cg = C.Connguard(java, max_ram_mib=max_ram_mib)
        archive = Path(workdir) / ("connguard-jdk%d.%s" % (cg.feature, "aot" if cg.feature >= 25 else "jsa"))
        train, use = cds_flags(cg.feature, archive)
        cg.start(workdir, extra=train)
        urlopen_quietly("http://127.0.0.1:%d/metrics" % cg.admin_port)
        cg.stop()
        for label, extra in (("default", []), ("cds", use)):
            times = []
            for _ in range(runs):
                started = time.monotonic()
                cg._spawn(cg.command(extra), workdir, cg.environment())
                cg.wait_ready(60, poll=0.002)
                times.append(time.monotonic() - started)
                cg.stop()
            out["jdk%d-%s" % (cg.feature, label)] = dict(java=cg.version[0], flags=cg.jvm_flags + list(extra),
                                                          seconds=times, median=statistics.median(times))
            log("start-up JDK %d %-8s median %.3f s %s" % (cg.feature, label, statistics.median(times),
                                                         ["%.2f" % t for t in times]))
    return out


def cds_flags(feature, archive):
    """(training flags, run flags): JDK 25's AOT cache (JEP 483/514) or a dynamic AppCDS archive."""
    if feature >= 25:
        return ["-XX:AOTCacheOutput=%s" % archive], ["-XX:AOTCache=%s" % archive]
    return ["-XX:ArchiveClassesAtExit=%s" % archive], ["-XX:SharedArchiveFile=%s" % archive]


def urlopen_quietly(url):
    import urllib.request
    with urllib.request.urlopen(url, timeout=5) as r:
        r.read()


# ---------------------------------------------------------------------------------------------- report

def versions(javas):
    def run(cmd):
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
            return (done.stdout + done.stderr).strip()
        except (OSError, subprocess.SubprocessError):
            return "not installed"
    import re
    netty_version = re.search(r"<netty.version>([^<]+)<", (C.ROOT / "pom.xml").read_text()).group(1)
    return {
        "jdk": [C.java_feature(j)[1][1] if len(C.java_feature(j)[1]) > 1 else C.java_feature(j)[1][0] for j in javas],
        "netty": netty_version,
        "connguard": run(["git", "-C", str(C.ROOT), "log", "-1", "--format=%h"]),
        "pgbouncer": run([C.PGBOUNCER, "--version"]).splitlines()[0],
        "haproxy": run(["haproxy", "-v"]).splitlines()[0],
        "postgresql": run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-Atc", "SELECT version()"]),
        "mariadb": run(["mariadb", "-h", "127.0.0.1", "-u", "root", "-N", "-e", "SELECT version()"]),
        "pgbench": run(["pgbench", "--version"]),
        "sysbench": run(["sysbench", "--version"]),
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
    }


def median_of(rows, key):
    return statistics.median(row[key] for row in rows)


def cpu_per_tx(rows):
    """Median over rounds of the proxy's CPU microseconds per transaction."""
    return statistics.median(1e6 * row["cpu_seconds"] / row["transactions"] for row in rows)


def disturbance(meta):
    """What the report says about other work on the machine during the throughput rounds."""
    if "disturbed_points" not in meta:  # results.json from before the check existed
        return "."
    if meta["disturbed_points"] == 0:
        return (". No other java or mvn process (a build or a test) was running at the end of any of the %d data "
                "points; the load is the benchmark's own clients, databases and proxies." % meta["data_points"])
    return (" — **the machine was shared**: another java or mvn process (a build or a test) was running at the end "
            "of %d of the %d data points. Interleaving gives every contender the same share of the disturbance, "
            "but the absolute numbers are lower and noisier than on a quiet machine, and single comparisons "
            "within ~10%% are not significant." % (meta["disturbed_points"], meta["data_points"]))


def direct_spread(rows):
    """(max - min) / median of the direct connection's rate over the rounds of one workload."""
    rates = [row["tps"] for row in rows]
    return (max(rates) - min(rates)) / statistics.median(rates)


def switches_per_tx(rows):
    """Median over the rounds of the proxy's context switches per transaction."""
    return statistics.median(row["switches"] / row["transactions"] for row in rows)


def report(meta, results, memory, stream, start, workloads, contenders, args):
    names = [c.name for c in contenders]
    labels = {c.name: c.label for c in contenders}
    proxies = [c for c in contenders if c.name != "direct"]
    cg = next((c for c in contenders if c.name == "connguard"), None)
    lines = ["# connguard benchmark results", "",
             "Generated by `bench/run.py --preset %s` on %s (%d rounds of %d s per data point, contenders "
             "interleaved A B C, C B A, ...)." % (args.preset, meta["date"], args.rounds, args.seconds), "",
             "**Machine:** %s CPUs, Linux %s. The load generator, the database and the proxy share these %s "
             "cores, unpinned, identically for every contender: a proxy's cost shows up as throughput the "
             "database and the load generator lose, which is the cost an application would see on a busy node." %
             (meta["versions"]["cpus"], meta["versions"]["kernel"], meta["versions"]["cpus"]), "",
             "**Versions:** connguard `%s`; %s; Netty %s; %s; %s; %s; MariaDB %s; %s; %s." % (
                 meta["versions"]["connguard"], "; ".join(meta["versions"]["jdk"]), meta["versions"]["netty"],
                 meta["versions"]["pgbouncer"], meta["versions"]["haproxy"],
                 meta["versions"]["postgresql"].split(" on ")[0], meta["versions"]["mariadb"],
                 meta["versions"]["pgbench"], meta["versions"]["sysbench"]), "",
             "**connguard's JVM flags** (the image's ENTRYPOINT%s): `%s`" % (
                 ", in an emulated container" if cg and cg.max_ram else "", " ".join(cg.max_ram + cg.jvm_flags))
             if cg else "", "",
             "**Machine load:** 1/5/15-minute load average %s before and %s after the run%s%s" % (
                 "/".join("%.2f" % x for x in meta["load_before"]), "/".join("%.2f" % x for x in meta["load_after"]),
                 "" if meta["quiet"] is None else (" (it started on a quiet machine)" if meta["quiet"]
                                                   else " (it did not find a quiet machine)"),
                 disturbance(meta)), ""]
    if results:
        spreads = sorted(direct_spread(rows["direct"]) for rows in results.values()
                         if len(rows.get("direct", ())) > 1)
        lines += ["## Throughput", "",
                  "Median transactions per second over the rounds; in brackets the ratio to the direct connection. "
                  "The last columns compare connguard's ratio with the other proxies' (above 1.00: connguard "
                  "is faster).%s" % (
                      "" if not spreads else
                      " How steady the machine was: the direct connection's own rate varied between rounds by "
                      "%d%% in the median workload and by up to %d%% (max − min over the median); differences "
                      "between contenders of that order are not significant." % (
                          round(100 * statistics.median(spreads)), round(100 * spreads[-1]))), ""]
        others = [n for n in names if n not in ("direct", "connguard")]
        header = ["workload"] + [labels[n] for n in names] + ["connguard / %s" % labels[o] for o in others]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for w in workloads:
            rows = results.get(w.key)
            if not rows:
                continue
            direct = median_of(rows["direct"], "tps") if "direct" in rows else None
            cells = [w.label]
            ratio = {}
            for n in names:
                if n not in rows:
                    cells.append("–")
                    continue
                tps = median_of(rows[n], "tps")
                ratio[n] = tps / direct if direct else None
                cells.append("%s" % fmt_int(tps) if n == "direct" or not direct else "%s (%.2f)" % (fmt_int(tps), ratio[n]))
            for o in others:
                cells.append("**%.2f**" % (ratio["connguard"] / ratio[o]) if direct and o in ratio and "connguard" in ratio
                             else "–")
            lines.append("| " + " | ".join(cells) + " |")
        lines += ["", "### Proxy CPU time per transaction", "",
                  "utime + stime of the proxy process (all its threads: event loops, JIT compiler, GC) from "
                  "/proc/<pid>/stat over the run, divided by the transactions; median over the rounds, in "
                  "microseconds.", ""]
        header = ["workload"] + [p.label for p in proxies]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for w in workloads:
            rows = results.get(w.key)
            if not rows:
                continue
            cells = [w.label] + ["%.1f" % cpu_per_tx(rows[p.name]) if p.name in rows else "–" for p in proxies]
            lines.append("| " + " | ".join(cells) + " |")
        if any("machine_busy" in row for rows in results.values() for n in rows for row in rows[n]):
            everyone = ["direct"] + [p.name for p in proxies]
            labels = {"direct": "direct", **{p.name: p.label for p in proxies}}
            lines += ["", "### The whole machine per transaction", "",
                      "CPU time of every process on the machine (the load generator, the database, the proxy, and "
                      "anything else running) over the run, from /proc/stat, divided by the transactions, in "
                      "microseconds; in brackets how busy the CPUs were. A proxy whose column grows by more than "
                      "its own CPU time makes the others work harder; one that leaves the CPUs idle while the "
                      "direct connection keeps them busy adds latency, not work. Median over the rounds.", ""]
            head = ["workload"] + [labels[n] for n in everyone]
            lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            for w in workloads:
                rows = results.get(w.key)
                if not rows:
                    continue
                cells = [w.label]
                for n in everyone:
                    rs = [r for r in rows.get(n, []) if "machine_busy" in r and r["transactions"]]
                    if not rs:
                        cells.append("–")
                        continue
                    per = statistics.median(1e6 * r["machine_cpu_seconds"] / r["transactions"] for r in rs)
                    cells.append("%.0f (%.0f%%)" % (per, 100 * statistics.median(r["machine_busy"] for r in rs)))
                lines.append("| " + " | ".join(cells) + " |")
        if any("switches" in row for rows in results.values() for n in rows for row in rows[n]):
            lines += ["", "### Proxy context switches per transaction", "",
                      "Voluntary and involuntary context switches of all the proxy's threads "
                      "(/proc/<pid>/task/*/status) over the run, divided by the transactions; median over the "
                      "rounds. A thread that finds nothing to do sleeps in epoll and is switched out; each "
                      "switch costs kernel time that shows in the CPU table above.", ""]
            lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            for w in workloads:
                rows = results.get(w.key)
                if not rows:
                    continue
                cells = [w.label] + ["%.2f" % switches_per_tx(rows[p.name])
                                     if p.name in rows and all("switches" in r for r in rows[p.name]) else "–"
                                     for p in proxies]
                lines.append("| " + " | ".join(cells) + " |")
        warm = {k: v for k, v in meta.get("warmup", {}).items() if any(len(c) > 1 for c in v.values())}
        if warm:
            lines += ["", "### Warm-up", "",
                      "Before the rounds, every contender ran each workload unmeasured for at least %s transactions "
                      "(at most %d s), in chunks of %d s. For the workloads that took more than one chunk (the "
                      "new-connection ones, and the slower one-client ones), the proxy's CPU per transaction in its "
                      "first and its last chunk, in microseconds: connguard's first chunks include the JIT compiler "
                      "at work, which is what a freshly started proxy costs during its first connections." % (
                          fmt_int(WARM_TRANSACTIONS), WARM_MAX_SECONDS, max(2, args.seconds // 3)), "",
                      "| workload | " + " | ".join(p.label for p in proxies) + " |", "|" + "---|" * (len(proxies) + 1)]
            for w in workloads:
                if w.key not in warm:
                    continue
                cells = [w.label]
                for p in proxies:
                    chunks = warm[w.key].get(p.name)
                    if not chunks:
                        cells.append("–")
                        continue
                    per = [1e6 * c["cpu_seconds"] / c["transactions"] for c in chunks if c["transactions"]]
                    cells.append("%.0f → %.0f (%s transactions)" % (per[0], per[-1],
                                                                   fmt_int(sum(c["transactions"] for c in chunks))))
                lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    if memory:
        lines += ["## Memory", "", "### Idle sessions",
                  "", "Resident memory (VmRSS) of a freshly started proxy holding idle sessions, each authenticated "
                  "and past one query (so that PgBouncer has given it a server connection), against a minimal "
                  "PostgreSQL stand-in (`bench/pgwire.py serve`: the local server allows 400 connections)%s. "
                  "*90 sessions*: right after start-up, a sidecar's usual state. Then %s sessions are opened and "
                  "closed (*after churn*): connguard's JIT compiler compiles the session set-up meanwhile, a "
                  "one-time cost that would otherwise count as a cost per session. The slope is between the "
                  "first and the last count held after that. The per-process file limit here is "
                  "%s (hard), so a 1:1 proxy can hold at most ~9,950 sessions (two sockets each): 9,900 is "
                  "the largest count." % (
                      "; connguard in an emulated %d MiB container (`-XX:MaxRAM=%dm`: the JVM sizes itself from "
                      "that as from a cgroup's limit)" % (args.memory_limit, args.memory_limit)
                      if args.memory_limit else "",
                      fmt_int(next(iter(memory.values())).get("churn", 0)), C_nofile()), ""]
        first = next(iter(memory.values()))
        counts = [n for n, _ in first["points"]]
        extra = "start_90_kib" in first
        header = (["proxy", "%s sessions" % fmt_int(counts[0])]
                  + (["90 sessions", "after churn"] if extra else [])
                  + ["%s sessions" % fmt_int(n) for n in counts[1:]] + ["KiB per session (slope)"])
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for name, m in memory.items():
            mib = ["%.1f MiB" % (r / 1024) for _, r in m["points"]]
            cells = ([labels.get(name, name), mib[0]]
                     + (["**%.1f MiB**" % (m["start_90_kib"] / 1024), "%.1f MiB" % (m["churned_kib"] / 1024)]
                        if extra else [])
                     + mib[1:] + ["**%.1f**" % m["slope_kib"]])
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    if stream:
        lines += ["### Streaming a large result to a slow client", "",
                  "`%s` (%d MiB) read by a client at %d MiB/s through each proxy; resident memory before the "
                  "query (after a warm-up stream) and its peak while streaming, sampled every 20 ms." % (
                      STREAM_SQL % args.stream_mib, args.stream_mib, args.stream_rate), ""]
        lines += ["| proxy | before | peak | growth |", "|---|---|---|---|"]
        for name, s in stream.items():
            lines.append("| %s | %.1f MiB | %.1f MiB | **%.1f MiB** |" % (
                labels.get(name, name), s["baseline_kib"] / 1024, s["peak_kib"] / 1024, s["growth_kib"] / 1024))
        lines.append("")
    if start:
        lines += ["## Start-up", "", "From process start to the first `/readyz` 200 (polled every 2 ms), median "
                  "of %d starts. *cds*: with a class-data archive made by one training run of the same "
                  "configuration (JDK 25: `-XX:AOTCacheOutput` / `-XX:AOTCache`; JDK 17: "
                  "`-XX:ArchiveClassesAtExit` / `-XX:SharedArchiveFile`)." % args.startup_runs, ""]
        lines += ["| JVM | archive | median | all runs |", "|---|---|---|---|"]
        for key, s in start.items():
            jdk, label = key.split("-", 1)
            lines.append("| %s | %s | **%.2f s** | %s |" % (jdk.replace("jdk", "JDK "), label, s["median"],
                                                         ", ".join("%.2f" % t for t in s["seconds"])))
        lines.append("")
    lines += targets(results, memory, stream, start, workloads)
    lines += ["## Commands", "", "Every client runs in plaintext (`PGSSLMODE=disable`, `--mysql-ssl=off`): "
              "connguard's listeners keep clientTls disabled, PgBouncer refuses TLS by default, and libpq's default "
              "`sslmode=prefer` would otherwise encrypt only the direct and HAProxy legs. "
              "Each data point runs one of these against the contender's port (direct: "
              "PostgreSQL 5432, MariaDB 3306; connguard 16432 / 16033; PgBouncer 26432; HAProxy 27432 / 27033), "
              "shown here for the direct connection:", "", "```"]
    for w in workloads:
        if results and w.key not in results:
            continue
        command = " ".join(w.command(5432 if w.protocol == "postgres" else 3306, args.seconds))
        lines.append(command.replace(str(C.ROOT) + "/", ""))
    lines += ["```", "", "connguard: `%s` with bench/connguard.yaml; PgBouncer and HAProxy: the configurations "
              "in bench/contenders.py (session mode, trust authentication; TCP mode), written to a temporary "
              "directory. Raw numbers of every round: bench/results.json." % " ".join(
                  ["java"] + (cg.max_ram + cg.jvm_flags if cg else []) + ["-jar", "proxy-app/target/connguard.jar", "--config",
                                                               "bench/connguard.yaml"]), ""]
    return "\n".join(lines)


def targets(results, memory, stream, start, workloads):
    """The bars of issue 8, each with the value reached and whether it is met."""
    rows = []

    def ratio(rows_, name):
        return median_of(rows_[name], "tps") / median_of(rows_["direct"], "tps")

    for w in workloads:
        r = results.get(w.key)
        if not r or "direct" not in r or "connguard" not in r:
            continue
        connect = w.key.endswith("connect")
        for other, label in (("haproxy", "HAProxy"), ("pgbouncer", "PgBouncer")):
            if other not in r or (connect and other == "pgbouncer"):
                continue
            mine, theirs = ratio(r, "connguard"), ratio(r, other)
            if connect:
                rows.append(("%s: connection rate >= 0.95 x %s's" % (w.label, label),
                             "%.2f x" % (mine / theirs), mine >= 0.95 * theirs))
            else:
                rows.append(("%s: ratio to direct >= %s's" % (w.label, label),
                             "%.2f vs %.2f" % (mine, theirs), mine >= theirs))
        if w.key.endswith("-16") and "pgbouncer" in r:
            mine, theirs = cpu_per_tx(r["connguard"]), cpu_per_tx(r["pgbouncer"])
            rows.append(("%s: CPU per transaction <= PgBouncer's" % w.label, "%.1f vs %.1f us" % (mine, theirs),
                         mine <= theirs))
    if "connguard" in memory:
        slope = memory["connguard"]["slope_kib"]
        rows.append(("resident memory per idle session (slope, up to %s sessions) <= 8 KiB"
                     % fmt_int(memory["connguard"]["points"][-1][0]), "%.1f KiB" % slope, slope <= 8))
        rows.append(("issue 21: resident memory per idle session <= 4 KiB", "%.1f KiB" % slope, slope <= 4))
        if "start_90_kib" in memory["connguard"]:
            rss = memory["connguard"]["start_90_kib"] / 1024
            rows.append(("issue 21: resident memory after start-up with 90 idle sessions <= 48 MiB",
                         "%.1f MiB" % rss, rss <= 48))
    if "connguard" in stream:
        growth = stream["connguard"]["growth_kib"] / 1024
        rows.append(("resident memory growth streaming %d MiB to a slow client <= 64 MiB"
                     % (stream["connguard"]["received"] >> 20), "%.1f MiB" % growth, growth <= 64))
    for key, s in start.items():
        jdk, label = key.split("-", 1)
        rows.append(("ready <= 1 s (%s, %s)" % (jdk.replace("jdk", "JDK "), "class-data archive" if label == "cds"
                                                else "no archive"), "%.2f s" % s["median"], s["median"] <= 1.0))
    if not rows:
        return []
    met = sum(1 for row in rows if row[2])
    out = ["## Targets (issues 8 and 21)", "", "%d of %d met. What limits connguard where a bar is missed, from profiles: "
           "[bench/README.md](README.md#what-limits-connguard)." % (met, len(rows)), "",
           "| target | reached | met |", "|---|---|---|"]
    out += ["| %s | %s | %s |" % (name, value, "yes" if ok else "**no**") for name, value, ok in rows]
    return out + [""]


def C_nofile():
    import resource
    return fmt_int(resource.getrlimit(resource.RLIMIT_NOFILE)[1])


def fmt_int(n):
    return "{:,}".format(int(round(n)))


# ---------------------------------------------------------------------------------------------- main

def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=PRESETS, default="short")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--seconds", type=int, help="duration of one data point")
    parser.add_argument("--phases", default="throughput,memory,stream,startup")
    parser.add_argument("--only", help="comma-separated workload keys (e.g. pg-simple-16,my-connect)")
    parser.add_argument("--contenders", default="direct,connguard,pgbouncer,haproxy")
    parser.add_argument("--java", action="append", help="JVM for connguard (repeat to add contenders); default: "
                        "Temurin 25 when installed (the image's runtime), else java on PATH")
    parser.add_argument("--startup-java", action="append", help="JVMs for the start-up phase (default: every --java "
                        "plus JDK 17 from PATH)")
    parser.add_argument("--jvm-flags", help="connguard's JVM flags instead of the Dockerfile's")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=FLAGS",
                        help="an extra connguard contender with these JVM flags (e.g. serial='-XX:+UseSerialGC'); "
                             "VAR=VALUE words set its environment (BENCH_IO_THREADS=1: one event loop), JAR=PATH "
                             "and CONFIG=PATH run another build (a baseline); without JVM flags it gets connguard's; "
                             "repeat to compare in the same interleaved rounds")
    parser.add_argument("--memory-limit", type=int, default=256, metavar="MIB",
                        help="run connguard as in a container with this memory limit (-XX:MaxRAM, what the JVM "
                             "reads from the cgroup; the chart's default limit is 256); 0: the machine's memory")
    parser.add_argument("--stream-rate", type=int, default=100, help="MiB/s the slow client reads")
    parser.add_argument("--wait-quiet", type=int, default=0, metavar="MINUTES",
                        help="first wait up to MINUTES for load < 0.3 and no other java/mvn process "
                             "(checks every 120 s); the report says whether it was quiet")
    parser.add_argument("--output", default=str(BENCH / "RESULTS.md"))
    parser.add_argument("--from-json", metavar="FILE", help="only write the report again from a results.json")
    args = parser.parse_args()
    for key, value in PRESETS[args.preset].items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    phases = set(args.phases.split(","))
    if not C.JAR.exists():
        sys.exit("build the jar first: ./mvnw -q -DskipTests package")
    temurin = Path("/usr/lib/jvm/temurin-25-jdk-amd64/bin/java")
    javas = args.java or [str(temurin) if temurin.exists() else shutil.which("java")]
    startup_javas = args.startup_java or list(dict.fromkeys(javas + [shutil.which("java")]))
    jvm_flags = args.jvm_flags.split() if args.jvm_flags else None

    contenders = []
    for name in args.contenders.split(","):
        if name == "direct":
            contenders.append(C.Contender())
        elif name == "connguard":
            for i, java in enumerate(javas):
                feature = C.java_feature(java)[0]
                contenders.append(C.Connguard(java, jvm_flags, "connguard" if i == 0 else "connguard-jdk%d" % feature, i,
                                              max_ram_mib=args.memory_limit))
            for j, variant in enumerate(args.variant, start=len(javas)):
                label, spec = variant.split("=", 1)
                flags, env, files = [], {}, {}
                for token in spec.split():
                    name, _, value = token.partition("=")
                    if name in ("JAR", "CONFIG"):
                        files[name.lower()] = Path(value).resolve()
                    elif re.fullmatch(r"[A-Z][A-Z0-9_]*", name) and _:
                        env[name] = value
                    else:
                        flags.append(token)
                contenders.append(C.Connguard(javas[0], flags or jvm_flags, "connguard-" + label, j, env,
                                              max_ram_mib=args.memory_limit, **files))
        elif name == "pgbouncer" and C.available(C.PGBOUNCER):
            contenders.append(C.PgBouncer())
        elif name == "connguard-tx":
            contenders.append(C.Connguard(javas[0], jvm_flags, "connguard-tx", 7, max_ram_mib=args.memory_limit,
                                          config=BENCH / "connguard-transaction.yaml"))
        elif name == "pgbouncer-tx" and C.available(C.PGBOUNCER):
            contenders.append(C.PgBouncer(pool_size=TRANSACTION_POOL_SIZE))
        elif name == "haproxy" and C.available("haproxy"):
            contenders.append(C.HAProxy())
        elif name not in ("pgbouncer", "pgbouncer-tx", "haproxy"):
            sys.exit("unknown contender " + name)
    workloads = W.all_workloads()
    if args.from_json:
        raw = json.loads(Path(args.from_json).read_text())
        meta = raw["meta"]
        for key in ("preset", "rounds", "seconds"):
            setattr(args, key, meta[key])
        args.memory_limit = meta.get("memory_limit", 0)
        Path(args.output).write_text(report(meta, raw["throughput"], raw["memory"], raw["stream"], raw["startup"],
                                            workloads, contenders, args))
        return
    if args.only:
        keys = args.only.split(",")
        workloads = [w for w in workloads if w.key in keys]

    quiet = wait_until_quiet(0.3, 120, args.wait_quiet * 60) if args.wait_quiet else None
    W.prepare(log)
    meta = dict(date=datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"), versions=versions(startup_javas),
                preset=args.preset, rounds=args.rounds, seconds=args.seconds, quiet=quiet, memory_limit=args.memory_limit,
                load_before=os.getloadavg(), data_points=0, disturbed_points=0, warmup={})
    results, memory, stream, start = {}, {}, {}, {}
    proxies = [c for c in contenders if c.name != "direct"]
    with tempfile.TemporaryDirectory(prefix="connguard-bench-") as workdir:
        log("work directory %s" % workdir)
        try:
            if "throughput" in phases:
                for contender in contenders:
                    contender.start(workdir)
                try:
                    throughput(contenders, workloads, args.rounds, args.seconds, results, meta)
                finally:
                    for contender in contenders:
                        contender.stop()
            if "memory" in phases:
                memory = idle_sessions(proxies, args.sessions, workdir)
            if "stream" in phases:
                stream = streaming(proxies, args.stream_mib, args.stream_rate, workdir)
            if "startup" in phases:
                start = startup(startup_javas, args.startup_runs, workdir, args.memory_limit)
        finally:
            for contender in contenders:
                contender.stop()
            for log_file in Path(workdir).glob("*.log"):
                shutil.copy(log_file, Path(tempfile.gettempdir()) / ("connguard-bench-" + log_file.name))
    meta["load_after"] = os.getloadavg()
    raw = dict(meta=meta, throughput=results, memory=memory, stream=stream, startup=start)
    Path(args.output).with_name(Path(args.output).stem.lower() + ".json").write_text(json.dumps(raw, indent=1))
    text = report(meta, results, memory, stream, start, workloads, contenders, args)
    Path(args.output).write_text(text)
    log("wrote %s" % args.output)


if __name__ == "__main__":
    main()
