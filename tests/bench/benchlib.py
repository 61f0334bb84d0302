"""Shared helpers for renewd's benchmarks (python3 stdlib only).

A benchmark prints a table and exits 0; it is not a test and asserts
nothing about speed. Every figure is printed beside the target or the peer
it is compared with, measured in the same run, as a ratio. The binaries
come from BUILD (default build-bench, a RelWithDebInfo build); everything
listens on 127.0.0.1 only.
"""

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TEMPLATE = os.path.join(SRC, "contrib", "profiles", "wifi-scep.mobileconfig")
PROFILE_UUID = "D5CE0366-BF0E-4141-9C60-A4900355618A"
CA_NAME = "Test_SCEP"
CHALLENGE = "bench-challenge-7Qx"


def build_dir():
    return os.path.abspath(os.environ.get("BUILD", os.path.join(SRC, "build-bench")))


def binpath(name):
    p = os.path.join(build_dir(), name)
    if not os.access(p, os.X_OK):
        sys.exit("bench: %s missing (make bench builds it)" % p)
    return p


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def workdir(name):
    d = tempfile.mkdtemp(prefix="renewd-bench-%s-" % name, dir="/tmp")
    return d


def machine():
    """One line: cores, memory, load, kernel, SQLite; for the doc."""
    try:
        with open("/proc/meminfo") as f:
            mem = int(f.readline().split()[1]) // 1024
    except OSError:
        mem = 0
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return "%d cores (%s), %d MiB memory, load %s" % (
        os.cpu_count(), cpu, mem, loadavg())


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def ratio(measured, peer):
    if not peer:
        return "-"
    return "%.2f" % (measured / peer)


def table(title, header, rows):
    """Print a plain-text table (also valid Markdown)."""
    widths = [len(h) for h in header]
    srows = [[str(c) for c in r] for r in rows]
    for r in srows:
        for i, c in enumerate(r):
            widths[i] = max(widths[i], len(c))
    print()
    print("### " + title)
    print()
    print("| " + " | ".join(h.ljust(widths[i]) for i, h in enumerate(header)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in srows:
        print("| " + " | ".join(c.ljust(widths[i]) for i, c in enumerate(r)) + " |")
    sys.stdout.flush()


def pct(values, p):
    """p-th percentile (0..100) by nearest rank."""
    if not values:
        return 0.0
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(round(p / 100.0 * len(v) + 0.5)) - 1))
    return v[k]


def median(values):
    return statistics.median(values) if values else 0.0


def note(msg):
    sys.stderr.write("bench: %s\n" % msg)
    sys.stderr.flush()


# ---- renewd -------------------------------------------------------------

def renewd_config(d, mdm, http_port, ca_url, max_in_flight=64,
                  scan_interval="1h", log_level="info", extra_policy="",
                  token_ttl="7d", http_extra="",
                  policy=("    renew_before: 30d\n"
                          "    smear: 0s\n"
                          "    max_attempts: 3\n"
                          "    backoff: { initial: 5m, max: 1h }\n")):
    """Write d/renewd.yaml; returns its path."""
    q = json.dumps
    chal = os.path.join(d, "challenge")
    with open(chal, "w") as f:
        f.write(CHALLENGE + "\n")
    text = (
        "daemon:\n"
        "  database: %s\n"
        "  control_socket: %s\n"
        "  scan_interval: %s\n"
        "  max_in_flight: %d\n"
        "  log_level: %s\n"
        "http:\n"
        "  listen: 127.0.0.1:%d\n"
        "  public_url: http://127.0.0.1:%d\n"
        "%s"
        "certificate_authorities:\n"
        "  - name: %s\n"
        "    url: %s\n"
        "    challenge_file: %s\n"
        "    token_ttl: %s\n"
        "profiles:\n"
        "  - file: %s\n"
        "assignments:\n"
        "  - profile: \"*\"\n"
        "policies:\n"
        "  - name: default\n"
        "    match: { ca: \"*\", profile: \"*\" }\n"
        "%s"
        "%s"
        "mdm:\n%s" % (
            q(os.path.join(d, "renewd.db")), q(os.path.join(d, "renewd.sock")),
            scan_interval, max_in_flight, log_level, http_port, http_port,
            http_extra, CA_NAME, q(ca_url), q(chal), token_ttl, q(TEMPLATE),
            policy, extra_policy, mdm))
    path = os.path.join(d, "renewd.yaml")
    with open(path, "w") as f:
        f.write(text)
    return path


