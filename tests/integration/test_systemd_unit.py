"""contrib/systemd/renewd.service stays a hardened, valid notify service:
systemd-analyze rates its exposure 2.0 or lower and verifies it without a
warning, it keeps the settings renewd relies on, and the configuration
example made for it (contrib/renewd.service.yaml) passes `renewd -n`.
The systemd-analyze checks are skipped where systemd-analyze is missing."""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

MAX_EXPOSURE = 2.0


def unit_path():
    return os.path.join(harness.src_dir(), "contrib", "systemd",
                        "renewd.service")


def unit_settings():
    """{key: [values]} of the unit's [Service] section."""
    res = {}
    section = None
    with open(unit_path()) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("["):
                section = line
                continue
            if section == "[Service]":
                k, _, v = line.partition("=")
                res.setdefault(k, []).append(v)
    return res


class SystemdUnit(harness.RenewdTestCase):

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.mkdtemp(prefix="renewd-unit-", dir="/tmp")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def analyze(self):
        exe = shutil.which("systemd-analyze")
        if exe is None:
            self.skipTest("systemd-analyze is not installed")
        return exe

    def test_exposure_is_at_most_2(self):
        exe = self.analyze()
        # --threshold is in tenths: 20 means an exposure of 2.0.
        p = subprocess.run(
            [exe, "security", "--offline=true", "--threshold=%d" %
             round(MAX_EXPOSURE * 10), unit_path()],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            timeout=60)
        m = re.search(r"Overall exposure level for renewd\.service: "
                      r"([0-9.]+)", p.stdout)
        self.assertIsNotNone(m, p.stdout)
        self.assertLessEqual(float(m.group(1)), MAX_EXPOSURE, p.stdout)
        self.assertEqual(p.returncode, 0, p.stdout)

    def test_verify_is_clean(self):
        exe = self.analyze()
        # verify wants ExecStart= to exist: point it at the built renewd.
        with open(unit_path()) as f:
            text = f.read()
        self.assertIn("ExecStart=/usr/sbin/renewd ", text)
        path = os.path.join(self.tmp, "renewd.service")
        with open(path, "w") as f:
            f.write(text.replace("/usr/sbin/renewd", harness.renewd_bin()))
        p = subprocess.run([exe, "verify", "--man=no", path],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=60)
        # An unknown key or bad value is only a warning: none allowed.
        self.assertEqual((p.returncode, p.stdout.strip()), (0, ""),
                         p.stdout)

    def test_settings_renewd_relies_on(self):
        s = unit_settings()
        for key, want in (("Type", "notify"), ("NotifyAccess", "main"),
                          ("WatchdogSec", "60s"),
                          ("ExecReload", "/bin/kill -HUP $MAINPID"),
                          ("User", "renewd"), ("StateDirectory", "renewd"),
                          ("RuntimeDirectory", "renewd"),
                          ("ConfigurationDirectory", "renewd"),
                          ("UMask", "0077")):
            self.assertEqual(s.get(key), [want], key)
        self.assertEqual(s["ExecStart"],
                         ["/usr/sbin/renewd -c /etc/renewd/renewd.yaml"])
        # The MDM, CAs, SMTP and webhook receivers can be anywhere.
        self.assertNotIn("IPAddressDeny", s)
        self.assertNotIn("PrivateNetwork", s)
        self.assertEqual(s["RestrictAddressFamilies"],
                         ["AF_UNIX AF_INET AF_INET6"])
        # Exec hooks and notifiers are children: fork and exec must stay.
        filters = " ".join(s.get("SystemCallFilter", []))
        self.assertIn("@system-service", filters)
        self.assertNotRegex(filters, r"~[^\n]*@process")
        self.assertNotIn("DynamicUser", s)

    def test_service_config_example_is_valid(self):
        # Given the service example with /etc/renewd, /var/lib/renewd and
        # /run/renewd moved into a temp dir, and the files it names.
        src = os.path.join(harness.src_dir(), "contrib",
                           "renewd.service.yaml")
        with open(src) as f:
            text = f.read()
        self.assertIn("database: /var/lib/renewd/renewd.db", text)
        self.assertIn("control_socket: /run/renewd/renewd.sock", text)
        root = self.tmp
        for d in ("etc/renewd/profiles", "var/lib/renewd", "run/renewd"):
            os.makedirs(os.path.join(root, d))
        for name in re.findall(r"/etc/renewd/([\w./-]+)", text):
            path = os.path.join(root, "etc/renewd", name)
            if name.endswith(".mobileconfig"):
                shutil.copyfile(harness.template_path(), path)
            elif not name.endswith(".yaml"):
                with open(path, "w") as f:
                    f.write("secret\n")
        for d in ("/etc/renewd", "/var/lib/renewd", "/run/renewd"):
            text = text.replace(d, root + d)
        cfg = os.path.join(root, "etc/renewd/renewd.yaml")
        with open(cfg, "w") as f:
            f.write(text)

        # When renewd checks it, then it is fine.
        p = subprocess.run([harness.renewd_bin(), "-c", cfg, "-n"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=60)
        self.assertEqual((p.returncode, p.stdout.strip()),
                         (0, "configuration OK"), p.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
