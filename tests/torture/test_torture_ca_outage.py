"""Torture 3: the CA goes down in the middle of a run and comes back. The
SCEP proxy answers 502 while it is down, the devices' failed enrollments
come back as errors and their jobs retry with backoff, ca.unhealthy and
then ca.recovered reach a webhook notifier (once each), and every renewal
completes after the CA returns.

The CA is micromdm scepserver (Debian's scep package; it binds every
interface, the test only talks to it on 127.0.0.1). The devices are
contrib/devsim behind renewd's nanomdm driver, enrolling with Debian's
scepclient through the proxy.

short (make test): 10 devices, CA down 8 s. full (make torture): 100
devices, CA down 60 s. Half of the devices check in before the outage,
the other half during it, so renewals are in flight when it starts and
new ones start while it lasts.
"""

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torture  # noqa: E402
from torture import harness  # noqa: E402
from test_mdm_webhook import checkin, post  # noqa: E402

N = torture.size(10, 100)
# short: long enough that the CA's return is more than 5 s after its last
# check, so the proxy's first answer from it triggers the re-check
OUTAGE = torture.size(8, 60)
CONCURRENCY = torture.size(4, 8)
WAIT = torture.size(120, 600)
HMAC = "hook-KEY-torture"


class Scepserver:
    """scepserver on one depot, stopped and started again on the same
    port (same CA certificate)."""

    def __init__(self, workdir, port, challenge):
        self.depot = os.path.join(workdir, "depot")
        self.port = port
        self.challenge = challenge
        self.logpath = os.path.join(workdir, "scepserver.log")
        subprocess.run(["scepserver", "ca", "-init", "-depot", self.depot],
                       check=True, capture_output=True, timeout=60)
        self.proc = None

    def start(self):
        log = open(self.logpath, "a")
        self.proc = subprocess.Popen(
            ["scepserver", "-depot", self.depot, "-port", str(self.port),
             "-challenge", self.challenge],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()

        def up():
            if self.proc.poll() is not None:
                raise AssertionError("scepserver exited:\n" +
                                     harness.tail(self.logpath))
            try:
                urllib.request.urlopen(
                    "http://127.0.0.1:%d/scep?operation=GetCACaps"
                    % self.port, timeout=1).read()
                return True
            except OSError:
                return False
        harness.poll(up, 20, "scepserver on 127.0.0.1:%d" % self.port,
                     lambda: harness.tail(self.logpath), interval=0.1)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def http_get(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class CaOutageTorture(harness.RenewdTestCase):

    def start_devsim(self, f, port, key_file, hmac_file):
        self.devsim_log = os.path.join(f.dir, "devsim.log")
        log = open(self.devsim_log, "wb")
        proc = subprocess.Popen(
            [harness._need_env("DEVSIM_BIN"), "--listen",
             "127.0.0.1:%d" % port, "--webhook",
             f.public_url + "/webhook/mdm", "--api-key-file", key_file,
             "--hmac-key-file", hmac_file, "--devices", str(N),
             "--concurrency", str(CONCURRENCY), "--latency-ms", "20"],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()

        self.addCleanup(harness.terminate, proc)
        harness.poll(lambda: "listening on" in harness.tail(
            self.devsim_log, 5), 20, "devsim to listen",
            lambda: harness.tail(self.devsim_log))
        return proc

    def test_ca_down_then_back_every_renewal_completes(self):
        t_start = time.monotonic()
        # Given scepserver as the CA, devsim's devices behind the nanomdm
        # driver, and a webhook notifier subscribed to ca.unhealthy.
        alerts = self.receiver(status=200)
        f = torture.TortureFleet(webhook_hmac_key=HMAC, max_attempts=30,
                                 backoff=("1s", "4s"), log_level="debug")
        self._fleets.append(f)
        self.addCleanup(f.close)
        ca = Scepserver(f.dir, f.ca_port, f.challenge)
        self.addCleanup(ca.stop)
        ca.start()
        port = harness.free_port()
        key_file = f.use_nanomdm("http://127.0.0.1:%d" % port,
                                 "nano-KEY-torture")
        tok = f.write_file("notif_token", "notif-token-torture\n")
        f.notifiers = ("  - name: ops\n"
                       "    driver: webhook\n"
                       "    url: %s\n"
                       "    token_file: %s\n"
                       "    timeout: 5s\n"
                       "    events: [ca.unhealthy]\n" % (
                           json.dumps(alerts.url("/alerts")),
                           json.dumps(tok)))
        f.write_config()
        self.start_devsim(f, port, key_file,
                          os.path.join(f.dir, "webhook_hmac_key"))
        f.start()
        udids = ["dev-%04d" % i for i in range(1, N + 1)]

        def checkin_all(devs):
            for i, udid in enumerate(devs):
                st, text = post(f, checkin("mdm.TokenUpdate", udid,
                                           "SNTRT%s" % udid[4:]), key=HMAC)
                self.assertEqual((st, text), (200, "ok"), f.log_tail())

        def verified():
            return f.job_counts().get("verified", 0)

        def alert_docs():
            return [json.loads(r["body"]) for r in alerts.got()]

        # When half the devices check in and the first renewal is done...
        checkin_all(udids[:N // 2])
        harness.poll(lambda: verified() >= 1, WAIT, "a first verified job",
                     lambda: f.log_tail() + harness.tail(self.devsim_log))
        before = verified()
        # ...the CA goes down, and the other half checks in meanwhile.
        ca.stop()
        t_down = time.monotonic()
        devsim_mark = len(open(self.devsim_log, errors="replace").read())
        checkin_all(udids[N // 2:])

        # Then the proxy answers 502 for a device's request...
        def proxy_url():
            text = open(self.devsim_log, errors="replace").read()
            urls = [w for line in text[devsim_mark:].splitlines()
                    if " scepclient CN=" in line
                    for w in line.split() if "/mdm/scep/proxy/" in w]
            return urls[-1] if urls else None
        url = harness.poll(proxy_url, 30, "a device enrolling during the "
                           "outage", lambda: harness.tail(self.devsim_log))
        # (GetCACaps may still come from the proxy's cache until the
        # first failed upstream call or health check drops it: a 200
        # then is the CA's last answer, anything else must be the 502.)
        def proxy_502():
            st, body = http_get(url + "?operation=GetCACaps")
            if st == 200:
                return None
            self.assertEqual((st, body), (502, b"upstream CA unreachable"))
            return True
        harness.poll(proxy_502, 30, "the proxy's 502 during the outage")
        # ...and ca.unhealthy reaches the notifier.
        harness.poll(lambda: [d for d in alert_docs()
                              if d["event"] == "ca.unhealthy"], 30,
                     "the ca.unhealthy alert", f.log_tail)
        t_alert_down = time.monotonic() - t_down
        remaining = OUTAGE - (time.monotonic() - t_down)
        if remaining > 0:
            time.sleep(remaining)
        during = verified()

        # When the CA comes back...
        ca.start()
        t_up = time.monotonic()
        outage = t_up - t_down

        # ...then every device's job is verified, none failed...
        seen = {}

        def all_verified():
            if "up" not in seen and any(d["event"] == "ca.recovered"
                                        for d in alert_docs()):
                seen["up"] = time.monotonic() - t_up
            c = f.job_counts()
            if c.get("failed") or c.get("cancelled"):
                raise AssertionError("jobs ended badly: %r" % c)
            return c.get("verified", 0) == N
        harness.poll(all_verified, WAIT, "%d verified jobs" % N,
                     lambda: "jobs: %r\n%s\ndevsim:\n%s" % (
                         f.job_counts(), f.log_tail(),
                         harness.tail(self.devsim_log)), interval=0.5)
        t_all = time.monotonic() - t_up
        # ...and ca.recovered follows.
        harness.poll(lambda: [d for d in alert_docs()
                              if d["event"] == "ca.recovered"], WAIT,
                     "the ca.recovered alert", f.log_tail)
        t_alert_up = seen.get("up", time.monotonic() - t_up)

        docs = alert_docs()
        self.assertEqual([(d["event"], d["status"]) for d in docs],
                         [("ca.unhealthy", "firing"),
                          ("ca.recovered", "resolved")], docs)
        self.assertEqual({d["ca"] for d in docs}, {harness.CA_NAME})
        self.assertEqual(docs[0]["key"], docs[1]["key"])
        jobs = f.query("SELECT id, host_uuid, renewal_id, attempts FROM "
                       "renewal_jobs")
        self.assertEqual(sorted(j[1] for j in jobs), udids)
        for jid, host, rid, attempts in jobs:
            (cur,) = f.query("SELECT renewal_id, job_id FROM "
                             "managed_certificates WHERE host_uuid = ? AND "
                             "state = 'active'", (host,))
            self.assertEqual(cur, (rid, jid))
        ev = dict(f.query("SELECT event, COUNT(*) FROM job_events GROUP BY "
                          "event"))
        upstream = f.query("SELECT detail FROM job_events WHERE event = "
                           "'scep_upstream_error'")
        retried = sum(1 for j in jobs if j[3] > 1)
        torture.summary("CA down during a run", [
            ("devices renewed", N),
            ("verified before the outage", before),
            ("verified during the outage", during - before),
            ("CA down s", outage),
            ("proxy 502s recorded on jobs", len(upstream)),
            ("device errors (failed attempts)", ev.get("device_error", 0)),
            ("jobs that retried", retried),
            ("attempts in all", sum(j[3] for j in jobs)),
            ("ca.unhealthy after outage start s", t_alert_down),
            ("all verified after CA back s", t_all),
            ("ca.recovered after CA back s", t_alert_up),
            ("wall time s", time.monotonic() - t_start)])
        # The outage shows on the jobs: the proxy's upstream errors and
        # the devices' failed enrollments, each retried.
        self.assertTrue(upstream)
        self.assertTrue(all("unreachable" in d[0] for d in upstream),
                        upstream[:5])
        self.assertGreater(ev.get("device_error", 0), 0, ev)
        self.assertGreater(retried, 0)
        self.assertEqual(torture.integrity_ok(f.db), [("ok",)])
        with open(ca.logpath, errors="replace") as fh:
            self.assertNotIn("already exists", fh.read())
        f.stop()


if __name__ == "__main__":
    harness.main()
