"""Shared helpers for renewd's integration tests (python3 stdlib only).

Each test builds a small fleet in a fresh temp dir: a config whose database
and control socket live in the temp dir, a copy of the sample Wi-Fi SCEP
profile, certificates made with the openssl CLI, and an exec push hook that
records what renewd handed it. The binaries come from the environment set
by tests/CMakeLists.txt: RENEWD_BIN, RENEWCTL_BIN, RENEWD_SRC.

Nothing here sleeps and hopes: every wait polls a condition against a
deadline and fails with the daemon's log tail when it is not met.
"""

import datetime
import json
import os
import plistlib
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CA_NAME = "Test_SCEP"
CHALLENGE = "it-challenge-Zq8v"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 20.0
JOB_TIMEOUT = 30.0
RENEWAL_ID_RE = re.compile(
    r"renewd-[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
    r"[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
FINAL_JOB_STATES = ("verified", "failed", "cancelled")


def _need_env(name):
    v = os.environ.get(name)
    if not v:
        raise RuntimeError(
            "%s is not set; run the integration tests through ctest "
            "(cd build && ctest -R integration)" % name)
    return v


def renewd_bin():
    return _need_env("RENEWD_BIN")


def terminate(proc, timeout=20):
    """SIGTERM a helper process (devsim, a CA) and reap it; SIGKILL if it
    does not stop within `timeout` seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def renewd_argv():
    """renewd's command, behind RENEWD_WRAPPER when set (e.g. valgrind,
    see tests/valgrind/run.sh)."""
    import shlex
    return shlex.split(os.environ.get("RENEWD_WRAPPER", "")) + [renewd_bin()]


def renewctl_bin():
    return _need_env("RENEWCTL_BIN")


def src_dir():
    v = os.environ.get("RENEWD_SRC")
    if v:
        return v
    return os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def template_path():
    return os.path.join(src_dir(), "contrib", "profiles",
                        "wifi-scep.mobileconfig")


def template_uuid(path=None):
    """The top-level PayloadUUID of a .mobileconfig template."""
    with open(path or template_path(), "rb") as f:
        return plistlib.load(f)["PayloadUUID"]


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def new_uuid():
    return str(uuid.uuid4()).upper()


def tail(path, n=80):
    try:
        with open(path, "r", errors="replace") as f:
            lines = f.readlines()
    except OSError as e:
        return "(no log: %s)" % e
    return "".join(lines[-n:])


def poll(cond, timeout, what, on_timeout=None, interval=0.05):
    """Call cond() until it returns something truthy; return that value.
    Raise AssertionError naming `what` (plus on_timeout()'s text) when the
    deadline passes."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = cond()
            if v:
                return v
        except AssertionError:
            raise
        except Exception as e:  # keep polling; report the last one
            last_exc = e
        if time.monotonic() >= deadline:
            msg = "timed out after %.0fs waiting for %s" % (timeout, what)
            if last_exc is not None:
                msg += "\nlast error: %r" % (last_exc,)
            if on_timeout is not None:
                msg += "\n" + on_timeout()
            raise AssertionError(msg)
        time.sleep(interval)


def parse_rfc3339(s):
    """RFC 3339 UTC time -> Unix seconds (float)."""
    s = s.strip()
    if s.endswith("Z") or s.endswith("z"):
        s = s[:-1] + "+00:00"
    return datetime.datetime.fromisoformat(s).timestamp()


def scep_payload(profile):
    """The one com.apple.security.scep payload of a parsed profile."""
    found = [p for p in profile.get("PayloadContent", [])
             if p.get("PayloadType") == "com.apple.security.scep"]
    if len(found) != 1:
        raise AssertionError("expected one SCEP payload, found %d"
                             % len(found))
    return found[0]["PayloadContent"]


def subject_cn(scep):
    """The CN value of a SCEP payload's Subject ([[[oid, value]], ...])."""
    cns = [rdn[0][1] for rdn in scep.get("Subject", [])
           if rdn and rdn[0] and rdn[0][0] == "CN"]
    if len(cns) != 1:
        raise AssertionError("expected one CN in Subject %r" %
                             (scep.get("Subject"),))
    return cns[0]


# ---- certificates -------------------------------------------------------

_CA_CNF = """\
[ ca ]
default_ca = it_ca

[ it_ca ]
dir = {dir}
database = $dir/index.txt
new_certs_dir = $dir/newcerts
certificate = $dir/ca.pem
private_key = $dir/ca.key
rand_serial = yes
default_md = sha256
policy = it_policy
unique_subject = no
email_in_dn = no
copy_extensions = none
preserve = yes

[ it_policy ]
commonName = supplied
organizationName = optional
organizationalUnitName = optional
"""


class CertFactory:
    """Certificates signed by a throw-away test CA, with chosen validity.

    `openssl ca` is used (not `req -x509 -days`) because a certificate
    "expiring in 10 days" must have started long ago: a cert valid for only
    10 days from now is short-lived and renews at half-life instead.
    """

    def __init__(self, workdir):
        self.dir = os.path.join(workdir, "pki")
        os.makedirs(os.path.join(self.dir, "newcerts"))
        open(os.path.join(self.dir, "index.txt"), "w").close()
        with open(os.path.join(self.dir, "ca.cnf"), "w") as f:
            f.write(_CA_CNF.format(dir=self.dir))
        self._run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                   "-nodes", "-keyout", os.path.join(self.dir, "ca.key"),
                   "-out", os.path.join(self.dir, "ca.pem"), "-days", "3650",
                   "-subj", "/O=renewd tests/CN=renewd integration test CA"])
        self.n = 0

    def _run(self, argv):
        return run_tool(argv)

    def make(self, cn, days_left, lifetime_days=365, der=False,
             self_signed=False):
        """A certificate for `cn` that expires in `days_left` days and was
        issued lifetime_days before that. Returns its path (PEM, or DER when
        der=True)."""
        self.n += 1
        base = os.path.join(self.dir, "c%d" % self.n)
        now = datetime.datetime.now(datetime.timezone.utc).replace(
            microsecond=0)
        nva = now + datetime.timedelta(days=days_left)
        nvb = nva - datetime.timedelta(days=lifetime_days)
        fmt = "%Y%m%d%H%M%SZ"
        subj = "/O=renewd example/OU=Example Devices/CN=" + cn
        if self_signed:
            # Self-signed still needs a custom start date: sign our own CSR.
            self._run(["openssl", "req", "-new", "-newkey", "rsa:2048",
                       "-nodes", "-keyout", base + ".key", "-out",
                       base + ".csr", "-subj", subj])
            self._run(["openssl", "ca", "-batch", "-config",
                       os.path.join(self.dir, "ca.cnf"), "-selfsign",
                       "-keyfile", base + ".key", "-in", base + ".csr",
                       "-out", base + ".pem", "-notext",
                       "-startdate", nvb.strftime(fmt),
                       "-enddate", nva.strftime(fmt)])
        else:
            self._run(["openssl", "req", "-new", "-newkey", "rsa:2048",
                       "-nodes", "-keyout", base + ".key", "-out",
                       base + ".csr", "-subj", subj])
            self._run(["openssl", "ca", "-batch", "-config",
                       os.path.join(self.dir, "ca.cnf"), "-in",
                       base + ".csr", "-out", base + ".pem", "-notext",
                       "-startdate", nvb.strftime(fmt),
                       "-enddate", nva.strftime(fmt)])
        if der:
            self._run(["openssl", "x509", "-in", base + ".pem",
                       "-outform", "DER", "-out", base + ".der"])
            return base + ".der"
        return base + ".pem"

    def serial(self, path):
        """Hex serial as printed by openssl (upper case, no colons)."""
        inform = "DER" if path.endswith(".der") else "PEM"
        out = self._run(["openssl", "x509", "-inform", inform, "-in", path,
                         "-noout", "-serial"])
        return out.strip().split("=", 1)[1].upper()


