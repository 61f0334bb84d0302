"""Shared plumbing of the crash and fault scenarios (tests/torture/).

Each scenario runs in two sizes: TORTURE_MODE=short (the default; ctest
runs it as part of `make test`, each well under a minute) and
TORTURE_MODE=full (`make torture`). Everything else comes from
tests/integration/harness.py: the binaries (RENEWD_BIN, RENEWCTL_BIN,
DEVSIM_BIN), the Fleet, polling with deadlines.

Certificates are made in-process with Debian's python3-cryptography: one
P-256 CA key and one P-256 device key, generated once, and an X.509
certificate per (host, CN) signed with ECDSA. That is about 0.1 ms per
certificate instead of ~50 ms for an openssl fork plus RSA key generation,
and renewd parses and imports each one exactly as it would any device's
certificate (POST /api/v1/certificates, the same path as
`renewctl certs import`). Sharing one device key is honest here: renewd
keys certificates by host, profile, CA, DER hash and renewal ID, never by
public key.
"""

import collections
import ctypes
import datetime
import http.client
import json
import os
import queue
import random
import re
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "integration"))
import harness  # noqa: E402

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

# Connections that renewd drops when it is killed are not leaks of ours.
# (unittest.main resets the filters unless sys.warnoptions is set.)
warnings.simplefilter("ignore", ResourceWarning)
sys.warnoptions.append("ignore::ResourceWarning")

MODE = os.environ.get("TORTURE_MODE", "short")
if MODE not in ("short", "full"):
    raise RuntimeError("TORTURE_MODE must be short or full, not %r" % MODE)
API_TOKEN = "torture-api-token-9Kq2"


def full():
    return MODE == "full"


def size(short, full_):
    """The scenario parameter for this mode."""
    return full_ if full() else short


def seed():
    """The random seed of this run: TORTURE_SEED, else the clock. Printed
    in every summary so a failing run can be replayed."""
    v = os.environ.get("TORTURE_SEED")
    s = int(v) if v else int(time.time() * 1000) % 1000000007
    sys.stderr.write("[TORTURE_SEED=%d] " % s)
    return s


# ---- summaries ------------------------------------------------------------

def summary(title, rows):
    """Print a two-column table to stderr and, with TORTURE_RESULTS set,
    append it as one JSON line to that file (docs/benchmarks.md is written
    from it)."""
    w = max(len(k) for k, _ in rows)
    lines = ["", "== %s (%s) ==" % (title, MODE)]
    for k, v in rows:
        if isinstance(v, float):
            v = "%.2f" % v
        lines.append("  %-*s  %s" % (w, k, v))
    sys.stderr.write("\n".join(lines) + "\n")
    sys.stderr.flush()
    out = os.environ.get("TORTURE_RESULTS")
    if out:
        with open(out, "a") as f:
            f.write(json.dumps({"scenario": title, "mode": MODE,
                                "rows": [[k, v] for k, v in rows]}) + "\n")


# ---- certificates ---------------------------------------------------------

class FastCA:
    """An in-process test CA (see the module comment)."""

    def __init__(self):
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.device_key = ec.generate_private_key(ec.SECP256R1())
        self.device_pub = self.device_key.public_key()
        now = datetime.datetime.now(datetime.timezone.utc)
        self.name = x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "renewd torture"),
            x509.NameAttribute(NameOID.COMMON_NAME, "renewd torture CA")])
        self.cert = (x509.CertificateBuilder()
                     .subject_name(self.name).issuer_name(self.name)
                     .public_key(self.key.public_key())
                     .serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(days=800))
                     .not_valid_after(now + datetime.timedelta(days=3650))
                     .add_extension(x509.BasicConstraints(ca=True,
                                                          path_length=None),
                                    critical=True)
                     .sign(self.key, hashes.SHA256()))

    def make(self, cn, days_left, lifetime_days=365):
        """PEM text of a certificate for `cn` that expires in days_left
        days and was issued lifetime_days before that."""
        now = datetime.datetime.now(datetime.timezone.utc).replace(
            microsecond=0)
        nva = now + datetime.timedelta(days=days_left)
        subj = x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "renewd example"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME,
                               "Example Devices"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        c = (x509.CertificateBuilder()
             .subject_name(subj).issuer_name(self.name)
             .public_key(self.device_pub)
             .serial_number(x509.random_serial_number())
             .not_valid_before(nva - datetime.timedelta(days=lifetime_days))
             .not_valid_after(nva)
             .sign(self.key, hashes.SHA256()))
        return c.public_bytes(serialization.Encoding.PEM).decode()


