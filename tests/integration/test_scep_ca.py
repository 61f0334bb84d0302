"""Given a real micromdm scepserver on loopback as the CA, `renewctl ca
test` reports its subject, fingerprint and capabilities; a CA that is down
is reported as a failure."""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def start_scepserver(workdir, port, challenge):
    """micromdm scepserver with a fresh depot. It binds every interface;
    the tests only ever talk to it on 127.0.0.1."""
    depot = os.path.join(workdir, "depot")
    subprocess.run(["scepserver", "ca", "-init", "-depot", depot],
                   check=True, capture_output=True, timeout=60)
    log = open(os.path.join(workdir, "scepserver.log"), "w")
    proc = subprocess.Popen(["scepserver", "-depot", depot, "-port",
                             str(port), "-challenge", challenge],
                            stdout=log, stderr=subprocess.STDOUT)
    log.close()
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            import urllib.request
            urllib.request.urlopen("http://127.0.0.1:%d/scep?operation="
                                   "GetCACaps" % port, timeout=1).read()
            return proc, os.path.join(depot, "ca.pem")
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("scepserver did not start")


class ScepCA(harness.RenewdTestCase):

    def test_ca_test_against_scepserver(self):
        # Given scepserver listening where the configuration's CA points.
        f = self.fleet()
        proc, ca_pem = start_scepserver(f.dir, f.ca_port, f.challenge)
        self.addCleanup(proc.wait)
        self.addCleanup(proc.terminate)
        want = subprocess.run(
            ["openssl", "x509", "-in", ca_pem, "-noout", "-fingerprint",
             "-sha256"], check=True, capture_output=True, text=True
        ).stdout.strip().split("=", 1)[1].replace(":", "").lower()

        # When the operator tests the CA...
        doc = f.ctl("ca", "test", harness.CA_NAME)

        # ...then its identity and capabilities are reported.
        self.assertTrue(doc["ok"], doc)
        self.assertEqual(doc["sha256"], want)
        self.assertIn("O=scep-ca", doc["subject"])
        caps = doc["capabilities"].split(",")
        self.assertIn("POSTPKIOperation", caps)
        self.assertIn("SHA-256", caps)

        # And when the CA is down, the check fails with exit 1.
        proc.terminate()
        proc.wait()
        rc, out, err = f.ctl_raw("ca", "test", harness.CA_NAME)
        self.assertEqual(rc, 1, (out, err))
        self.assertIn("GetCACaps", out + err)

    def test_daemon_checks_cas_and_survives_an_unreachable_one(self):
        # Given renewd started while its CA is down...
        f = self.fleet()
        f.start()

        def ca_state():
            cas = f.ctl("status")["daemon"].get("cas") or []
            return cas[0] if cas and cas[0].get("checked_at") else None

        # ...the CA is reported unhealthy and renewd keeps running.
        ca = harness.poll(ca_state, 20, "the CA to be checked")
        self.assertFalse(ca["healthy"], ca)
        self.assertIn("GetCACaps", ca.get("error", ""))
        self.assertTrue(f.running())

        # When scepserver comes up and renewd reloads, the CA is healthy
        # with the fingerprint of the scepserver CA.
        proc, ca_pem = start_scepserver(f.dir, f.ca_port, f.challenge)
        self.addCleanup(proc.wait)
        self.addCleanup(proc.terminate)
        f.signal(__import__("signal").SIGHUP)
        ca = harness.poll(lambda: (lambda c: c if c and c["healthy"]
                                   else None)(ca_state()),
                          20, "the CA to become healthy")
        self.assertEqual(len(ca["sha256"]), 64)
        self.assertIn("O=scep-ca", ca["subject"])
        self.assertIn("certificate authority healthy", f.log_text())
        f.stop()


if __name__ == "__main__":
    harness.main()
