"""Given a fleet with one certificate due and one not, a trigger pushes one
freshly rendered profile through the exec hook, and the device's new
certificate verifies the job."""

import os
import re
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import CA_NAME, RENEWAL_ID_RE  # noqa: E402


class RenewalFlow(harness.RenewdTestCase):

    def test_due_certificate_is_pushed_then_verified_by_new_cert(self):
        # Given a fleet: host A's certificate expires in 10 days (due under
        # renew_before 30d), host B's in 200 days (not due).
        f = self.fleet()
        f.start()
        # The start-up scan (empty store) is done before the fleet exists,
        # also when renewd runs slowly (under valgrind).
        f.wait_log("scan done", "the start-up scan")
        P = f.profile_uuid
        host_a, imp_a = f.add_host(10, serial="devA")
        host_b, imp_b = f.add_host(200, serial="devB")
        self.assertFalse(imp_a.get("duplicate"))
        self.assertNotEqual(imp_a["id"], imp_b["id"])
        self.assertEqual(f.hook.starts(), [],
                         "importing must not push anything by itself")

        # When the operator triggers a scan.
        t = f.trigger()

        # Then exactly one certificate is due and one job enqueued...
        self.assertEqual(t.get("due"), 1, t)
        self.assertEqual(t.get("enqueued"), 1, t)

        # ...and that job gets pushed.
        jobs = f.wait_jobs(
            lambda js: len(js) == 1 and js[0]["state"] == "pushed",
            "the one job to be pushed")
        job = jobs[0]
        self.assertEqual(job["host_uuid"], host_a)
        self.assertEqual(job["profile_uuid"], P)
        self.assertEqual(job["ca_name"], CA_NAME)
        self.assertEqual(job["attempts"], 1)
        rid = job["renewal_id"]
        self.assertRegex(rid, "^" + RENEWAL_ID_RE.pattern + "$")

        # The hook received exactly one profile, for host A.
        pushes = f.hook.pushes()
        self.assertEqual(len(pushes), 1, [p["name"] for p in pushes])
        push = pushes[0]
        env = push["env"]
        self.assertEqual(env.get("HOST_UUID"), host_a)
        self.assertEqual(env.get("PROFILE_UUID"), P)
        self.assertEqual(env.get("CA_NAME"), CA_NAME)
        self.assertEqual(env.get("RENEWAL_ID"), rid)
        self.assertEqual(env.get("JOB_ID"), str(job["id"]))
        self.assertTrue(env.get("COMMAND_UUID"), env)
        self.assertEqual(env.get("JOB_KIND"), job["kind"])

        # The rendered profile is a plist whose SCEP payload carries the
        # renewal ID in its CN, the CA's challenge and the proxy URL.
        profile = push["profile"]
        self.assertEqual(profile["PayloadUUID"], P)
        scep = harness.scep_payload(profile)
        cn = harness.subject_cn(scep)
        m = RENEWAL_ID_RE.search(cn)
        self.assertIsNotNone(m, "no renewal ID in CN %r" % cn)
        self.assertEqual(m.group(0), rid)
        self.assertEqual(scep["Challenge"], f.challenge)
        prefix = "%s/mdm/scep/proxy/%s%%2C%s%%2C%s%%2C" % (
            f.public_url, host_a, P, CA_NAME)
        self.assertTrue(scep["URL"].startswith(prefix),
                        "URL %r does not start with %r" % (scep["URL"],
                                                           prefix))
        token = scep["URL"][len(prefix):]
        self.assertTrue(token, "empty one-time token in %r" % scep["URL"])
        self.assertNotIn(",", urllib.parse.unquote(token))
        for raw_var in (b"FLEET_VAR_", b"RENEWD_VAR_"):
            self.assertNotIn(raw_var, push["raw"])

        # When the device's new certificate, whose CN holds the renewal ID,
        # is imported...
        new_path = f.certs.make("devA WIFI " + rid, 365, lifetime_days=365,
                                der=True)
        imp_new = f.import_cert(host_a, new_path)

        # ...then it verifies the job.
        self.assertEqual(imp_new.get("renewal_id"), rid)
        self.assertEqual(imp_new.get("verified_job"), job["id"])
        self.assertFalse(imp_new.get("duplicate"))
        shown = f.job_show(job["id"])
        self.assertEqual(shown["job"]["state"], "verified", shown)
        names = [e["event"] for e in shown["events"]]
        self.assertIn("verified", names)
        self.assertIn("pushed", names)
        self.assertLess(names.index("pushed"), names.index("verified"))
        jobs = f.jobs()
        self.assertEqual([(j["id"], j["state"]) for j in jobs],
                         [(job["id"], "verified")])

        # And host A's old certificate is superseded, the new one active.
        certs = {c["id"]: c for c in f.certs_of(host_a)}
        self.assertEqual(set(certs), {imp_a["id"], imp_new["id"]}, certs)
        self.assertEqual(certs[imp_a["id"]]["state"], "superseded")
        self.assertEqual(certs[imp_new["id"]]["state"], "active")
        self.assertEqual(certs[imp_new["id"]]["renewal_id"], rid)
        self.assertEqual(certs[imp_new["id"]]["serial"].upper().lstrip("0"),
                         f.certs.serial(new_path).lstrip("0"))
        # Host B was left alone.
        (cb,) = f.certs_of(host_b)
        self.assertEqual(cb["state"], "active")

        # And nothing more was pushed; the daemon stops cleanly.
        self.assertEqual(len(f.hook.pushes()), 1)
        f.stop()


if __name__ == "__main__":
    harness.main()