class Renewd:
    """A renewd process on a config; log in DIR/renewd.log."""

    def __init__(self, d, cfg, env=None):
        self.d = d
        self.cfg = cfg
        self.log = os.path.join(d, "renewd.log")
        self.sock = os.path.join(d, "renewd.sock")
        e = {k: v for k, v in os.environ.items()
             if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
        e.update(env or {})
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen([binpath("renewd"), "-c", cfg], cwd=d,
                                     stdin=subprocess.DEVNULL, stdout=logf,
                                     stderr=logf, env=e)
        logf.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                sys.exit("bench: renewd exited %d at start:\n%s" % (
                    self.proc.returncode, self.tail()))
            if os.path.exists(self.sock):
                try:
                    self.call("status")
                    return
                except OSError:
                    pass
            time.sleep(0.05)
        self.stop()
        sys.exit("bench: renewd did not start:\n" + self.tail())

    def tail(self, n=30):
        try:
            with open(self.log, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def call(self, cmd, timeout=600):
        """One control-socket request -> parsed reply."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(self.sock)
            s.sendall(json.dumps({"v": 1, "cmd": cmd}).encode() + b"\n")
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
        return json.loads(buf)

    def cpu_ticks(self):
        with open("/proc/%d/stat" % self.proc.pid) as f:
            p = f.read().rsplit(")", 1)[1].split()
        return int(p[11]) + int(p[12])

    def schedstat(self):
        """(ns on a CPU, ns waiting for one) so far, from the kernel."""
        with open("/proc/%d/schedstat" % self.proc.pid) as f:
            p = f.read().split()
        return int(p[0]), int(p[1])

    def thread_cpu_ns(self):
        """{thread name: ns on a CPU} for renewd's named threads (the
        loop is the one named 'renewd'), from /proc."""
        res = {}
        base = "/proc/%d/task" % self.proc.pid
        for tid in os.listdir(base):
            try:
                with open(os.path.join(base, tid, "comm")) as f:
                    name = f.read().strip()
                with open(os.path.join(base, tid, "schedstat")) as f:
                    ns = int(f.read().split()[0])
            except OSError:
                continue
            res[name] = res.get(name, 0) + ns
        return res

    def hwm_kib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        return 0

    def wait_idle(self, quiet=0.5, timeout=300):
        """Until renewd used (almost) no CPU for `quiet` seconds."""
        deadline = time.monotonic() + timeout
        last = self.cpu_ticks()
        while time.monotonic() < deadline:
            time.sleep(quiet)
            now = self.cpu_ticks()
            if now - last <= 1:
                return
            last = now
        note("renewd never went idle")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def renewd_at_due(d, cfg, t_due, lead):
    """renewd with its clock moved (RENEWD_TIME_OFFSET) so that t_due
    comes `lead` seconds after it starts: its start-up work is done when
    the certificates come due. Returned once t_due has passed and renewd
    is idle; the caller stops it."""
    off = t_due - lead - int(time.time())
    r = Renewd(d, cfg, env={"RENEWD_TIME_OFFSET": str(off)})
    try:
        r.wait_idle()
        while time.time() + off <= t_due:
            time.sleep(0.1)
        r.wait_idle(quiet=0.3)
    except BaseException:
        r.stop()
        raise
    return r


def init_db(d, cfg):
    """Start renewd once on an empty database so the schema and the profile
    row exist, then stop it."""
    db = os.path.join(d, "renewd.db")
    for ext in ("", "-wal", "-shm"):
        try:
            os.unlink(db + ext)
        except FileNotFoundError:
            pass
    r = Renewd(d, cfg)
    r.stop()


def sqlite(db, sql):
    p = subprocess.run(["sqlite3", db], input=sql, text=True,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if p.returncode != 0:
        sys.exit("bench: sqlite3 failed:\n" + p.stdout)
    return p.stdout


def fill_sql(n, due, t_due, now, layout, with_schedule=True):
    """SQL that adds n hosts, each with the profile and one current
    certificate; `due` of them have renew_at in [t_due - 9, t_due], the
    rest after t_due, spread over a year. layout 'clustered': certificate
    ids follow renew_at (a fleet in steady state: each certificate was
    written when it was issued, so the ones due together were written
    together); 'scattered': the due ones are every (n/due)-th row (a bulk
    import of a fleet in random order). Host UUIDs are a permutation, so
    the hosts index is probed at random either way."""
    year = 365 * 86400
    step = max(1, n // max(due, 1))
    if layout == "clustered":
        ra = ("CASE WHEN i <= %d THEN %d - (i %% 10) ELSE %d + 3600 + "
              "(i - %d) * %d / %d END" % (due, t_due, t_due, due, year,
                                          max(n - due, 1)))
    else:
        ra = ("CASE WHEN i %% %d = 0 AND i / %d <= %d THEN %d - (i %% 10) "
              "ELSE %d + 3600 + abs(random()) %% %d END" % (
                  step, step, due, t_due, t_due, year))
    hu = "printf('%08X-BE4C-4000-8000-%012X', (i * 2654435761) % 4294967296, i)"
    sched = ("INSERT INTO renewal_schedule (renew_at, cert_id, host_uuid, "
             "profile_uuid, ca_name) SELECT r, i, %s, '%s', '%s' FROM ra "
             "ORDER BY r, i;\n" % (hu, PROFILE_UUID, CA_NAME)
             ) if with_schedule else ""
    return """
PRAGMA journal_mode=WAL;
PRAGMA synchronous=OFF;
PRAGMA cache_size=-2097152;
PRAGMA temp_store=MEMORY;
BEGIN;
CREATE TEMP TABLE n(i INTEGER PRIMARY KEY);
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < {n})
  INSERT INTO n SELECT i FROM c;