# ---- the exec push hook -------------------------------------------------

# Saves the profile on stdin as OUT/<JOB_ID>-<RENEWAL_ID>-<pid>.mobileconfig,
# its environment as the same name with .env, and appends
# "<ms> start|end <job> <renewal id> <pid> [rc]" to OUT/invocations.log.
# OUT/sleep (seconds) and OUT/exit_code (default 0) control it.
_HOOK = """\
#!/bin/sh
out={out}
now_ms() {{ date +%s%3N; }}
name="$JOB_ID-$RENEWAL_ID-$$"
echo "$(now_ms) start $JOB_ID $RENEWAL_ID $$" >>"$out/invocations.log"
cat >"$out/.$name.tmp"
mv "$out/.$name.tmp" "$out/$name.mobileconfig"
env >"$out/$name.env"
if [ -f "$out/sleep" ]; then sleep "$(cat "$out/sleep")"; fi
rc=0
if [ -f "$out/exit_code" ]; then rc=$(cat "$out/exit_code"); fi
if [ "$rc" != 0 ]; then echo "hook says no ($rc)" >&2; fi
echo "$(now_ms) end $JOB_ID $RENEWAL_ID $$ $rc" >>"$out/invocations.log"
exit "$rc"
"""


class Hook:
    def __init__(self, workdir):
        self.out = os.path.join(workdir, "hook-out")
        os.makedirs(self.out)
        self.path = os.path.join(workdir, "hook.sh")
        with open(self.path, "w") as f:
            f.write(_HOOK.format(out=self.out))
        os.chmod(self.path, 0o755)

    def set_exit(self, code):
        with open(os.path.join(self.out, "exit_code"), "w") as f:
            f.write("%d\n" % code)

    def set_sleep(self, seconds):
        with open(os.path.join(self.out, "sleep"), "w") as f:
            f.write("%s\n" % seconds)

    def invocations(self):
        """[{ms, what, job, renewal_id, pid, rc}] in log order."""
        path = os.path.join(self.out, "invocations.log")
        res = []
        try:
            with open(path) as f:
                for line in f:
                    p = line.split()
                    if len(p) < 5:
                        continue
                    res.append({"ms": int(p[0]), "what": p[1], "job": p[2],
                                "renewal_id": p[3], "pid": p[4],
                                "rc": p[5] if len(p) > 5 else None})
        except FileNotFoundError:
            pass
        return res

    def starts(self):
        return [i for i in self.invocations() if i["what"] == "start"]

    def pushes(self):
        """Completed profile files: [{name, profile (parsed), env}]."""
        res = []
        for fn in sorted(os.listdir(self.out)):
            if not fn.endswith(".mobileconfig") or fn.startswith("."):
                continue
            base = fn[:-len(".mobileconfig")]
            with open(os.path.join(self.out, fn), "rb") as f:
                raw = f.read()
            env = {}
            try:
                with open(os.path.join(self.out, base + ".env")) as f:
                    for line in f:
                        k, sep, v = line.rstrip("\n").partition("=")
                        if sep:
                            env[k] = v
            except FileNotFoundError:
                pass
            res.append({"name": base, "raw": raw,
                        "profile": plistlib.loads(raw), "env": env})
        return res


