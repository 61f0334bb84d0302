"""POST /api/v1/certificates: a bearer-token API that imports a device's
certificate with the same matching as `renewctl certs import`. Disabled
(404) without http.api_token_file; 401 on a missing or wrong token; 400 on
a malformed body; a certificate carrying a pushed job's renewal ID
verifies that job, and posting it again is a duplicate."""

import json
import os
import sys
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import CA_NAME  # noqa: E402

TOKEN = "s3cret-api-token-for-tests"
PATH = "/api/v1/certificates"


def post(f, body, token=None, raw=False):
    """(status, parsed JSON body, content type)."""
    data = body if raw else json.dumps(body).encode()
    req = urllib.request.Request(f.public_url + PATH, data=data,
                                 method="POST")
    req.add_header("Content-Type", "application/json")
    if token is not None:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            status, text, ctype = (r.status, r.read(),
                                   r.headers.get("Content-Type"))
    except urllib.error.HTTPError as e:
        status, text, ctype = e.code, e.read(), e.headers.get("Content-Type")
    return status, json.loads(text.decode()), ctype


class ApiCertificates(harness.RenewdTestCase):

    def test_disabled_without_token(self):
        f = self.fleet()
        f.start()
        status, doc, ctype = post(f, {}, token=TOKEN)
        self.assertEqual(status, 404, doc)
        self.assertTrue(ctype.startswith("application/json"), ctype)
        self.assertIn("error", doc)
        f.stop()

    def test_import_verifies_job(self):
        f = self.fleet(api_token=TOKEN)
        f.start()
        host, imp0 = f.add_host(10, serial="devA")
        with open(f.certs.make("devA WIFI other", 365)) as fh:
            pem0 = fh.read()
        good = {"host_uuid": host, "profile_uuid": f.profile_uuid,
                "ca_name": CA_NAME, "pem": pem0}

        # Missing and wrong bearer tokens are refused; nothing changes.
        for tok in (None, "wrong", TOKEN + "x", TOKEN[:-1], ""):
            status, doc, ctype = post(f, good, token=tok)
            self.assertEqual(status, 401, (tok, doc))
            self.assertTrue(ctype.startswith("application/json"), ctype)
        self.assertNotIn(TOKEN, f.log_text())

        # Malformed bodies: 400 with an error, nothing stored.
        status, doc, _ = post(f, b"{not json", token=TOKEN, raw=True)
        self.assertEqual(status, 400, doc)
        self.assertIn("error", doc)
        for bad in ([], {k: v for k, v in good.items() if k != "pem"},
                    dict(good, host_uuid=7), dict(good, ca_name=""),
                    dict(good, profile_uuid=harness.new_uuid()),
                    dict(good, ca_name="no-such-ca"),
                    dict(good, pem="-----BEGIN CERTIFICATE-----\nAAAA\n"
                                   "-----END CERTIFICATE-----\n")):
            status, doc, ctype = post(f, bad, token=TOKEN)
            self.assertEqual(status, 400, (bad, doc))
            self.assertTrue(ctype.startswith("application/json"), ctype)
            self.assertIsInstance(doc.get("error"), str)
        self.assertEqual([c["id"] for c in f.certs_of(host)], [imp0["id"]])

        # A due certificate gets a pushed renewal job.
        t = f.trigger()
        self.assertEqual(t.get("enqueued"), 1, t)
        jobs = f.wait_jobs(
            lambda js: len(js) == 1 and js[0]["state"] == "pushed",
            "the job to be pushed")
        job = jobs[0]
        rid = job["renewal_id"]
        self.assertTrue(rid)

        # The device's new certificate, posted through the API, verifies it.
        with open(f.certs.make("devA WIFI " + rid, 365)) as fh:
            pem = fh.read()
        body = dict(good, pem=pem)
        status, doc, ctype = post(f, body, token=TOKEN)
        self.assertEqual(status, 200, doc)
        self.assertTrue(ctype.startswith("application/json"), ctype)
        self.assertEqual(doc["verified_job"], job["id"], doc)
        self.assertEqual(doc["renewal_id"], rid)
        self.assertIs(doc["duplicate"], False)
        self.assertIsInstance(doc["id"], int)
        self.assertTrue(doc["serial"])
        shown = f.job_show(job["id"])
        self.assertEqual(shown["job"]["state"], "verified", shown)
        certs = {c["id"]: c["state"] for c in f.certs_of(host)}
        self.assertEqual(certs, {imp0["id"]: "superseded",
                                 doc["id"]: "active"})

        # Posting the same certificate again changes nothing.
        status, again, _ = post(f, body, token=TOKEN)
        self.assertEqual(status, 200, again)
        self.assertIs(again["duplicate"], True, again)
        self.assertEqual(again["id"], doc["id"])
        self.assertIsNone(again["verified_job"])
        self.assertEqual(f.job_show(job["id"])["job"]["state"], "verified")

        self.assertNotIn(TOKEN, f.log_text())
        f.stop()


if __name__ == "__main__":
    harness.main()
