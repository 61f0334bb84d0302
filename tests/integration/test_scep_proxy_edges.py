"""The SCEP proxy against a real micromdm scepserver, at the edges: two
renewals in a row with fresh subjects, an old subject refused by the CA,
tokens that must never reach the CA, an expired token, and the CA down."""

import hashlib
import os
import re
import signal
import sqlite3
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from test_scep_ca import start_scepserver  # noqa: E402
from test_scep_proxy import http_get, scepclient  # noqa: E402


def ca_requests(f):
    """Operations scepserver has logged so far."""
    with open(os.path.join(f.dir, "scepserver.log")) as fh:
        return re.findall(r"op=(\w+)", fh.read())


def latest_push(f, job_id):
    pushes = [p for p in f.hook.pushes()
              if p["env"].get("JOB_ID") == str(job_id)]
    pushes.sort(key=lambda p: os.path.getmtime(
        os.path.join(f.hook.out, p["name"] + ".mobileconfig")))
    return harness.scep_payload(pushes[-1]["profile"])


def with_ca_settings(f, settings):
    text = f.config_text().replace(
        "    challenge_file:", "    %s\n    challenge_file:" % settings)
    f.write_config(text)


def push_behind(tc, make_ca, settings=None):
    """A running renewd in front of make_ca(ca_port) (a fake CA on
    loopback, closed at clean-up) and one host whose job is pushed: sets
    tc.f, tc.ca, tc.host and tc.job, and returns the job's proxy URL."""
    tc.f = tc.fleet()
    if settings:
        with_ca_settings(tc.f, settings)
    tc.ca = make_ca(tc.f.ca_port)
    tc.addCleanup(tc.ca.close)
    tc.f.start()
    tc.host, _ = tc.f.add_host(10)
    tc.f.trigger()
    (tc.job,) = tc.f.wait_jobs(
        lambda js: len(js) == 1 and js[0]["state"] == "pushed", "the push")
    return latest_push(tc.f, tc.job["id"])["URL"]


