"""`cmake --install` of the build that made RENEWD_BIN, into a temp prefix
(and a DESTDIR, so nothing can land outside the temp dir even when the
build was configured for /usr): every file goes where an operator and
systemd look for it, and an existing renewd.yaml is never replaced."""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

MAN_PAGES = (("renewd.8", "man8"), ("renewctl.1", "man1"),
             ("renewd.yaml.5", "man5"))


def read_cache(build):
    res = {}
    with open(os.path.join(build, "CMakeCache.txt")) as f:
        for line in f:
            m = re.match(r"^([A-Za-z_0-9]+):[A-Z]+=(.*)$", line.rstrip("\n"))
            if m:
                res[m.group(1)] = m.group(2)
    return res


class Install(harness.RenewdTestCase):

    def setUp(self):
        super().setUp()
        self.cmake = shutil.which("cmake")
        if self.cmake is None:
            self.skipTest("cmake is not installed")
        self.build = os.path.dirname(os.path.abspath(harness.renewd_bin()))
        if not os.path.exists(os.path.join(self.build, "CMakeCache.txt")):
            self.skipTest("RENEWD_BIN is not in a CMake build dir")
        self.cache = read_cache(self.build)
        self.tmp = tempfile.mkdtemp(prefix="renewd-install-", dir="/tmp")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.destdir = os.path.join(self.tmp, "dest")
        self.prefix = os.path.join(self.tmp, "prefix")

    def where(self, cache_key, default, *rest):
        """A cache directory (relative ones are under the prefix) as a path
        under DESTDIR."""
        d = self.cache.get(cache_key) or default
        if not os.path.isabs(d):
            d = os.path.join(self.prefix, d)
        return os.path.join(self.destdir + d, *rest)

    def install(self):
        env = dict(os.environ, DESTDIR=self.destdir)
        p = subprocess.run([self.cmake, "--install", self.build, "--prefix",
                            self.prefix], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stdout)
        return p.stdout

    def assertFile(self, path, mode=None):
        self.assertTrue(os.path.isfile(path), "%s is missing\n%s" %
                        (path, self.listing()))
        if mode is not None:
            self.assertEqual(os.stat(path).st_mode & 0o111 != 0, mode,
                             "%s executable bits" % path)

    def listing(self):
        out = []
        for d, _, files in os.walk(self.destdir):
            out += [os.path.join(d, f) for f in files]
        return "installed:\n  " + "\n  ".join(sorted(out))

    def test_install_layout(self):
        # Given an operator's own renewd.yaml already in place.
        etc = self.where("RN_CONFDIR", "etc/renewd")
        os.makedirs(etc)
        with open(os.path.join(etc, "renewd.yaml"), "w") as f:
            f.write("# mine\n")

        # When the build is installed.
        self.install()

        # Then the binaries land in sbin and bin, and run.
        renewd = self.where("CMAKE_INSTALL_SBINDIR", "sbin", "renewd")
        renewctl = self.where("CMAKE_INSTALL_BINDIR", "bin", "renewctl")
        self.assertFile(renewd, mode=True)
        self.assertFile(renewctl, mode=True)
        p = subprocess.run([renewd, "--version"], stdout=subprocess.PIPE,
                           text=True, timeout=30)
        self.assertRegex(p.stdout, r"^renewd \d+\.\d+\.\d+")

        # And the unit is systemd's, naming the renewd of the configured
        # prefix, and otherwise the one in contrib/.
        unit = self.where("RN_SYSTEMD_UNITDIR", "lib/systemd/system",
                          "renewd.service")
        self.assertFile(unit, mode=False)
        with open(unit) as f:
            installed = f.read()
        with open(os.path.join(harness.src_dir(), "contrib", "systemd",
                               "renewd.service")) as f:
            source = f.read()
        sbindir = self.cache.get("CMAKE_INSTALL_SBINDIR", "sbin")
        if not os.path.isabs(sbindir):
            sbindir = os.path.join(self.cache["CMAKE_INSTALL_PREFIX"],
                                   sbindir)
        self.assertIn("\nExecStart=%s/renewd -c /etc/renewd/renewd.yaml\n"
                      % sbindir, installed)
        self.assertEqual(installed.replace(sbindir + "/renewd",
                                           "/usr/sbin/renewd"), source)

        # And the sysusers.d entry creates the user the unit runs as.
        sysusers = self.where("RN_SYSUSERSDIR", "lib/sysusers.d",
                              "renewd.conf")
        self.assertFile(sysusers, mode=False)
        with open(sysusers) as f:
            self.assertRegex(f.read(), r"(?m)^u renewd - .* /var/lib/renewd$")

        # And the example configuration sits beside the operator's file,
        # which is untouched.
        self.assertFile(os.path.join(etc, "renewd.yaml.example"), mode=False)
        with open(os.path.join(etc, "renewd.yaml")) as f:
            self.assertEqual(f.read(), "# mine\n")
        with open(os.path.join(etc, "renewd.yaml.example")) as f:
            self.assertIn("/var/lib/renewd/renewd.db", f.read())

        # And the sample profile is shared data.
        self.assertFile(self.where("CMAKE_INSTALL_DATADIR", "share",
                                   "renewd", "profiles",
                                   "wifi-scep.mobileconfig"), mode=False)

        # And each man page that exists in doc/man is in its section.
        for name, sect in MAN_PAGES:
            src = os.path.join(harness.src_dir(), "doc", "man", name)
            dst = self.where("CMAKE_INSTALL_MANDIR", "share/man", sect, name)
            if os.path.exists(src):
                self.assertFile(dst, mode=False)
            else:
                self.assertFalse(os.path.exists(dst), dst)

        # And nothing went outside DESTDIR's copy of the prefix unless the
        # build names an absolute directory for it.
        for d, _, files in os.walk(self.destdir):
            for f in files:
                path = os.path.join(d, f)
                if not path.startswith(self.destdir + self.prefix + "/"):
                    self.assertTrue(any(
                        os.path.isabs(self.cache.get(k, ""))
                        for k in ("RN_SYSTEMD_UNITDIR", "RN_SYSUSERSDIR",
                                  "RN_CONFDIR")), path)


if __name__ == "__main__":
    unittest.main(verbosity=2)
