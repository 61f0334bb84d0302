"""renewctl says so when no daemon is running."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


class NoDaemon(harness.RenewdTestCase):

    def test_trigger_without_daemon_fails_with_not_running(self):
        # Given a fleet whose renewd is not running.
        f = self.fleet()
        self.assertFalse(os.path.exists(f.sock))

        # When the operator triggers a scan.
        rc, out, err = f.ctl_raw("trigger", json_out=False)

        # Then renewctl exits 1 and says the daemon is not running.
        self.assertEqual(rc, 1, (out, err))
        self.assertIn("not running", err)

    def test_trigger_after_daemon_stopped_fails_with_not_running(self):
        # Given a fleet whose renewd ran and was stopped.
        f = self.fleet()
        f.start()
        f.stop()

        # When the operator triggers a scan.
        rc, out, err = f.ctl_raw("trigger", json_out=False)

        # Then renewctl exits 1 and says the daemon is not running.
        self.assertEqual(rc, 1, (out, err))
        self.assertIn("not running", err)


if __name__ == "__main__":
    harness.main()
