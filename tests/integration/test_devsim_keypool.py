"""devsim --key-pool: the simulated devices take their RSA keys from a pool
generated once (instead of `openssl genrsa` per enrollment), still build a
CSR of their own with scepclient for every enrollment, and enroll then
renew through renewd's SCEP proxy against a real scepserver; a renewal
gets a key other than the one it replaces. A second devsim on the same
directory reuses the pool as it is."""

import glob
import hashlib
import json
import os
import re
import signal
import sys
import time

from cryptography import x509
from cryptography.hazmat.primitives import serialization

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import test_devsim  # noqa: E402
from test_mdm_webhook import checkin, post  # noqa: E402

WAIT = 90
POOL = 4
N = 5


def spki(key):
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def pool_keys(d):
    """{SPKI DER: pool index} of the key files in d, and their bytes."""
    res, raw = {}, {}
    for i in range(POOL):
        with open(os.path.join(d, "key-%05d.pem" % i), "rb") as fh:
            raw[i] = fh.read()
        k = serialization.load_pem_private_key(raw[i], None)
        res[spki(k.public_key())] = i
    return res, raw


def issued(depot):
    """{sha256 hex of the DER: SPKI DER} of what scepserver issued."""
    res = {}
    for p in glob.glob(os.path.join(depot, "*.pem")):
        if os.path.basename(p) == "ca.pem":
            continue
        with open(p, "rb") as fh:
            c = x509.load_pem_x509_certificate(fh.read())
        der = c.public_bytes(serialization.Encoding.DER)
        res[hashlib.sha256(der).hexdigest()] = spki(c.public_key())
    return res


