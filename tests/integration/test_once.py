"""Given due certificates, `renewd --once` pushes them and exits 0, or
exits 1 when a push fails; the alerts a run raises are delivered before
it ends, and a notifier that is down neither holds the run nor loses
them."""

import json
import os
import socket
import sqlite3
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def fleet_with_due_cert(tc, **kw):
    """A fleet whose store holds one due and one not-due certificate,
    imported through a daemon that is stopped again."""
    f = tc.fleet(**kw)
    f.start()
    host, _ = f.add_host(10, serial="devA")
    f.add_host(200, serial="devB")
    f.stop()
    tc.assertEqual(f.hook.starts(), [], "nothing may be pushed yet")
    return f, host


class Once(harness.RenewdTestCase):

    def test_once_pushes_due_certificate_and_exits_0(self):
        # Given a stopped fleet with one due certificate and a good hook.
        f, host = fleet_with_due_cert(self)

        # When renewd runs once.
        rc, out = f.run_renewd(["--once"])

        # Then it exits 0 and the hook got the host's profile.
        self.assertEqual(rc, 0, out)
        pushes = f.hook.pushes()
        self.assertEqual(len(pushes), 1, out)
        self.assertEqual(pushes[0]["env"].get("HOST_UUID"), host)
        scep = harness.scep_payload(pushes[0]["profile"])
        self.assertRegex(harness.subject_cn(scep), harness.RENEWAL_ID_RE)

    def test_once_with_failing_hook_exits_1(self):
        # Given a stopped fleet with one due certificate and a hook that
        # always fails.
        f, host = fleet_with_due_cert(self, max_attempts=2)
        f.hook.set_exit(1)

        # When renewd runs once.
        rc, out = f.run_renewd(["--once"])

        # Then it exits 1 after trying the push.
        self.assertEqual(rc, 1, out)
        self.assertGreaterEqual(len(f.hook.starts()), 1, out)

    def with_webhook_notifier(self, f, url):
        f.notifiers = ("  - name: ops\n"
                       "    driver: webhook\n"
                       "    url: %s\n"
                       "    timeout: 2s\n"
                       "    events: [renewal.failed]\n" % json.dumps(url))
        f.write_config()

    def test_once_delivers_the_alert_it_raised(self):
        # Given a due certificate whose only attempt fails, and a webhook
        # notifier for renewal.failed.
        rcv = self.receiver(status=200)
        f, host = fleet_with_due_cert(self, max_attempts=1)
        self.with_webhook_notifier(f, rcv.url("/alerts"))
        f.hook.set_exit(1)

        # When renewd runs once, then it exits 1 and the receiver got
        # renewal.failed for the host before the run ended.
        rc, out = f.run_renewd(["--once"])
        self.assertEqual(rc, 1, out)
        docs = [json.loads(r["body"]) for r in rcv.got()]
        self.assertEqual([(d["event"], d["host"]) for d in docs],
                         [("renewal.failed", host)], out)
        self.assertIn("notification delivered", out)

    def test_once_with_notifier_down_keeps_the_alert(self):
        # Given the same failing renewal and a notifier nothing listens on.
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        f, host = fleet_with_due_cert(self, max_attempts=1)
        self.with_webhook_notifier(f, "http://127.0.0.1:%d/alerts" % port)
        f.hook.set_exit(1)

        # When renewd runs once, then it still ends (in well under the
        # notifier's timeout plus 5 s)...
        t0 = time.monotonic()
        rc, out = f.run_renewd(["--once"])
        self.assertEqual(rc, 1, out)
        self.assertLess(time.monotonic() - t0, 30, out)
        self.assertIn("notification failed, will retry", out)
        # ...and the alert waits in the outbox for the next run.
        db = sqlite3.connect("file:%s?mode=ro" % f.db, uri=True)
        rows = db.execute("SELECT event, notifier, state, attempts FROM "
                          "notifications WHERE notifier IS NOT NULL"
                          ).fetchall()
        db.close()
        self.assertEqual(rows, [("renewal.failed", "ops", "pending", 1)])

        # When the receiver is up and renewd runs once more after the
        # retry time (10 s to 10 min; its clock moved 11 min on), the
        # receiver gets it.
        rcv = self.receiver(status=200, port=port)
        rc, out = f.run_renewd(["--once"],
                               env={"RENEWD_TIME_OFFSET": "660"})
        docs = [json.loads(r["body"]) for r in rcv.got()]
        self.assertEqual([d["event"] for d in docs], ["renewal.failed"],
                         out)


if __name__ == "__main__":
    harness.main()
