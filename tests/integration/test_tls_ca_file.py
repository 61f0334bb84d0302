"""An MDM behind a private CA: `mdm.ca_file` names the PEM certificates
renewd trusts for it instead of the system's store. Without it the push
fails on the TLS handshake, says why, and is retried; with it the push
goes through. (The same setting exists for each CA and for webhook and
smtp notifiers; config parsing of all three is in test_config.)"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


class TlsCaFile(harness.RenewdTestCase):

    def _fleet(self, rcv, ca_file):
        f = self.fleet()
        f.mdm = ("  driver: webhook\n"
                 "  url: %s\n"
                 "  timeout: 10s\n" % json.dumps(rcv.url("/push")))
        if ca_file:
            f.mdm += "  ca_file: %s\n" % json.dumps(ca_file)
        f.write_config()
        f.start()
        return f

    def test_private_ca_needs_ca_file(self):
        d = self.fleet().dir
        ca, crt, key = harness.tls_server_cert(d)
        rcv = self.receiver(202, tls=(crt, key))

        # Given an HTTPS webhook MDM whose certificate a private CA signed,
        # and renewd without ca_file: the push fails on the handshake.
        f = self._fleet(rcv, None)
        f.add_host(10, serial="devA")
        t = f.trigger()
        self.assertEqual(t.get("enqueued"), 1, t)
        log = f.wait_log("attempt failed, will retry",
                         "the push to fail on the unknown CA")
        self.assertRegex(log, r"(?i)certificate|SSL")
        self.assertEqual(rcv.got(), [])
        self.assertGreaterEqual(rcv.tls_failures, 1)
        f.close()

        # When renewd is told to trust that CA, the push goes through.
        g = self._fleet(rcv, ca)
        host, _ = g.add_host(10, serial="devB")
        g.trigger()
        g.wait_jobs(lambda js: len(js) == 1 and js[0]["state"] == "pushed",
                    "the push over HTTPS to succeed")
        (r,) = rcv.got()
        self.assertEqual(json.loads(r["body"])["host_uuid"], host)


if __name__ == "__main__":
    harness.main()