# ---- the fleet --------------------------------------------------------------

class TortureFleet(harness.Fleet):
    """harness.Fleet with the knobs the scenarios turn: log level,
    max_in_flight, backoff, database path. The harness's config text is
    kept and edited, so both stay in step."""

    def __init__(self, log_level="info", max_in_flight=64,
                 backoff=("1s", "2s"), database=None, **kw):
        kw.setdefault("api_token", API_TOKEN)
        super().__init__(**kw)
        self.log_level = log_level
        self.max_in_flight = max_in_flight
        self.backoff = backoff
        if database:
            self.db = database
        self.write_config()

    def config_text(self, scan_interval=None):
        t = super().config_text(scan_interval)
        if not hasattr(self, "log_level"):  # during harness.__init__
            return t
        t = t.replace("  log_level: debug\n",
                      "  log_level: %s\n  max_in_flight: %d\n"
                      % (self.log_level, self.max_in_flight), 1)
        t = t.replace("    backoff: { initial: 1s, max: 2s }\n",
                      "    backoff: { initial: %s, max: %s }\n"
                      % self.backoff, 1)
        return t

    def start(self, *a, **kw):
        r = super().start(*a, **kw)
        self.started_at = time.monotonic()
        return r

    def close(self):
        keep = os.environ.get("TORTURE_KEEP")
        if keep:  # a directory: the fleet's files are copied there
            import shutil
            self.logs.append("(copied to %s)" % keep)
            if self.proc is not None and self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            shutil.copytree(self.dir, os.path.join(
                keep, os.path.basename(self.dir)), dirs_exist_ok=True,
                ignore_dangling_symlinks=True,
                ignore=shutil.ignore_patterns("*.sock"))
        super().close()

    def db_ro(self):
        """A read-only connection (the daemon keeps writing)."""
        db = sqlite3.connect("file:%s?mode=ro" % self.db, uri=True,
                             timeout=30)
        return db

    def query(self, sql, args=()):
        db = self.db_ro()
        try:
            return db.execute(sql, args).fetchall()
        finally:
            db.close()

    def job_counts(self):
        return dict(self.query("SELECT state, COUNT(*) FROM renewal_jobs "
                               "GROUP BY state"))

    def log_count(self, needle):
        n = 0
        try:
            with open(self.log, "r", errors="replace") as f:
                for line in f:
                    if needle in line:
                        n += 1
        except OSError:
            pass
        return n


# ---- the MDM: a webhook receiver with faults --------------------------------

Push = collections.namedtuple("Push", "t job rid host kind outcome")