# ---- webhook receiver ---------------------------------------------------

def run_tool(argv):
    """Run a command-line tool (openssl); its output, or RuntimeError with
    the output when it fails."""
    p = subprocess.run(argv, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True)
    if p.returncode != 0:
        raise RuntimeError("%s failed:\n%s" % (" ".join(argv), p.stdout))
    return p.stdout


def tls_server_cert(d):
    """A private CA and a server certificate for 127.0.0.1 it signed, in
    directory d: returns (ca.pem, server.pem, server.key)."""
    ca_key, ca = os.path.join(d, "tls-ca.key"), os.path.join(d, "tls-ca.pem")
    key, csr = os.path.join(d, "tls-srv.key"), os.path.join(d, "tls-srv.csr")
    crt, ext = os.path.join(d, "tls-srv.pem"), os.path.join(d, "tls-srv.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName = IP:127.0.0.1\n"
                "extendedKeyUsage = serverAuth\n")
    for argv in (
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:P-256", "-nodes", "-keyout", ca_key,
             "-out", ca, "-days", "2", "-subj", "/CN=renewd test TLS CA"],
            ["openssl", "req", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
             "-out", csr, "-subj", "/CN=127.0.0.1"],
            ["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey",
             ca_key, "-CAcreateserial", "-out", crt, "-days", "2",
             "-extfile", ext]):
        run_tool(argv)
    return ca, crt, key


