"""Given due certificates, `renewd --once` pushes them and exits 0, or
exits 1 when a push fails."""

import os
import sys

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


if __name__ == "__main__":
    harness.main()