class PushReceiver:
    """renewd's webhook push driver talks to this. Each POST is one push
    (JSON: job_id, renewal_id, host_uuid, ...). decide(body) returns
    "ok" (answer 202 and hand the push to on_ok), "500" or "timeout"
    (sleep `hang` seconds, past mdm.timeout, then answer 202 to nobody:
    renewd has given up, so the device never gets that profile). Every
    request is recorded, with its outcome."""

    def __init__(self, on_ok=None, decide=None, hang=2.5):
        self.pushes = []
        self.lock = threading.Lock()
        self.on_ok = on_ok
        self.decide = decide or (lambda body: "ok")
        self.hang = hang
        outer = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = {}
                what = outer.decide(body)
                p = Push(time.monotonic(), body.get("job_id"),
                         body.get("renewal_id"), body.get("host_uuid"),
                         body.get("kind"), what)
                with outer.lock:
                    outer.pushes.append(p)
                if what == "timeout":
                    time.sleep(outer.hang)
                    self._answer(202, b'{"status":"late"}')
                    return
                if what == "500":
                    self._answer(500, b"torture: injected failure\n")
                    return
                # Queued for the device only once the answer is out, as a
                # real MDM would (the device acts after the 2xx).
                self._answer(202, b'{"status":"queued"}')
                if outer.on_ok:
                    outer.on_ok(p)

            def _answer(self, status, payload):
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    self.wfile.flush()
                except OSError:
                    self.close_connection = True

            def setup(self):
                super().setup()
                # headers and body go out in separate writes: without
                # this, Nagle plus delayed ACKs add 40 ms to every push
                self.connection.setsockopt(socket.IPPROTO_TCP,
                                           socket.TCP_NODELAY, 1)

            def log_message(self, *a):
                pass

        class S(ThreadingHTTPServer):
            daemon_threads = True
            # renewd opens up to max_in_flight connections at once; the
            # default backlog of 5 drops SYNs, which then "time out"
            request_queue_size = 256

            def handle_error(self, request, client_address):
                # renewd killed mid-request: its connections just drop
                if not isinstance(sys.exc_info()[1], OSError):
                    super().handle_error(request, client_address)

        self.server = S(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)
        self.thread.start()

    def url(self):
        return "http://127.0.0.1:%d/push" % self.port

    def mdm_yaml(self, timeout="10s"):
        return ("  driver: webhook\n"
                "  url: %s\n"
                "  timeout: %s\n" % (json.dumps(self.url()), timeout))

    def got(self):
        with self.lock:
            return list(self.pushes)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# ---- the devices: certificates back through the API -------------------------

class Verifier:
    """Plays the devices and the MDM's certificate report: for each push
    handed to it, a certificate whose CN carries the renewal ID is posted
    to renewd's POST /api/v1/certificates. Connection errors (renewd is
    down), 5xx (503 while the store is full) are retried until stop();
    each status seen is counted."""

    def __init__(self, fleet, ca, workers=4, retry_delay=0.2):
        self.f = fleet
        self.ca = ca
        self.q = queue.Queue()
        self.status = collections.Counter()
        self.verified_jobs = {}  # renewal id -> job id from the answer
        self.lock = threading.Lock()
        self.retry_delay = retry_delay
        self.stopping = threading.Event()
        self.running = threading.Event()  # cleared: devices hold reports
        self.running.set()
        self.retry_after = []  # Retry-After values seen on 503s
        self.threads = [threading.Thread(target=self._run, daemon=True)
                        for _ in range(workers)]
        for t in self.threads:
            t.start()

    def submit(self, host, pem):
        """Post a ready certificate (e.g. the initial ones)."""
        self.q.put((host, None, pem))

    def on_push(self, p):
        self.q.put((p.host, p.rid, None))

    def pending(self):
        return self.q.unfinished_tasks

    def _post(self, conn, host, pem):
        body = json.dumps({"host_uuid": host,
                           "profile_uuid": self.f.profile_uuid,
                           "ca_name": harness.CA_NAME,
                           "pem": pem}).encode()
        conn.request("POST", "/api/v1/certificates", body=body, headers={
            "Authorization": "Bearer " + API_TOKEN,
            "Content-Type": "application/json"})
        r = conn.getresponse()
        data = r.read()
        return r.status, data, r.getheader("Retry-After")

    def _run(self):
        conn = None
        while not self.stopping.is_set():
            try:
                host, rid, pem = self.q.get(timeout=0.2)
            except queue.Empty:
                continue
            while not self.running.wait(0.1):
                if self.stopping.is_set():
                    return
            if pem is None:
                pem = self.ca.make("TRT WIFI %s" % rid, 365, 365)
            while not self.stopping.is_set():
                try:
                    if conn is None:
                        conn = http.client.HTTPConnection(
                            "127.0.0.1", self.f.http_port, timeout=30)
                    st, data, ra = self._post(conn, host, pem)
                except (OSError, http.client.HTTPException):
                    st, data, ra = "conn", b"", None
                    if conn is not None:
                        conn.close()
                    conn = None
                with self.lock:
                    self.status[st] += 1
                    if st == 503:
                        self.retry_after.append(ra)
                if st == 200:
                    if rid is not None:
                        doc = json.loads(data)
                        with self.lock:
                            self.verified_jobs[rid] = doc.get("verified_job")
                    break
                if st in ("conn", 500, 502, 503, 504):
                    time.sleep(self.retry_delay)
                    continue
                raise AssertionError("certificate API answered %s: %r"
                                     % (st, data[:300]))
            self.q.task_done()

    def pause(self):
        """Devices keep their certificates to themselves until resume()
        (each worker may finish the report it is sending)."""
        self.running.clear()

    def resume(self):
        self.running.set()

    def wait_idle(self, timeout, what="the verifier to drain"):
        harness.poll(lambda: self.q.unfinished_tasks == 0, timeout, what,
                     self.f.log_tail, interval=0.1)

    def stop(self):
        self.stopping.set()
        for t in self.threads:
            t.join(5)


