"""`renewctl profile validate` on Fleet-style SCEP profiles: the shapes
Fleet documents pass (renewal ID in the OU or in the CN, $NAME and ${NAME}
forms, Apple's own %SerialNumber%), and broken ones fail with a message
naming the file, the payload and the field."""

import os
import plistlib
import sys
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def scep_payload(ident, challenge, url, cn, ou):
    return {
        "PayloadContent": {
            "Challenge": challenge,
            "Key Type": "RSA",
            "Key Usage": 5,
            "Keysize": 2048,
            "Subject": [[["CN", cn]], [["OU", ou]]],
            "URL": url,
        },
        "PayloadDisplayName": "SCEP certificate",
        "PayloadIdentifier": ident,
        "PayloadType": "com.apple.security.scep",
        "PayloadUUID": str(uuid.uuid4()).upper(),
        "PayloadVersion": 1,
    }


def profile(*payloads):
    return {
        "PayloadContent": list(payloads),
        "PayloadDisplayName": "Device certificate",
        "PayloadIdentifier": "com.example.scep." + uuid.uuid4().hex[:8],
        "PayloadType": "Configuration",
        "PayloadUUID": str(uuid.uuid4()).upper(),
        "PayloadVersion": 1,
    }


CH = "$FLEET_VAR_CUSTOM_SCEP_CHALLENGE_Test_SCEP"
URL = "${FLEET_VAR_CUSTOM_SCEP_PROXY_URL_Test_SCEP}"
RID = "$FLEET_VAR_SCEP_RENEWAL_ID"


class ProfileValidate(harness.RenewdTestCase):

    def validate(self, f, name, doc):
        path = os.path.join(f.dir, name + ".mobileconfig")
        with open(path, "wb") as fh:
            plistlib.dump(doc, fh)
        rc, out, err = f.ctl_raw("profile", "validate", path)
        return rc, out, err, path

    def test_fleet_shapes_pass(self):
        f = self.fleet()
        good = {
            "renewal-id-in-ou": profile(scep_payload(
                "com.fleetdm.custom.scep", CH, URL, "%SerialNumber% WIFI",
                "FLEET DEVICE MANAGEMENT " + RID)),
            "renewal-id-in-cn": profile(scep_payload(
                "com.example.scep.cn", "${FLEET_VAR_CUSTOM_SCEP_CHALLENGE_"
                "Test_SCEP}", "$FLEET_VAR_CUSTOM_SCEP_PROXY_URL_Test_SCEP",
                "$FLEET_VAR_HOST_SERIAL_NUMBER WIFI " + RID, "Devices")),
            "renewd-prefix": profile(scep_payload(
                "com.example.scep.rn", "$RENEWD_VAR_CUSTOM_SCEP_CHALLENGE_"
                "Test_SCEP", "$RENEWD_VAR_CUSTOM_SCEP_PROXY_URL_Test_SCEP",
                "${RENEWD_VAR_SCEP_RENEWAL_ID}", "Devices")),
        }
        for name, doc in good.items():
            rc, out, err, _ = self.validate(f, name, doc)
            self.assertEqual(rc, 0, (name, out, err))

    def test_broken_profiles_fail_with_their_messages(self):
        f = self.fleet()
        ok = scep_payload("com.example.scep.one", CH, URL, "dev " + RID,
                          "Devices")
        cases = {
            "two-scep": (profile(ok, scep_payload(
                "com.example.scep.two", CH, URL, "x " + RID, "Devices")),
                "field 'PayloadType': more than one payload of type "
                "'com.apple.security.scep'"),
            "mismatched-ca": (profile(scep_payload(
                "com.example.scep.mis", CH,
                "$FLEET_VAR_CUSTOM_SCEP_PROXY_URL_Other_CA", "x " + RID,
                "Devices")),
                "field 'URL': certificate authority 'Other_CA' is not "
                "configured"),
            "no-renewal-id": (profile(scep_payload(
                "com.example.scep.none", CH, URL, "x", "Devices")),
                "field 'Subject': '$FLEET_VAR_SCEP_RENEWAL_ID' must be in a "
                "CN or OU value"),
            "id-in-cn-and-ou": (profile(scep_payload(
                "com.example.scep.both", CH, URL, "x " + RID, RID)),
                "field 'Subject': '$FLEET_VAR_SCEP_RENEWAL_ID' is in both "
                "CN and OU"),
        }
        for name, (doc, needle) in cases.items():
            rc, out, err, path = self.validate(f, name, doc)
            self.assertEqual(rc, 1, (name, out, err))
            doc_json = __import__("json").loads(out)
            self.assertFalse(doc_json["ok"], doc_json)
            text = "\n".join(doc_json["errors"])
            self.assertIn(path, text, name)
            self.assertIn(needle, text, (name, text))
            self.assertIn("payload 'com.example.scep.", text, name)


if __name__ == "__main__":
    harness.main()
