"""The load generators: pgbench and sysbench, one run each, parsed into transactions and tps."""
import os
import re
import subprocess
from pathlib import Path

DATABASE = "cg_bench"
PGBENCH_SCALE = 10
SYSBENCH_TABLES = 4
SYSBENCH_TABLE_SIZE = 100000
CONNECT_LUA = Path(__file__).resolve().parent / "sysbench" / "connect.lua"
# Every contender is measured in plaintext: connguard's bench listeners keep clientTls disabled (its cost
# is measured apart, by client_tls.py) and PgBouncer refuses TLS by default, while libpq's default sslmode=prefer would encrypt the direct and HAProxy legs (the local
# servers have TLS on). sysbench's --mysql-ssl is off unless asked for.
PLAINTEXT = dict(os.environ, PGSSLMODE="disable")


class Workload:
    """One benchmark configuration; ``run(port, seconds)`` returns (transactions, tps)."""

    def __init__(self, key, protocol, label, command):
        self.key = key
        self.protocol = protocol
        self.label = label
        self._command = command

    def command(self, port, seconds):
        return self._command(port, seconds)

    def run(self, port, seconds):
        cmd = self.command(port, seconds)
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120, env=PLAINTEXT)
        output = done.stdout + done.stderr
        if done.returncode != 0:
            raise RuntimeError("%s failed (%d):\n%s" % (" ".join(cmd), done.returncode, output[-2000:]))
        return parse_pgbench(output) if self.protocol == "postgres" else parse_sysbench(output)


def parse_pgbench(output):
    transactions = int(re.search(r"number of transactions actually processed: (\d+)", output).group(1))
    failed = re.search(r"number of failed transactions: (\d+)", output)
    if failed and int(failed.group(1)) > 0:
        raise RuntimeError("pgbench reported failed transactions:\n" + output[-2000:])
    tps = float(re.search(r"^tps = ([\d.]+)", output, re.M).group(1))
    return transactions, tps


def parse_sysbench(output):
    match = re.search(r"transactions:\s+(\d+)\s+\(([\d.]+) per sec", output)
    errors = re.search(r"ignored errors:\s+(\d+)", output)
    if errors and int(errors.group(1)) > 0:
        raise RuntimeError("sysbench reported errors:\n" + output[-2000:])
    return int(match.group(1)), float(match.group(2))


def pgbench(mode, clients, connect=False):
    def command(port, seconds):
        cmd = ["pgbench", "-n", "-S", "-M", mode, "-c", str(clients), "-j", str(min(clients, 2)),
               "-T", str(seconds), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres"]
        return cmd + (["-C"] if connect else []) + [DATABASE]
    return command


def sysbench(test, threads):
    def command(port, seconds):
        return ["sysbench", test, "--db-driver=mysql", "--mysql-ssl=off", "--mysql-host=127.0.0.1", "--mysql-port=%d" % port,
                "--mysql-user=root", "--mysql-db=%s" % DATABASE, "--tables=%d" % SYSBENCH_TABLES,
                "--table-size=%d" % SYSBENCH_TABLE_SIZE, "--threads=%d" % threads, "--time=%d" % seconds,
                "--report-interval=0", "run"]
    return command


def all_workloads(pg_clients=(1, 16, 64), mysql_threads=(1, 16), connect_clients=8):
    workloads = []
    for mode in ("simple", "extended", "prepared"):
        for clients in pg_clients:
            workloads.append(Workload("pg-%s-%d" % (mode, clients), "postgres",
                                      "pgbench -S -M %s, %d client%s" % (mode, clients, "" if clients == 1 else "s"),
                                      pgbench(mode, clients)))
    workloads.append(Workload("pg-connect", "postgres", "pgbench -S -C (new connection per transaction), %d clients"
                              % connect_clients, pgbench("simple", connect_clients, connect=True)))
    for test in ("oltp_point_select", "oltp_read_only"):
        for threads in mysql_threads:
            workloads.append(Workload("my-%s-%d" % (test, threads), "mysql",
                                      "sysbench %s, %d thread%s" % (test, threads, "" if threads == 1 else "s"),
                                      sysbench(test, threads)))
    workloads.append(Workload("my-connect", "mysql", "sysbench connect.lua (new connection per transaction), %d threads"
                              % connect_clients, sysbench(str(CONNECT_LUA), connect_clients)))
    return workloads


def prepare(log):
    """Creates the benchmark database and tables in both servers when they are missing."""
    have = subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-Atc",
                           "SELECT 1 FROM pg_database WHERE datname = '%s'" % DATABASE],
                          capture_output=True, text=True, check=True).stdout.strip()
    if not have:
        log("creating PostgreSQL database %s (pgbench -i -s %d)" % (DATABASE, PGBENCH_SCALE))
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qc",
                        "CREATE DATABASE %s" % DATABASE], check=True)
        subprocess.run(["pgbench", "-h", "127.0.0.1", "-U", "postgres", "-i", "-q", "-s", str(PGBENCH_SCALE),
                        DATABASE], check=True, capture_output=True)
    tables = subprocess.run(["mariadb", "-h", "127.0.0.1", "-u", "root", "-N", "-e",
                             "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '%s'" % DATABASE],
                            capture_output=True, text=True, check=True).stdout.strip()
    if tables != str(SYSBENCH_TABLES):
        log("creating MariaDB database %s (sysbench prepare)" % DATABASE)
        subprocess.run(["mariadb", "-h", "127.0.0.1", "-u", "root", "-e",
                        "DROP DATABASE IF EXISTS %s; CREATE DATABASE %s" % (DATABASE, DATABASE)], check=True)
        subprocess.run(sysbench("oltp_read_only", 4)(3306, 1)[:-1] + ["prepare"], check=True, capture_output=True)
