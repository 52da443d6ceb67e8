"""The things a benchmark connects through: the database directly, connguard, PgBouncer and HAProxy.

Each proxy is started from a configuration this module writes into a temporary directory, listens on
loopback only, and is stopped by its own process id. CPU time and resident memory are read from
/proc/<pid>/stat and /proc/<pid>/status.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
JAR = ROOT / "proxy-app" / "target" / "connguard.jar"
CONFIG = ROOT / "bench" / "connguard.yaml"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

# Every port below is under the kernel's ephemeral range (32768-60999 here), so that the tens of
# thousands of connections of a run never hold one of them when a proxy binds it.
PG = ("127.0.0.1", 5432)
MYSQL = ("127.0.0.1", 3306)


def port_taken(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def wait_port(port, seconds=30, proc=None):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("process exited with %s before listening on %d" % (proc.returncode, port))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError("nothing listens on port %d" % port)


def cpu_seconds(pid):
    """utime + stime of a process (all its threads), in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_jiffies():
    """(busy, total) clock ticks of all CPUs since boot, from the first line of /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal (guest is inside user)
    return total - idle, total


def context_switches(pid):
    """Voluntary and involuntary context switches of a process, summed over its live threads."""
    total = 0
    for status in Path("/proc/%d/task" % pid).glob("*/status"):
        try:
            with open(status) as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")):
                        total += int(line.split()[1])
        except FileNotFoundError:  # a thread that ended while we read
            pass
    return total


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS for %d" % pid)


def dockerfile_jvm_flags():
    """The JVM flags of the image's ENTRYPOINT, without the jar and the container-only tmpdir."""
    text = (ROOT / "Dockerfile").read_text()
    joined = re.sub(r"\\\n", " ", text)
    match = re.search(r"^ENTRYPOINT\s+(\[.*?\])", joined, re.M | re.S)
    args = json.loads(match.group(1))
    return [a for a in args[1:args.index("-jar")] if not a.startswith("-Djava.io.tmpdir")]


def java_feature(java):
    out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    version = re.search(r'version "([^"]+)"', out).group(1)
    return int(version.split(".")[0]), out.splitlines()[0:3]


class Contender:
    """A way to reach the databases; ``pg_port`` / ``mysql_port`` are None where it has none."""

    name = "direct"
    label = "direct"
    pid = None

    def __init__(self):
        self.pg_port = PG[1]
        self.mysql_port = MYSQL[1]

    def serves(self, protocol):
        return (self.pg_port if protocol == "postgres" else self.mysql_port) is not None

    def port(self, protocol):
        return self.pg_port if protocol == "postgres" else self.mysql_port

    def start(self, workdir, pg_upstream=PG, mysql_upstream=MYSQL):
        return self

    def stop(self):
        pass

    def cpu(self):
        return cpu_seconds(self.pid) if self.pid else 0.0

    def switches(self):
        return context_switches(self.pid) if self.pid else 0

    def rss(self):
        return rss_kib(self.pid) if self.pid else 0