INSERT INTO hosts (uuid, serial_number, state, first_seen, last_seen)
  SELECT {hu}, printf('C02BENCH%07d', i), 'active', {now}, {now} FROM n
  ORDER BY 1;
INSERT INTO host_profiles (host_uuid, profile_uuid)
  SELECT {hu}, '{prof}' FROM n ORDER BY 1;
CREATE TEMP TABLE ra AS SELECT i, {ra} AS r FROM n;
INSERT INTO managed_certificates (id, host_uuid, profile_uuid, ca_name,
  serial, subject, issuer, sha256, not_valid_before, not_valid_after,
  renewal_id, state, renew_at, policy, job_id, created_at, updated_at)
  SELECT i, {hu}, '{prof}', '{ca}', printf('%X', 4096 + i),
    printf('CN=C02BENCH%07d WIFI,OU=Example Devices,O=renewd example', i),
    'CN=renewd bench CA', printf('%064X', i), r + {d30} - {year}, r + {d30},
    NULL, 'active', r, 'default', NULL, {now}, {now}
  FROM ra;
{sched}COMMIT;
PRAGMA wal_checkpoint(TRUNCATE);
""".format(n=n, hu=hu, now=now, prof=PROFILE_UUID, ca=CA_NAME, ra=ra,
           d30=30 * 86400, year=year, sched=sched)


def copy_db(src, dst):
    for ext in ("", "-wal", "-shm"):
        try:
            os.unlink(dst + ext)
        except FileNotFoundError:
            pass
    shutil.copyfile(src, dst)
    # Let the copy's dirty pages reach the disk now, not during a commit.
    subprocess.run(["sync"], check=False)
