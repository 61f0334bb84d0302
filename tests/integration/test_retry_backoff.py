"""Given a push hook that always fails, a job is retried with backoff and
ends failed after max_attempts."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


class RetryBackoff(harness.RenewdTestCase):

    def test_failing_hook_exhausts_attempts_with_backoff(self):
        # Given a fleet with max_attempts 3, backoff 1s..2s, one due
        # certificate, and a hook that always exits 1.
        f = self.fleet(max_attempts=3)
        f.hook.set_exit(1)
        f.start()
        host, _ = f.add_host(10)

        # When the operator triggers a scan.
        t = f.trigger()
        self.assertEqual((t.get("due"), t.get("enqueued")), (1, 1), t)

        # Then the job ends failed after exactly 3 attempts.
        (job,) = f.wait_jobs(
            lambda js: len(js) == 1 and js[0]["state"] == "failed",
            "the job to fail")
        self.assertEqual(job["host_uuid"], host)
        self.assertEqual(job["attempts"], 3, job)
        self.assertIn("exit 1", job.get("last_error") or "", job)
        starts = f.hook.starts()
        self.assertEqual(len(starts), 3, starts)
        self.assertEqual({s["job"] for s in starts}, {str(job["id"])})

        # Its events show three started and three failed attempts, each
        # failure with the hook's exit status, then the final "failed".
        ev = f.job_show(job["id"])["events"]
        names = [e["event"] for e in ev]
        started = [e for e in ev if e["event"] == "attempt_started"]
        self.assertEqual(len(started), 3, names)
        failures = [e for e in ev if e["event"] in ("attempt_failed",
                                                    "failed")
                    and "exit 1" in (e.get("detail") or "")]
        self.assertGreaterEqual(len(failures), 3, ev)
        self.assertGreaterEqual(names.count("attempt_failed"), 2, names)
        self.assertEqual(names.count("failed"), 1, names)
        self.assertEqual(names[-1], "failed", names)
        self.assertNotIn("pushed", names)

        # The backoff was respected: each retry started at least 1 s (the
        # initial backoff; event times have 1 s resolution) after the
        # previous attempt failed, and the hook's own millisecond clock
        # agrees the attempts were spread out.
        att_failed = [e for e in ev if e["event"] == "attempt_failed"]
        for k in range(2):
            t_fail = harness.parse_rfc3339(att_failed[k]["at"])
            t_next = harness.parse_rfc3339(started[k + 1]["at"])
            self.assertGreaterEqual(
                t_next - t_fail, 1.0,
                "attempt %d started %.0fs after attempt %d failed: %s"
                % (k + 2, t_next - t_fail, k + 1, ev))
        ms = [s["ms"] for s in starts]
        # Backoffs are 1 s then 2 s with equal jitter ([d/2, d]) and
        # whole-second scheduling: from the 1st to the 3rd attempt at
        # least 1 s (both waits) must pass even at their shortest.
        self.assertGreaterEqual(ms[2] - ms[0], 1000, ms)
        self.assertGreater(ms[1] - ms[0], 0, ms)
        self.assertGreater(ms[2] - ms[1], 0, ms)
        f.stop()


if __name__ == "__main__":
    harness.main()
