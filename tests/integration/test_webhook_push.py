"""Given a fleet whose MDM driver is the webhook, a due certificate is
pushed as one signed JSON POST."""

import base64
import hashlib
import hmac
import json
import os
import plistlib
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import CA_NAME, RENEWAL_ID_RE  # noqa: E402

API_KEY = "it-api-key-5f1c"
HMAC_KEY = "it-hmac-key-9a7e"


class WebhookPush(harness.RenewdTestCase):

    def test_due_certificate_is_pushed_as_signed_webhook(self):
        # Given a fleet pushing through a webhook MDM that answers 202.
        rcv = self.receiver(202)
        f = self.fleet()
        key_file = f.write_file("mdm-api-key", API_KEY + "\n")
        hmac_file = f.write_file("mdm-hmac-key", HMAC_KEY + "\n")
        f.mdm = ("  driver: webhook\n"
                 "  url: %s\n"
                 "  api_key_file: %s\n"
                 "  hmac_key_file: %s\n"
                 "  timeout: 10s\n" % (json.dumps(rcv.url("/push")),
                                       json.dumps(key_file),
                                       json.dumps(hmac_file)))
        f.write_config()
        f.start()
        host_a, _ = f.add_host(10, serial="devA")
        f.add_host(200, serial="devB")

        # When the operator triggers a scan.
        t = f.trigger()
        self.assertEqual((t.get("due"), t.get("enqueued")), (1, 1), t)

        # Then the job is pushed after exactly one POST.
        (job,) = f.wait_jobs(
            lambda js: len(js) == 1 and js[0]["state"] == "pushed",
            "the job to be pushed through the webhook")
        reqs = rcv.got()
        self.assertEqual(len(reqs), 1, [r["path"] for r in reqs])
        r = reqs[0]
        self.assertEqual(r["method"], "POST")
        self.assertEqual(r["path"], "/push")
        h = r["headers"]
        self.assertEqual(h.get("authorization"), "Bearer " + API_KEY)
        self.assertIn("application/json", h.get("content-type", ""))

        # The signature is HMAC-SHA256 over the exact body.
        want = "sha256=" + hmac.new(HMAC_KEY.encode(), r["body"],
                                    hashlib.sha256).hexdigest()
        got = h.get("x-renewd-signature", "")
        self.assertTrue(hmac.compare_digest(got.lower(), want),
                        "X-Renewd-Signature %r, want %r" % (got, want))
        self.assertNotIn(API_KEY.encode(), r["body"])
        self.assertNotIn(HMAC_KEY.encode(), r["body"])

        # The JSON names the job and carries the rendered profile.
        doc = json.loads(r["body"])
        self.assertEqual(doc.get("event"), "profile.push")
        self.assertEqual(doc.get("host_uuid"), host_a)
        self.assertEqual(doc.get("profile_uuid"), f.profile_uuid)
        self.assertEqual(doc.get("ca_name"), CA_NAME)
        self.assertEqual(str(doc.get("job_id")), str(job["id"]))
        self.assertEqual(doc.get("renewal_id"), job["renewal_id"])
        self.assertRegex(doc["renewal_id"], RENEWAL_ID_RE)
        self.assertTrue(doc.get("command_uuid"))
        profile = plistlib.loads(base64.b64decode(doc["profile"],
                                                  validate=True))
        scep = harness.scep_payload(profile)
        self.assertIn(doc["renewal_id"], harness.subject_cn(scep))
        self.assertEqual(scep["Challenge"], f.challenge)
        f.stop()


if __name__ == "__main__":
    harness.main()
