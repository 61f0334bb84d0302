"""Given a running renewd, SIGHUP with a broken config keeps the old one and
says where the error is; SIGHUP with a fixed config reloads."""

import os
import re
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


class Reload(harness.RenewdTestCase):

    def test_sighup_with_broken_config_keeps_running(self):
        # Given a running renewd.
        f = self.fleet()
        f.start()
        good = f.config_text()
        st = f.ctl("status")
        self.assertIn("daemon", st)

        # When its config file gets an error and it receives SIGHUP.
        bad = good.replace("scan_interval: 1h", "scan_interval: banana")
        self.assertNotEqual(bad, good)
        lines = bad.split("\n")
        line_no = next(i + 1 for i, l in enumerate(lines)
                       if "scan_interval: banana" in l)
        f.write_config(bad)
        mark = len(f.log_text())
        f.signal(signal.SIGHUP)

        # Then it logs the failure with file:line:col and keeps running.
        where = re.compile(re.escape(f.cfg) + r":%d:\d+" % line_no)
        text = f.wait_log(where, "the config error with %s:%d:COL"
                          % (f.cfg, line_no), start=mark)
        self.assertIn("reload failed, keeping the old configuration", text)
        self.assertNotIn("configuration reloaded", text)
        self.assertTrue(f.running(), f.log_tail())
        rc, doc, err = f.ctl_rc("status")
        self.assertEqual(rc, 0, err)
        self.assertIn("daemon", doc)
        self.assertTrue(f.running(), f.log_tail())

        # When the file is fixed and it receives SIGHUP again.
        f.write_config(good)
        mark = len(f.log_text())
        f.signal(signal.SIGHUP)

        # Then it reloads, and still answers.
        text = f.wait_log("configuration reloaded", start=mark)
        self.assertNotIn("reload failed", text)
        self.assertTrue(f.running(), f.log_tail())
        self.assertIn("daemon", f.ctl("status"))
        f.stop()


if __name__ == "__main__":
    harness.main()