class DevsimKeyPool(harness.RenewdTestCase):

    devsim_fleet = test_devsim.Devsim.devsim_fleet
    start_devsim = test_devsim.Devsim.start_devsim

    def test_pooled_keys_enroll_and_renew_with_a_new_key(self):
        # Given scepserver as the CA, renewd with the nanomdm driver and a
        # signed webhook, and devsim with a pool of 4 keys for 5 devices
        # in a directory that does not exist yet.
        f, port, key_file, hmac_file = self.devsim_fleet()
        pool_dir = os.path.join(f.dir, "keys")
        sim = self.start_devsim(f, port, key_file, hmac_file, n=N,
                                concurrency=3,
                                extra=["--key-pool", pool_dir,
                                       "--key-pool-size", str(POOL),
                                       "--key-pool-jobs", "2"])
        f.start()

        # The pool was generated: 4 owner-only PKCS#1 RSA 2048 keys.
        self.assertIn("0 reused, %d generated" % POOL,
                      harness.tail(self.devsim_log, 5))
        pool, raw = pool_keys(pool_dir)
        self.assertEqual(len(pool), POOL)
        for i in range(POOL):
            self.assertTrue(raw[i].startswith(
                b"-----BEGIN RSA PRIVATE KEY-----"))
            st = os.stat(os.path.join(pool_dir, "key-%05d.pem" % i))
            self.assertEqual(st.st_mode & 0o777, 0o600)
            k = serialization.load_pem_private_key(raw[i], None)
            self.assertEqual(k.key_size, 2048)

        def fail_with_devsim(e):
            raise AssertionError("%s\ndevsim log:\n%s" % (
                e, harness.tail(self.devsim_log, 60)))

        def verified(js, kind, count):
            bad = [j for j in js if j["state"] in ("failed", "cancelled")]
            if bad:
                raise AssertionError("jobs ended badly: %s\n%s" % (
                    json.dumps(bad, indent=1), f.log_tail()))
            mine = [j for j in js if j["kind"] == kind]
            return (len(mine) == count and
                    all(j["state"] == "verified" for j in mine))

        # When 5 devices send TokenUpdate...
        udids = ["dev-%04d" % i for i in range(1, N + 1)]
        for i, udid in enumerate(udids):
            st, text = post(f, checkin("mdm.TokenUpdate", udid,
                                       "SNPOOL%d" % i), key="hook-KEY-1")
            self.assertEqual((st, text), (200, "ok"), f.log_tail())
        # ...then every issue job is verified...
        try:
            f.wait_jobs(lambda js: verified(js, "issue", N),
                        "%d verified issue jobs" % N, timeout=WAIT)
        except AssertionError as e:
            fail_with_devsim(e)

        # ...and when every certificate is made due and renewed...
        f.write_config(f.config_text().replace(
            "    renew_before: 30d\n", "    renew_at_percent: 0.0001\n"))
        mark = len(f.log_text())
        f.signal(signal.SIGHUP)
        f.wait_log("configuration reloaded", start=mark)

        def all_due():
            cs = [c for c in f.ctl("certs")["certificates"]
                  if c["host_uuid"] in udids]
            return len(cs) == N and all(
                harness.parse_rfc3339(c["renew_at"]) <= time.time()
                for c in cs)
        harness.poll(all_due, 60, "the certificates to be due",
                     f.log_tail, interval=0.5)
        f.trigger()
        try:
            jobs = f.wait_jobs(lambda js: verified(js, "renew", N),
                               "%d verified renew jobs" % N, timeout=WAIT)
        except AssertionError as e:
            fail_with_devsim(e)
        f.write_config()
        mark = len(f.log_text())
        f.signal(signal.SIGHUP)
        f.wait_log("configuration reloaded", start=mark)

        # ...then each device's two certificates (the superseded and the
        # active one) carry keys from the pool, different keys, and each
        # is for its own renewal ID (a CSR of its own).
        got = issued(os.path.join(f.dir, "depot"))
        used = set()
        for udid in udids:
            certs = f.certs_of(udid)
            old = [c for c in certs if c["state"] == "superseded"]
            new = [c for c in certs if c["state"] == "active"]
            self.assertEqual((len(old), len(new)), (1, 1), certs)
            keys = []
            for c in (old[0], new[0]):
                fp = c["sha256"].replace(":", "").lower()
                self.assertIn(fp, got, (udid, c, sorted(got)))
                self.assertIn(got[fp], pool, "%s: a key not in the pool"
                              % udid)
                keys.append(pool[got[fp]])
            self.assertNotEqual(keys[0], keys[1],
                                "%s renewed with the key it had" % udid)
            used.update(keys)
            (renew,) = [j for j in jobs if j["host_uuid"] == udid and
                        j["kind"] == "renew"]
            self.assertIn(renew["renewal_id"], new[0]["subject"])
            self.assertNotEqual(old[0]["subject"], new[0]["subject"])
        # 10 enrollments over 4 keys: every key served, none generated
        # per enrollment (an attempt the CA refused is retried by renewd
        # with the next key: one more "pool key" than "enrolled").
        self.assertEqual(used, set(range(POOL)))
        with open(self.devsim_log, errors="replace") as fh:
            text = fh.read()
        self.assertEqual(text.count(" enrolled CN="), 2 * N)
        refused = len(re.findall(r" InstallProfile \S+ failed: ", text))
        self.assertEqual(text.count(": pool key "), 2 * N + refused)
        self.assertNotIn("genrsa", text)
        # scepserver refused nothing for its key: a shared key, or one
        # seen before, is no reason (under concurrent load it sometimes
        # fails to read its own serial file, which renewd retries).
        with open(os.path.join(f.dir, "scepserver.log"),
                  errors="replace") as fh:
            slog = [ln for ln in fh if "failed to sign CSR" in ln]
        # The race shows as "could not convert %s to serial number" (the
        # serial it read, empty or not) or "open .../depot/serial: file
        # exists" (two writers): either way the error is about its serial
        # file, never the key.
        for ln in slog:
            self.assertRegex(ln, r'err="[^"]*serial')

        # devsim stops cleanly; the pool is left as it was.
        sim.send_signal(signal.SIGTERM)
        self.assertEqual(sim.wait(20), 0, harness.tail(self.devsim_log))
        self.assertEqual(pool_keys(pool_dir)[1], raw)

        # A second devsim on the same directory, with one key file
        # damaged, reuses the 3 valid keys and regenerates that one.
        with open(os.path.join(pool_dir, "key-00002.pem"), "wb") as fh:
            fh.write(raw[2][:100])
        sim2 = self.start_devsim(f, harness.free_port(), key_file,
                                 hmac_file, n=N,
                                 extra=["--key-pool", pool_dir,
                                        "--key-pool-size", str(POOL)],
                                 log_name="devsim2.log")
        self.assertIn("%d reused, 1 generated" % (POOL - 1),
                      harness.tail(self.devsim_log, 5))
        sim2.send_signal(signal.SIGTERM)
        self.assertEqual(sim2.wait(20), 0, harness.tail(self.devsim_log))
        again = pool_keys(pool_dir)[1]
        self.assertEqual({i: again[i] for i in (0, 1, 3)},
                         {i: raw[i] for i in (0, 1, 3)})
        self.assertNotEqual(again[2], raw[2])


if __name__ == "__main__":
    harness.main()