class Receiver:
    """An HTTP server on 127.0.0.1 that records requests and answers
    `status` (202 by default); HTTPS with tls=(certfile, keyfile)."""

    def __init__(self, status=202, port=0, tls=None):
        self.requests = []
        self.lock = threading.Lock()
        self.status = status
        outer = self

        self.tls_failures = 0

        class H(BaseHTTPRequestHandler):
            def setup(self):
                self.tls_failed = False
                if isinstance(self.request, ssl.SSLSocket):
                    try:
                        self.request.do_handshake()
                    except (ssl.SSLError, OSError):
                        self.tls_failed = True
                        with outer.lock:
                            outer.tls_failures += 1
                super().setup()

            def handle(self):
                if not self.tls_failed:
                    super().handle()

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                with outer.lock:
                    outer.requests.append({
                        "method": "POST", "path": self.path,
                        "headers": {k.lower(): v
                                    for k, v in self.headers.items()},
                        "body": body})
                payload = b'{"status":"queued"}'
                self.send_response(outer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_PUT = do_POST

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), H)
        self.server.daemon_threads = True
        self.scheme = "http"
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(tls[0], tls[1])
            # the handshake in the handler's thread, not in accept()
            self.server.socket = ctx.wrap_socket(
                self.server.socket, server_side=True,
                do_handshake_on_connect=False)
            self.scheme = "https"
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)
        self.thread.start()

    def url(self, path="/push"):
        return "%s://127.0.0.1:%d%s" % (self.scheme, self.port, path)

    def got(self):
        with self.lock:
            return list(self.requests)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# ---- the fleet: config, daemon, renewctl --------------------------------

