"""SIGTERM stops taking work but lets the push in flight finish: the job
is recorded as pushed and renewd exits 0."""

import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


class Shutdown(harness.RenewdTestCase):

    def test_sigterm_drains_in_flight_push(self):
        # Given a push hook that takes 2 s and one due certificate.
        f = self.fleet()
        f.hook.set_sleep(2)
        f.start()
        host, _ = f.add_host(10)
        f.trigger()
        harness.poll(lambda: f.hook.starts() or None, 20, "the hook to start")

        # When renewd gets SIGTERM while the hook runs...
        f.signal(signal.SIGTERM)
        rc = f.proc.wait(timeout=20)

        # ...then it waited for the hook, recorded the push and exited 0.
        self.assertEqual(rc, 0, f.log_tail())
        ends = [i for i in f.hook.invocations() if i["what"] == "end"]
        self.assertEqual(len(ends), 1, f.hook.invocations())
        self.assertIn("waiting for attempts in flight", f.log_text())
        (job,) = f.jobs()
        self.assertEqual(job["host_uuid"], host)
        self.assertEqual(job["state"], "pushed", job)


if __name__ == "__main__":
    harness.main()
