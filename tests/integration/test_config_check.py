"""`renewd -n` checks a configuration without starting."""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


class ConfigCheck(harness.RenewdTestCase):

    def test_broken_config_reports_every_error_with_position(self):
        # Given a config with two errors: a bad duration and an unknown key.
        f = self.fleet()
        bad = f.config_text().replace("scan_interval: 1h",
                                      "scan_interval: banana")
        bad = bad.replace("  log_level: debug\n",
                          "  log_level: debug\n  colour: blue\n")
        broken = os.path.join(f.dir, "broken.yaml")
        f.write_config(bad, path=broken)
        lines = bad.split("\n")
        l_dur = next(i + 1 for i, l in enumerate(lines) if "banana" in l)
        l_key = next(i + 1 for i, l in enumerate(lines) if "colour" in l)

        # When it is checked.
        f.cfg = broken
        rc, out = f.run_renewd(["-n"])

        # Then renewd exits 1 naming both errors by line:col, and has not
        # created the database or socket.
        self.assertEqual(rc, 1, out)
        for ln in (l_dur, l_key):
            self.assertRegex(out, re.escape(broken) + r":%d:\d+" % ln)
        self.assertNotIn("configuration OK", out)
        self.assertFalse(os.path.exists(f.db))
        self.assertFalse(os.path.exists(f.sock))

    def test_good_config_is_ok(self):
        # Given a good config.
        f = self.fleet()

        # When it is checked.
        rc, out = f.run_renewd(["-n"])

        # Then renewd says so and exits 0 without starting.
        self.assertEqual(rc, 0, out)
        self.assertIn("configuration OK", out)
        self.assertFalse(os.path.exists(f.sock))

    def test_example_config_is_ok(self):
        # Given the shipped example config, checked from the repo root as
        # `make run` uses it (its challenge file and profile are relative).
        src = harness.src_dir()
        p = harness.subprocess.run(
            [harness.renewd_bin(), "-c", "contrib/renewd.example.yaml",
             "-n"], cwd=src, stdout=harness.subprocess.PIPE,
            stderr=harness.subprocess.STDOUT, timeout=60)
        out = p.stdout.decode("utf-8", "replace")
        self.assertEqual(p.returncode, 0, out)
        self.assertIn("configuration OK", out)


if __name__ == "__main__":
    harness.main()
