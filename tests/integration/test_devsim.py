"""contrib/devsim end to end: renewd's nanomdm driver pushes to devsim's
simulated devices, which enroll through renewd's SCEP proxy against a real
scepserver, acknowledge through the MDM webhook and report their
certificates, until every issue job is verified."""

import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from test_mdm_webhook import checkin, post  # noqa: E402
from test_scep_ca import start_scepserver  # noqa: E402

WAIT = 90


def devsim_bin():
    return harness._need_env("DEVSIM_BIN")


class Devsim(harness.RenewdTestCase):

    def start_devsim(self, f, port, key_file, hmac_file=None, n=3):
        log = open(os.path.join(f.dir, "devsim.log"), "wb")
        argv = [devsim_bin(), "--listen", "127.0.0.1:%d" % port,
                "--webhook", f.public_url + "/webhook/mdm",
                "--api-key-file", key_file, "--devices", str(n),
                "--concurrency", "2", "--latency-ms", "50"]
        if hmac_file:
            argv += ["--hmac-key-file", hmac_file]
        proc = subprocess.Popen(argv, stdout=log, stderr=log,
                                stdin=subprocess.DEVNULL)
        log.close()
        self.devsim_log = os.path.join(f.dir, "devsim.log")

        def stop():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self.addCleanup(stop)
        deadline = time.time() + 20
        while time.time() < deadline:
            if "listening on" in harness.tail(self.devsim_log, 5):
                return proc
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError("devsim did not start:\n" +
                             harness.tail(self.devsim_log))

    def test_three_devices_enroll_and_verify(self):
        # Given scepserver as the CA, renewd with the nanomdm driver
        # pointed at devsim, and a signed webhook.
        f = self.fleet(webhook_hmac_key="hook-KEY-1")
        proc, _ = start_scepserver(f.dir, f.ca_port, f.challenge)
        self.addCleanup(proc.wait)
        self.addCleanup(proc.terminate)
        port = harness.free_port()
        key_file = f.write_file("nano_key", "nano-KEY-devsim\n")
        hmac_file = os.path.join(f.dir, "webhook_hmac_key")
        f.mdm = ("  driver: nanomdm\n"
                 "  url: %s\n"
                 "  api_key_file: %s\n"
                 "  timeout: 10s\n" % (
                     json.dumps("http://127.0.0.1:%d" % port),
                     json.dumps(key_file)))
        f.write_config()
        sim = self.start_devsim(f, port, key_file, hmac_file)
        f.start()

        # When three devices authenticate...
        udids = ["dev-%04d" % i for i in (1, 2, 3)]
        for i, udid in enumerate(udids):
            st, text = post(f, checkin("mdm.Authenticate", udid,
                                       "SNSIM%d" % i), key="hook-KEY-1")
            self.assertEqual((st, text), (200, "ok"), f.log_tail())

        # ...then each issue job goes all the way to verified.
        def all_verified(js):
            mine = [j for j in js if j["host_uuid"] in udids]
            return len(mine) == 3 and all(j["state"] == "verified"
                                          for j in mine)
        try:
            jobs = f.wait_jobs(all_verified, "3 verified jobs",
                               timeout=WAIT)
        except AssertionError as e:
            raise AssertionError("%s\ndevsim log:\n%s" % (
                e, harness.tail(self.devsim_log, 60)))
        for udid in udids:
            (job,) = [j for j in jobs if j["host_uuid"] == udid]
            active = [c for c in f.certs_of(udid) if c["state"] == "active"]
            self.assertEqual(len(active), 1, f.certs_of(udid))
            self.assertIn("renewd-", active[0]["subject"])
            self.assertIn(job["renewal_id"], active[0]["subject"])

        # devsim stops cleanly on SIGTERM.
        sim.send_signal(signal.SIGTERM)
        self.assertEqual(sim.wait(20), 0, harness.tail(self.devsim_log))


if __name__ == "__main__":
    harness.main()
