"""Given a pushed job whose certificate never arrives, renewd pushes again
after verify_timeout with a new renewal ID, and a certificate carrying the
first attempt's ID still verifies the job."""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

RID = re.compile(r"renewd-[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-"
                 r"[89ab][0-9a-f]{3}-[0-9a-f]{12}")


class VerifyTimeout(harness.RenewdTestCase):

    def test_unverified_push_is_pushed_again(self):
        # Given a fleet with a 2 s verify timeout and one due certificate.
        f = self.fleet(max_attempts=5, verify_timeout="2s")
        f.start()
        host = harness.new_uuid()
        f.import_cert(host, f.certs.make("C02XYZ WIFI initial", 10),
                      serial="C02XYZ")

        # When it is pushed and no certificate comes back...
        t = f.trigger()
        self.assertEqual((t.get("due"), t.get("enqueued")), (1, 1), t)
        (job,) = f.wait_jobs(
            lambda js: len(js) == 1 and js[0]["state"] == "pushed" and
            js[0]["attempts"] >= 2, "a second push after verify_timeout")

        # ...then a second attempt went out with a different renewal ID,
        # and each pushed profile carries its attempt's ID.
        rids = [s["renewal_id"] for s in f.hook.starts()]
        self.assertGreaterEqual(len(rids), 2, rids)
        for p in f.hook.pushes():
            m = RID.search(p["raw"].decode())
            self.assertIsNotNone(m, p["name"])
            self.assertIn(m.group(0), rids)
            # the host's serial number, given at import, is rendered too
            cn = harness.subject_cn(harness.scep_payload(p["profile"]))
            self.assertTrue(cn.startswith("C02XYZ WIFI renewd-"), cn)
        self.assertEqual(len(set(rids)), len(rids), rids)
        self.assertEqual(job["renewal_id"], rids[-1])
        names = [e["event"] for e in f.job_show(job["id"])["events"]]
        self.assertIn("verify_timeout", names)
        self.assertEqual(names.count("attempt_started"), job["attempts"])

        # When the certificate from the first attempt arrives late, it
        # still verifies the job.
        late = f.certs.make("DEV WIFI " + rids[0], 365)
        imp = f.import_cert(host, late)
        self.assertEqual(imp.get("renewal_id"), rids[0])
        self.assertEqual(imp.get("verified_job"), job["id"])
        shown = f.job_show(job["id"])
        self.assertEqual(shown["job"]["state"], "verified", shown)
        f.stop()


if __name__ == "__main__":
    harness.main()