class _Process(Contender):
    proc = None

    def _spawn(self, cmd, workdir, env=None):
        # A leftover process of an earlier run on one of our ports would answer in place of the one spawned here,
        # which then exits at once: its CPU and memory would read as a zombie's zeros.
        for port in (self.pg_port, self.mysql_port):
            if port is not None and port_taken(port):
                raise RuntimeError("port %d is taken by another process (a contender left over from an earlier "
                                   "run?): %s cannot start" % (port, self.name))
        log = open(Path(workdir) / ("%s.log" % self.name), "ab")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=workdir,
                                     start_new_session=True)
        self.pid = self.proc.pid
        self.log = log

    def stop(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()
        self.proc = None
        self.pid = None


class Connguard(_Process):
    """The built jar on ``java`` with the image's JVM flags (or ``jvm_flags``), configured by bench/connguard.yaml;
    with ``max_ram_mib``, as in a container with that memory limit (-XX:MaxRAM, what the JVM reads from a cgroup)."""

    def __init__(self, java, jvm_flags=None, name="connguard", port_offset=0, env=None, jar=JAR, config=CONFIG,
                 max_ram_mib=0):
        super().__init__()
        self.max_ram = ["-XX:MaxRAM=%dm" % max_ram_mib] if max_ram_mib else []
        self.java = java
        self.env = dict(env or {})
        self.jar = jar
        self.config = config
        self.feature, self.version = java_feature(java)
        self.jvm_flags = dockerfile_jvm_flags() if jvm_flags is None else jvm_flags
        self.name = name
        self.label = "connguard" if name == "connguard" else name
        self.pg_port = 16432 + port_offset
        self.mysql_port = 16033 + port_offset
        self.admin_port = 19633 + port_offset

    def command(self, extra=()):
        return [self.java, *self.max_ram, *self.jvm_flags, *extra, "-jar", str(self.jar), "--config", str(self.config)]

    def environment(self, pg_upstream=PG, mysql_upstream=MYSQL):
        env = dict(os.environ)
        env.update(BENCH_PG_PORT=str(self.pg_port), BENCH_MYSQL_PORT=str(self.mysql_port),
                   BENCH_ADMIN_PORT=str(self.admin_port), BENCH_PG_UPSTREAM="%s:%d" % pg_upstream,
                   BENCH_MYSQL_UPSTREAM="%s:%d" % mysql_upstream)
        env.update(self.env)
        env.pop("JDK_JAVA_OPTIONS", None)
        env.pop("JAVA_TOOL_OPTIONS", None)
        return env

    def start(self, workdir, pg_upstream=PG, mysql_upstream=MYSQL, extra=()):
        self._spawn(self.command(extra), workdir, self.environment(pg_upstream, mysql_upstream))
        self.wait_ready(60)
        return self

    def ready(self):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/readyz" % self.admin_port, timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def wait_ready(self, seconds, poll=0.005):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("connguard exited with %s; see its log" % self.proc.returncode)
            if self.ready():
                return
            time.sleep(poll)
        raise TimeoutError("connguard not ready after %d s" % seconds)


# The PgBouncer binary: PGBOUNCER=/opt/pgbouncer-1.24/bin/pgbouncer picks a build of a newer release than the
# distribution's (bench/README.md, "Prerequisites").
PGBOUNCER = os.environ.get("PGBOUNCER", "pgbouncer")


def pgbouncer_version():
    """(major, minor) of PGBOUNCER, (0, 0) when it does not say."""
    out = subprocess.run([PGBOUNCER, "--version"], capture_output=True, text=True).stdout
    m = re.search(r"PgBouncer (\d+)\.(\d+)", out)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


class PgBouncer(_Process):
    """PgBouncer in session mode (PostgreSQL only), with its defaults except the limits, trust authentication;
    with ``pool_size``, in transaction mode with that default_pool_size (``pgbouncer-tx``). From 1.21 on, the
    transaction mode tracks protocol-level prepared statements (max_prepared_statements, set to 200 here as
    1.22's default is), which pgbench -M prepared needs; older releases fail that workload."""

    def __init__(self, pool_size=0):
        super().__init__()
        self.pool_size = pool_size
        self.name = self.label = "pgbouncer-tx" if pool_size else "pgbouncer"
        self.pg_port = 26433 if pool_size else 26432
        self.mysql_port = None

    def start(self, workdir, pg_upstream=PG, mysql_upstream=MYSQL):
        workdir = Path(workdir)
        (workdir / "pgbouncer-users.txt").write_text('"postgres" ""\n')
        ini = workdir / ("%s.ini" % self.name)
        ini.write_text("\n".join([
            "[databases]",
            "* = host=%s port=%d" % pg_upstream,
            "[pgbouncer]",
            "listen_addr = 127.0.0.1",
            "listen_port = %d" % self.pg_port,
            "unix_socket_dir =",
            "auth_type = trust",
            "auth_file = %s" % (workdir / "pgbouncer-users.txt"),
            "pool_mode = %s" % ("transaction" if self.pool_size else "session"),
            "max_client_conn = 10100",
            "default_pool_size = %d" % (self.pool_size or 10100),

            "listen_backlog = 4096",
            "ignore_startup_parameters = extra_float_digits",
            "log_connections = 0",
            "log_disconnections = 0",
        ] + (["max_prepared_statements = 200"] if pgbouncer_version() >= (1, 21) else []) + [""]))
        os.chmod(workdir, 0o755)
        for f in workdir.iterdir():
            os.chmod(f, 0o644)
        # PgBouncer refuses to run as root; -u makes it switch to the postgres user.
        user = ["-u", "postgres"] if os.geteuid() == 0 else []
        self._spawn([PGBOUNCER, *user, str(ini)], workdir)
        wait_port(self.pg_port, proc=self.proc)
        return self


class HAProxy(_Process):
    """HAProxy in TCP mode (both protocols), its defaults except the limits and timeouts."""

    name = label = "haproxy"

    def __init__(self):
        super().__init__()
        self.pg_port = 27432
        self.mysql_port = 27033

    def start(self, workdir, pg_upstream=PG, mysql_upstream=MYSQL):
        cfg = Path(workdir) / "haproxy.cfg"
        cfg.write_text("\n".join([
            "global",
            "    maxconn 9950",
            "defaults",
            "    mode tcp",
            "    maxconn 9950",
            "    timeout connect 5s",
            "    timeout client 1h",
            "    timeout server 1h",
            "listen pg",
            "    bind 127.0.0.1:%d" % self.pg_port,
            "    server db %s:%d" % pg_upstream,
            "listen mysql",
            "    bind 127.0.0.1:%d" % self.mysql_port,
            "    server db %s:%d" % mysql_upstream,
            "",
        ]))
        self._spawn(["haproxy", "-db", "-f", str(cfg)], workdir)
        wait_port(self.pg_port, proc=self.proc)
        wait_port(self.mysql_port, proc=self.proc)
        return self


def available(tool):
    return shutil.which(tool) is not None