def import_initial(f, ca, n, verifier, days_left=10):
    """n hosts with one certificate each, expiring in days_left days (due
    under the 30d policy), through the certificate API. Returns the host
    UUIDs in order."""
    hosts = [harness.new_uuid() for _ in range(n)]
    for i, h in enumerate(hosts):
        verifier.submit(h, ca.make("TRT%06d WIFI initial" % i, days_left))
    verifier.wait_idle(60 + n / 50.0, "%d initial certificates" % n)
    return hosts


# ---- checks -----------------------------------------------------------------

def fleet_outcome(f):
    """Facts for the final assertions: jobs by state, certificates of the
    hosts, the current certificate of each host and the job it verified."""
    jobs = f.query("SELECT id, host_uuid, state, renewal_id, attempts "
                   "FROM renewal_jobs")
    cur = f.query("SELECT host_uuid, renewal_id, job_id, state FROM "
                  "managed_certificates WHERE state = 'active'")
    return jobs, {c[0]: c for c in cur}


def integrity_ok(path):
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=30)
    try:
        return db.execute("PRAGMA integrity_check").fetchall()
    finally:
        db.close()


def parse_logfmt(line):
    """key=value pairs of one renewd logfmt line."""
    res = {}
    for m in re.finditer(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)', line):
        v = m.group(2)
        if v.startswith('"'):
            v = v[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        res[m.group(1)] = v
    return res


# ---- private mount namespaces -----------------------------------------------

CLONE_NEWNS = 0x00020000
_in_private_ns = False


def enter_private_mount_ns():
    """Move this process (and every child it starts from now on) into a
    mount namespace of its own, with private propagation, so a tmpfs
    mounted here is seen by renewd and renewctl and by nothing outside.
    Must run before any thread starts (unshare(2) refuses CLONE_NEWNS in
    a multi-threaded process). Returns None or why it is not possible."""
    global _in_private_ns
    if _in_private_ns:
        return None
    if os.geteuid() != 0:
        return "not root: cannot mount a tmpfs"
    if threading.active_count() > 1:
        return "threads are running: cannot unshare the mount namespace"
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNS) != 0:
        e = ctypes.get_errno()
        return "unshare(CLONE_NEWNS): %s" % os.strerror(e)
    p = subprocess.run(["mount", "--make-rprivate", "/"],
                       capture_output=True, text=True)
    if p.returncode != 0:
        return "mount --make-rprivate /: %s" % p.stderr.strip()
    _in_private_ns = True
    return None


def mount_tmpfs(path, size):
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0700" % size,
                    "torture", path], check=True, capture_output=True)


def remount_tmpfs(path, size):
    subprocess.run(["mount", "-o", "remount,size=%s" % size, path],
                   check=True, capture_output=True)


def umount(path):
    subprocess.run(["umount", "-l", path], capture_output=True)


def fill(path, name="filler", leave=0):
    """Write zeros into path/name until the file system is full, then
    give `leave` bytes back; returns the file name and its size."""
    fn = os.path.join(path, name)
    n = 0
    chunk = b"\0" * 65536
    fd = os.open(fn, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        while True:
            try:
                n += os.write(fd, chunk)
            except OSError:
                break
        # and the last partial pages
        while True:
            try:
                if os.write(fd, b"\0" * 512) == 0:
                    break
                n += 512
            except OSError:
                break
        if leave:
            n = max(0, n - leave)
            os.ftruncate(fd, n)
    finally:
        os.close(fd)
    return fn, n


def rand(s):
    return random.Random(s)
