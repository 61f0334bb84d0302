"""Given a real micromdm scepserver behind renewd's SCEP proxy, a device
(Debian's scepclient) enrolls with the URL and challenge of the profile
renewd pushed; the certificate chains to the CA, the CA's answer is
recorded on the job, the one-time token cannot be used twice, and the
issued certificate verifies the job."""

import os
import subprocess
import sys
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from test_scep_ca import start_scepserver  # noqa: E402


def scepclient(workdir, url, challenge, cn, name):
    """Enroll like a device. scepclient keeps csr.pem and self.pem in its
    working directory and reuses them, so each enrollment gets its own."""
    cwd = os.path.join(workdir, "scepclient-" + name)
    os.makedirs(cwd)
    key = os.path.join(cwd, name + ".key")
    crt = os.path.join(cwd, name + ".pem")
    subprocess.run(["openssl", "genrsa", "-traditional", "-out", key,
                    "2048"], check=True, capture_output=True)
    p = subprocess.run(["scepclient", "-server-url", url, "-challenge",
                        challenge, "-cn", cn, "-private-key", key,
                        "-certificate", crt], cwd=cwd,
                       capture_output=True, text=True, timeout=60)
    return p, crt


def http_get(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class ScepProxy(harness.RenewdTestCase):

    def test_device_enrolls_through_the_proxy(self):
        # Given scepserver as the CA and a pushed renewal job.
        f = self.fleet()
        proc, ca_pem = start_scepserver(f.dir, f.ca_port, f.challenge)
        self.addCleanup(proc.wait)
        self.addCleanup(proc.terminate)
        f.start()
        host, _ = f.add_host(10)
        f.trigger()
        (job,) = f.wait_jobs(lambda js: len(js) == 1 and
                             js[0]["state"] == "pushed", "the push")
        (push,) = f.hook.pushes()
        scep = harness.scep_payload(push["profile"])
        url, cn = scep["URL"], harness.subject_cn(scep)
        self.assertTrue(url.startswith(f.public_url + "/mdm/scep/proxy/"))

        # When the device enrolls with the profile's URL and challenge...
        p, crt = scepclient(f.dir, url, scep["Challenge"], cn, "dev")

        # ...then it gets a certificate from the CA with the renewal ID.
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        v = subprocess.run(["openssl", "verify", "-CAfile", ca_pem, crt],
                           capture_output=True, text=True)
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)
        subj = subprocess.run(["openssl", "x509", "-in", crt, "-noout",
                               "-subject"], capture_output=True,
                              text=True).stdout
        self.assertIn(job["renewal_id"], subj)
        events = f.job_show(job["id"])["events"]
        reps = [e for e in events if e["event"] == "scep_certrep"]
        self.assertEqual([e["detail"] for e in reps], ["SUCCESS"], events)

        # The one-time token is used up: the same URL is refused, and
        # nothing more reaches the CA.
        p2, _ = scepclient(f.dir, url, scep["Challenge"], cn, "again")
        self.assertNotEqual(p2.returncode, 0)
        status, body = http_get(url + "?operation=GetCACaps")
        self.assertEqual(status, 400)
        self.assertIn(b"token already used", body)

        # A forged token and a malformed identifier are refused.
        forged = url.rsplit("%2C", 1)[0] + "%2C" + "A" * 43
        self.assertEqual(http_get(forged + "?operation=GetCACaps")[0], 400)
        self.assertEqual(http_get(f.public_url + "/mdm/scep/proxy/x?"
                                  "operation=GetCACaps")[0], 400)
        self.assertEqual(http_get(url + "?operation=GetNextCACert")[0], 501)

        # When the issued certificate is reported, the job is verified.
        imp = f.import_cert(host, crt)
        self.assertEqual(imp["verified_job"], job["id"])
        f.stop()

    def test_ca_refusal_is_recorded_as_a_failed_attempt(self):
        # Given a pushed job whose profile carries a challenge the CA
        # does not accept (the device got the wrong one).
        f = self.fleet(max_attempts=3)
        proc, _ = start_scepserver(f.dir, f.ca_port, "another-secret")
        self.addCleanup(proc.wait)
        self.addCleanup(proc.terminate)
        f.start()
        f.add_host(10)
        f.trigger()
        (job,) = f.wait_jobs(lambda js: len(js) == 1 and
                             js[0]["state"] == "pushed", "the push")
        (push,) = f.hook.pushes()
        scep = harness.scep_payload(push["profile"])

        # When the device enrolls and the CA says FAILURE...
        p, _ = scepclient(f.dir, scep["URL"], scep["Challenge"],
                          harness.subject_cn(scep), "dev")
        self.assertNotEqual(p.returncode, 0)

        # ...then the job says why and goes on with another attempt.
        ev = f.job_show(job["id"])["events"]
        details = [e["detail"] for e in ev if e["event"] == "scep_certrep"]
        self.assertEqual(len(details), 1, ev)
        self.assertTrue(details[0].startswith("CA refused: badRequest"),
                        details)
        self.assertIn("ca_refused", [e["event"] for e in ev])
        f.wait_jobs(lambda js: js[0]["attempts"] >= 2,
                    "a new attempt after the refusal")
        f.stop()


if __name__ == "__main__":
    harness.main()