def child_env(env=None):
    """os.environ without systemd's notify variables, plus `env` (a None
    value removes a variable)."""
    res = {k: v for k, v in os.environ.items()
           if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
    for k, v in (env or {}).items():
        if v is None:
            res.pop(k, None)
        else:
            res[k] = v
    return res


class Fleet:
    """One temp dir with a config, a hook, a test CA and (maybe) a running
    renewd. Use through RenewdTestCase.fleet()."""

    def __init__(self, max_attempts=3, verify_timeout="72h", mdm=None,
                 scan_interval="1h", webhook_hmac_key=None, api_token=None,
                 notifiers=None):
        self.dir = tempfile.mkdtemp(prefix="renewd-it-", dir="/tmp")
        self.db = os.path.join(self.dir, "renewd.db")
        self.sock = os.path.join(self.dir, "renewd.sock")
        self.cfg = os.path.join(self.dir, "renewd.yaml")
        self.log = os.path.join(self.dir, "renewd.log")
        self.http_port = free_port()
        self.public_url = "http://127.0.0.1:%d" % self.http_port
        self.ca_port = free_port()  # nothing listens: never contacted here
        self.challenge = CHALLENGE
        with open(os.path.join(self.dir, "challenge"), "w") as f:
            f.write(self.challenge + "\n")
        self.template = os.path.join(self.dir, "wifi-scep.mobileconfig")
        shutil.copyfile(template_path(), self.template)
        self.profile_uuid = template_uuid(self.template)
        self.hook = Hook(self.dir)
        self.certs = CertFactory(self.dir)
        self.max_attempts = max_attempts
        self.verify_timeout = verify_timeout
        self.scan_interval = scan_interval
        self.mdm = mdm  # None = the exec hook; else YAML lines for "mdm:"
        # When set, http.webhook_hmac_key_file holds it (/webhook/mdm).
        self.webhook_hmac_key = webhook_hmac_key
        if webhook_hmac_key is not None:
            with open(os.path.join(self.dir, "webhook_hmac_key"), "w") as f:
                f.write(webhook_hmac_key + "\n")
        # When set, http.api_token_file holds it (/api/v1/...).
        self.api_token = api_token
        if api_token is not None:
            with open(os.path.join(self.dir, "api_token"), "w") as f:
                f.write(api_token + "\n")
        # YAML items of "notifiers:" (indented by two), or None.
        self.notifiers = notifiers
        self.proc = None
        self._logf = None
        self.logs = []  # texts of finished runs' logs, for failure reports
        self.write_config()

    # -- config --

    def config_text(self, scan_interval=None):
        q = json.dumps
        if self.mdm is None:
            mdm = ("  driver: exec\n"
                   "  command: [%s]\n"
                   "  timeout: 30s\n" % q(self.hook.path))
        else:
            mdm = self.mdm
        hmac_line = ""
        if self.webhook_hmac_key is not None:
            hmac_line = "  webhook_hmac_key_file: %s\n" % q(
                os.path.join(self.dir, "webhook_hmac_key"))
        if self.api_token is not None:
            hmac_line += "  api_token_file: %s\n" % q(
                os.path.join(self.dir, "api_token"))
        return (
            "daemon:\n"
            "  database: %s\n"
            "  control_socket: %s\n"
            "  scan_interval: %s\n"
            "  log_level: debug\n"
            "http:\n"
            "  listen: 127.0.0.1:%d\n"
            "  public_url: %s\n"
            "%s"
            "certificate_authorities:\n"
            "  - name: %s\n"
            "    url: http://127.0.0.1:%d/scep\n"
            "    challenge_file: %s\n"
            "profiles:\n"
            "  - file: %s\n"
            "assignments:\n"
            "  - profile: \"*\"\n"
            "policies:\n"
            "  - name: default\n"
            "    match: { ca: \"*\", profile: \"*\" }\n"
            "    renew_before: 30d\n"
            "    smear: 0s\n"
            "    max_attempts: %d\n"
            "    backoff: { initial: 1s, max: 2s }\n"
            "    verify_timeout: %s\n"
            "mdm:\n%s%s" % (
                q(self.db), q(self.sock),
                scan_interval or self.scan_interval, self.http_port,
                q(self.public_url), hmac_line, CA_NAME, self.ca_port,
                q(os.path.join(self.dir, "challenge")), q(self.template),
                self.max_attempts, self.verify_timeout, mdm,
                "notifiers:\n" + self.notifiers if self.notifiers else ""))

    def write_config(self, text=None, path=None):
        with open(path or self.cfg, "w") as f:
            f.write(text if text is not None else self.config_text())

    def write_file(self, name, content, mode=0o600):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(content)
        os.chmod(path, mode)
        return path

    def use_nanomdm(self, url, api_key):
        """The nanomdm push driver at url, its API key in a file (returned);
        write_config() still to be called."""
        key_file = self.write_file("nano_key", api_key + "\n")
        self.mdm = ("  driver: nanomdm\n"
                    "  url: %s\n"
                    "  api_key_file: %s\n"
                    "  timeout: 10s\n" % (json.dumps(url),
                                           json.dumps(key_file)))
        return key_file

    # -- daemon --

    def log_text(self):
        try:
            with open(self.log, "r", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log_tail(self, n=80):
        return "renewd log (%s), last lines:\n%s" % (self.log,
                                                     tail(self.log, n))

    def _socket_accepts(self):
        if not os.path.exists(self.sock):
            return False
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            try:
                s.connect(self.sock)
            except OSError:
                return False  # e.g. the stale socket of a killed daemon
        return True

    def start(self, extra_args=(), env=None):
        """Start `renewd -c cfg` and wait until its control socket accepts
        connections (a stale socket file from a killed run does not count).
        `env` adds variables to the inherited environment (a None value
        removes one); systemd's NOTIFY_SOCKET and WATCHDOG_* are never
        inherited, so a test run under a service manager cannot notify it.
        """
        assert self.proc is None, "renewd already running"
        penv = child_env(env)
        self._logf = open(self.log, "ab")
        self._logf.write(b"--- test harness: starting renewd ---\n")
        self._logf.flush()
        self.proc = subprocess.Popen(
            renewd_argv() + ["-c", self.cfg] + list(extra_args),
            cwd=self.dir, stdin=subprocess.DEVNULL, env=penv,
            stdout=self._logf, stderr=self._logf, start_new_session=True)

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(
                    "renewd exited with %d during start-up\n%s" %
                    (self.proc.returncode, self.log_tail()))
            return self._socket_accepts()

        poll(ready, START_TIMEOUT, "renewd's control socket %s" % self.sock,
             self.log_tail)
        return self.proc

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        assert self.running(), "renewd is not running\n" + self.log_tail()
        self.proc.send_signal(sig)

    def _reap(self):
        if self._logf:
            self._logf.close()
            self._logf = None
        self.proc = None

    def stop(self):
        """SIGTERM; renewd must exit 0 within STOP_TIMEOUT."""
        assert self.proc is not None, "renewd was not started"
        p = self.proc
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
        try:
            rc = p.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            self._reap()
            raise AssertionError("renewd did not exit within %.0fs of "
                                 "SIGTERM\n%s" % (STOP_TIMEOUT,
                                                  self.log_tail()))
        self._reap()
        if rc != 0:
            raise AssertionError("renewd exited %d after SIGTERM (want 0)"
                                 "\n%s" % (rc, self.log_tail()))
        # every libuv handle was closed: uv_loop_close() returned 0
        if "event loop closed with handles still open" in self.log_text():
            raise AssertionError("renewd left libuv handles open\n%s"
                                 % self.log_tail())

    def kill9(self):
        assert self.running(), "renewd is not running\n" + self.log_tail()
        self.proc.send_signal(signal.SIGKILL)
        rc = self.proc.wait(STOP_TIMEOUT)
        self._reap()
        return rc

    def run_renewd(self, args, timeout=60, env=None):
        """Run renewd to completion (e.g. -n or --once) -> (rc, output);
        `env` as for start()."""
        p = subprocess.run(renewd_argv() + ["-c", self.cfg] + list(args),
                           cwd=self.dir, stdin=subprocess.DEVNULL,
                           env=child_env(env),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=timeout)
        out = p.stdout.decode("utf-8", "replace")
        with open(self.log, "a") as f:
            f.write("--- test harness: renewd %s (rc %d) ---\n%s"
                    % (" ".join(args), p.returncode, out))
        return p.returncode, out

    # -- renewctl --

    def ctl_raw(self, *args, json_out=True, timeout=30):
        argv = [renewctl_bin(), "-c", self.cfg]
        if json_out:
            argv.append("--json")
        argv += list(args)
        p = subprocess.run(argv, cwd=self.dir, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout)
        return (p.returncode, p.stdout.decode("utf-8", "replace"),
                p.stderr.decode("utf-8", "replace"))

    def ctl(self, *args, expect=0):
        """renewctl --json ARGS -> parsed JSON; the exit code must be
        `expect` (None: any)."""
        rc, out, err = self.ctl_raw(*args)
        if expect is not None and rc != expect:
            raise AssertionError(
                "renewctl %s exited %d (want %d)\nstdout: %s\nstderr: %s\n%s"
                % (" ".join(args), rc, expect, out, err, self.log_tail()))
        try:
            return json.loads(out)
        except ValueError:
            raise AssertionError("renewctl %s printed no JSON: %r\n"
                                 "stderr: %s" % (" ".join(args), out, err))

    def ctl_rc(self, *args):
        """renewctl --json ARGS -> (exit code, parsed JSON or None, stderr)"""
        rc, out, err = self.ctl_raw(*args)
        try:
            doc = json.loads(out)
        except ValueError:
            doc = None
        return rc, doc, err

    def import_cert(self, host, path, profile=None, ca=CA_NAME, serial=None):
        extra = ("--serial", serial) if serial else ()
        doc = self.ctl("certs", "import", "--host", host, "--profile",
                       profile or self.profile_uuid, "--ca", ca, *extra,
                       path)
        imported = doc.get("imported")
        if not isinstance(imported, list) or len(imported) != 1:
            raise AssertionError("certs import: want one 'imported' entry, "
                                 "got %r" % (doc,))
        return imported[0]

    def add_host(self, days_left, host=None, serial="DEV", lifetime_days=365):
        """A host holding a certificate (CN "<serial> WIFI initial") that
        expires in days_left days. Returns (host uuid, import entry)."""
        host = host or new_uuid()
        path = self.certs.make("%s WIFI initial" % serial, days_left,
                               lifetime_days)
        return host, self.import_cert(host, path)

    def trigger(self):
        return self.ctl("trigger")

    def jobs(self):
        doc = self.ctl("jobs")
        return doc["jobs"]

    def job_show(self, job_id):
        return self.ctl("jobs", "show", str(job_id))

    def certs_of(self, host):
        return self.ctl("certs", "--host", host)["certificates"]

    def wait_jobs(self, cond, what, timeout=JOB_TIMEOUT):
        """Poll `renewctl --json jobs` until cond(jobs) is truthy; return
        the jobs list."""
        last = {"jobs": None}

        def check():
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError("renewd died (exit %d) while waiting "
                                     "for %s\n%s" % (self.proc.returncode,
                                                     what, self.log_tail()))
            jobs = self.jobs()
            last["jobs"] = jobs
            return jobs if cond(jobs) else None

        return poll(check, timeout, what,
                    lambda: "last jobs: %s\n%s" % (
                        json.dumps(last["jobs"], indent=1),
                        self.log_tail()), interval=0.2)

    def wait_log(self, needle, what=None, start=0, timeout=JOB_TIMEOUT):
        """Wait until `needle` (str or compiled regex) appears in the log
        after offset `start`; return the log text from `start`."""
        def check():
            t = self.log_text()[start:]
            if isinstance(needle, str):
                return t if needle in t else None
            return t if needle.search(t) else None
        return poll(check, timeout, what or repr(needle), self.log_tail)

    # -- cleanup --

    def close(self):
        if self.proc is not None:
            p = self.proc
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            # Hooks left behind by a killed daemon are in its session.
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass
            self._reap()
        self.logs.append(self.log_text())
        shutil.rmtree(self.dir, ignore_errors=True)


class RenewdTestCase(unittest.TestCase):
    """Base class: fleets made with self.fleet() are cleaned up after the
    test, and the renewd log of each is printed when the test fails."""

    maxDiff = None

    def setUp(self):
        self._fleets = []
        self._receivers = []

    def fleet(self, **kw):
        f = Fleet(**kw)
        self._fleets.append(f)
        self.addCleanup(f.close)
        return f

    def receiver(self, status=202, port=0, tls=None):
        r = Receiver(status, port, tls)
        self._receivers.append(r)
        self.addCleanup(r.close)
        return r

    def run(self, result=None):
        if result is None:
            result = self.defaultTestResult()
        before = len(result.failures) + len(result.errors)
        self._fleets = []
        ret = super().run(result)
        if len(result.failures) + len(result.errors) > before:
            for f in getattr(self, "_fleets", []):
                for text in f.logs or [f.log_text()]:
                    sys.stderr.write(
                        "\n===== renewd log of %s (%s) =====\n%s\n" %
                        (self.id(), f.dir, text[-20000:]))
        return ret


def main():
    unittest.main(verbosity=2)