class ScepProxyEdges(harness.RenewdTestCase):

    def pushed_job(self, f, n):
        return f.wait_jobs(lambda js: len(js) == n and
                           js[0]["state"] == "pushed", "job %d pushed" % n)[0]

    def test_two_renewals_then_old_subject_refused(self):
        # Given scepserver with its default -allowrenew 14 and a host.
        f = self.fleet()
        proc, _ = start_scepserver(f.dir, f.ca_port, f.challenge)
        self.addCleanup(proc.wait)
        self.addCleanup(proc.terminate)
        f.start()
        host, _ = f.add_host(10)

        # When it renews twice in a row, each time with the subject of a
        # freshly rendered profile, both enrollments succeed.
        f.trigger()
        subjects = []
        for n in (1, 2):
            job = self.pushed_job(f, n)
            scep = latest_push(f, job["id"])
            cn = harness.subject_cn(scep)
            self.assertIn(job["renewal_id"], cn)
            p, crt = scepclient(f.dir, scep["URL"], scep["Challenge"], cn,
                                "dev%d" % n)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            imp = f.import_cert(host, crt)
            self.assertEqual(imp["verified_job"], job["id"])
            subjects.append(cn)
            if n == 1:
                f.ctl("resend", "--host", host, "--profile",
                      f.profile_uuid)
        self.assertNotEqual(subjects[0], subjects[1])

        # When a third push is enrolled with the old subject, scepserver
        # refuses it ("DN already exists") and the job records
        # FAILURE / badRequest.
        f.ctl("resend", "--host", host, "--profile", f.profile_uuid)
        job = self.pushed_job(f, 3)
        scep = latest_push(f, job["id"])
        p, _ = scepclient(f.dir, scep["URL"], scep["Challenge"],
                          subjects[0], "old")
        self.assertNotEqual(p.returncode, 0)
        ev = f.job_show(job["id"])["events"]
        reps = [e["detail"] for e in ev if e["event"] == "scep_certrep"]
        self.assertEqual(len(reps), 1, ev)
        self.assertTrue(reps[0].startswith("CA refused: badRequest"), reps)
        f.stop()

    def test_bad_tokens_never_reach_the_ca(self):
        # Given a pushed job with a 2 s token lifetime.
        f = self.fleet()
        with_ca_settings(f, "token_ttl: 2s")
        proc, _ = start_scepserver(f.dir, f.ca_port, f.challenge)
        self.addCleanup(proc.wait)
        self.addCleanup(proc.terminate)
        f.start()
        host, _ = f.add_host(10)
        f.trigger()
        job = self.pushed_job(f, 1)
        url = latest_push(f, job["id"])["URL"]
        base, token = url.rsplit("%2C", 1)
        before = len(ca_requests(f))

        # When requests come with a wrong token, for an unknown host, or
        # with a malformed identifier, each gets 400...
        self.assertRegex(token, r"^[0-9a-f]{12}[A-Za-z0-9_-]{32}$")
        wrong = base + "%2C" + "B" * 43
        # the current form with a forged secret
        forged = base + "%2C" + token[:12] + "B" * 32
        unknown = url.replace(host, harness.new_uuid())
        for u in (wrong, forged, unknown):
            status, body = http_get(u + "?operation=GetCACaps")
            self.assertEqual(status, 400, body)
        # ...and after the token expired, the next request gets 400 and
        # the job is pushed again with a new renewal ID.
        time.sleep(2.5)
        status, body = http_get(url + "?operation=GetCACaps")
        self.assertEqual((status, body.strip()),
                         (400, b"token expired; a new profile will be sent"))
        (again,) = f.wait_jobs(lambda js: js[0]["attempts"] == 2 and
                               js[0]["state"] == "pushed",
                               "the job pushed again")
        self.assertNotEqual(again["renewal_id"], job["renewal_id"])
        names = [e["event"] for e in f.job_show(job["id"])["events"]]
        self.assertIn("token_expired", names)
        self.assertIn("scep_refused", names)

        # None of them reached scepserver.
        self.assertEqual(len(ca_requests(f)), before)

        # A token minted before the upgrade (43 characters, stored under
        # its SHA-256 alone) still authorises its host.
        legacy = "L" * 43
        db = sqlite3.connect(f.db, timeout=10)
        with db:
            db.execute("INSERT INTO scep_tokens (token_hash, host_uuid, "
                       "profile_uuid, ca_name, job_id, created_at, "
                       "expires_at) SELECT ?, host_uuid, profile_uuid, "
                       "ca_name, id, 0, ? FROM renewal_jobs WHERE id = ?",
                       (hashlib.sha256(legacy.encode()).hexdigest(),
                        int(time.time()) + 600, job["id"]))
        db.close()
        status, body = http_get(base + "%2C" + legacy +
                                "?operation=GetCACaps")
        self.assertEqual(status, 200, body)
        f.stop()

    def test_ca_down_gives_502_and_recovers(self):
        # Given a pushed job and scepserver stopped.
        f = self.fleet()
        with_ca_settings(f, "timeout: 5s")
        proc, _ = start_scepserver(f.dir, f.ca_port, f.challenge)
        f.start()
        f.add_host(10)
        f.trigger()
        job = self.pushed_job(f, 1)
        url = latest_push(f, job["id"])["URL"]
        proc.send_signal(signal.SIGTERM)
        proc.wait()

        # When the device asks, the proxy answers 502 at once, renewd
        # keeps serving, and `renewctl ca test` reports the CA down.
        t0 = time.time()
        status, body = http_get(url + "?operation=GetCACaps")
        self.assertEqual(status, 502, body)
        self.assertLess(time.time() - t0, 2.0)
        self.assertEqual(http_get(f.public_url + "/healthz")[0], 200)
        ev = [e["event"] for e in f.job_show(job["id"])["events"]]
        self.assertIn("scep_upstream_error", ev)
        rc, out, err = f.ctl_raw("ca", "test", harness.CA_NAME)
        self.assertEqual(rc, 1, out + err)

        # When scepserver is back, the same URL works and ca test passes.
        again = os.path.join(f.dir, "again")
        os.makedirs(again)
        proc2, _ = start_scepserver(again, f.ca_port, f.challenge)
        self.addCleanup(proc2.wait)
        self.addCleanup(proc2.terminate)
        status, body = http_get(url + "?operation=GetCACaps")
        self.assertEqual(status, 200, body)
        self.assertIn(b"POSTPKIOperation", body)
        self.assertTrue(f.ctl("ca", "test", harness.CA_NAME)["ok"])
        f.stop()


if __name__ == "__main__":
    harness.main()
