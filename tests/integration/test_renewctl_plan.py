"""renewctl plan: the dry run an operator reads before a scan. It lists the
certificates whose renewal job is open, then the ones due within the
window (--within, default 30d) in due order, each with its policy; it
needs no running daemon."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

DAY = 86400


class Plan(harness.RenewdTestCase):

    def test_plan_lists_open_jobs_then_due_in_order(self):
        # Given a fleet (policy: renew 30 days before expiry) with a
        # certificate due now, one due in 10 days, one in 170 days, and
        # one whose resend job is open.
        f = self.fleet()
        f.start()
        f.stop()
        now_host, now_cert = f.add_host(days_left=10, serial="NOW")
        soon_host, soon_cert = f.add_host(days_left=40, serial="SOON")
        later_host, later_cert = f.add_host(days_left=200, serial="LATER")
        open_host, open_cert = f.add_host(days_left=300, serial="OPEN")
        f.ctl("resend", "--host", open_host, "--profile", f.profile_uuid)

        # When the operator asks for the plan of the next 30 days.
        t0 = time.time()
        doc = f.ctl("plan")

        # Then the open job comes first, then the due ones by due time,
        # and the one due in 170 days is not listed.
        rows = doc["plan"]
        self.assertEqual([r["host_uuid"] for r in rows],
                         [open_host, now_host, soon_host], rows)
        self.assertTrue(rows[0]["job_open"], rows[0])
        self.assertFalse(rows[0]["due_now"], rows[0])
        self.assertTrue(rows[1]["due_now"], rows[1])
        self.assertFalse(rows[1]["job_open"], rows[1])
        self.assertFalse(rows[2]["due_now"], rows[2])
        for r in rows:
            self.assertEqual(r["policy"], "default", r)
            self.assertEqual(r["profile_uuid"], f.profile_uuid, r)
        soon_at = harness.parse_rfc3339(rows[2]["renew_at"])
        self.assertAlmostEqual(soon_at, t0 + 10 * DAY, delta=120)

        # When the window is 5 days, the one due in 10 days drops out.
        rows = f.ctl("plan", "--within", "5d")["plan"]
        self.assertEqual([r["host_uuid"] for r in rows],
                         [open_host, now_host], rows)

        # And the text form says when, per row.
        rc, out, err = f.ctl_raw("plan", "--within", "365d", json_out=False)
        self.assertEqual(rc, 0, (out, err))
        lines = out.splitlines()
        self.assertTrue(lines[0].startswith("CERT"), out)
        by_host = {ln.split()[1]: ln for ln in lines[1:]}
        self.assertTrue(by_host[open_host].endswith("job open"), out)
        self.assertTrue(by_host[now_host].endswith("now"), out)
        self.assertRegex(by_host[soon_host], r"in (9|10)d", out)
        self.assertIn(later_host, by_host, out)

    def test_bad_window_is_a_usage_error(self):
        # Given a fleet.
        f = self.fleet()
        f.start()
        f.stop()

        # When the window is not a duration.
        rc, out, err = f.ctl_raw("plan", "--within", "soon", json_out=False)

        # Then renewctl exits 2 and names the option.
        self.assertEqual(rc, 2, (out, err))
        self.assertIn("--within", err)


if __name__ == "__main__":
    harness.main()
