#!/usr/bin/env python3
"""Regenerate the seed corpora under tests/fuzz/corpus/ from the tests'
fixtures: the sample configurations and profile in contrib/, the YAML of
tests/unit/test_config.c, the webhook bodies of
tests/integration/test_mdm_webhook.py, certificates made with openssl, and
a real GetCACert and CertRep from micromdm scepserver.

    tests/fuzz/gen_corpus.py [--no-scep]

scepserver listens on every interface, so it is run inside `unshare -n`
(a network namespace of its own with only loopback; needs root), as is the
recording proxy between scepclient and it. --no-scep keeps the SCEP seeds
that are there. The seeds are checked in; this script is for when a
fixture changes. Regression seeds (crashes the fuzzers found, named
regress-*) are never touched."""

import base64
import json
import os
import plistlib
import re
import shutil
import subprocess
import sys
import tempfile
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.normpath(os.path.join(HERE, "..", ".."))
OUT = os.path.join(HERE, "corpus")
UDID = "5A2E8F1C-0D3B-4E6A-9C7B-1F2E3D4C5B6A"
CMD = "0f8fad5b-d9cb-469f-a165-70867728950e"
RID = "renewd-3f2a9c1e-5b7d-4e8f-a0b1-c2d3e4f5a6b7"


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def clean(target):
    """Remove the generated seeds of a target, keeping regress-*."""
    d = os.path.join(OUT, target)
    if os.path.isdir(d):
        for n in os.listdir(d):
            if not n.startswith("regress-"):
                os.unlink(os.path.join(d, n))


def run(argv, **kw):
    return subprocess.run(argv, check=True, capture_output=True, **kw)


def read(path):
    with open(os.path.join(SRC, path), "rb") as f:
        return f.read()


# ---- config ------------------------------------------------------------

def c_literals(path):
    """Every run of adjacent C string literals in a file, concatenated and
    unescaped (the YAML texts of a unit test)."""
    text = read(path).decode()
    lit = r'"((?:[^"\\\n]|\\.)*)"'
    out = []
    for m in re.finditer(r'(?:%s\s*)+' % lit, text):
        s = "".join(re.findall(lit, m.group(0)))
        s = s.encode().decode("unicode_escape")
        out.append(s)
    return out


FULL = """\
daemon:
  database: var/renewd.db
  control_socket: var/renewd.sock
  scan_interval: 5m
  max_in_flight: 64
  log_level: debug
  log_format: json
http:
  listen: "[::1]:8180"
  public_url: https://renewd.example.com/
certificate_authorities:
  - name: Test_SCEP
    url: http://127.0.0.1:2016/scep
    challenge_env: PATH
    token_ttl: 7d
    timeout: 30s
  - name: Other_CA
    url: https://ca.example.com/scep?x=1
    challenge_env: HOME
profiles:
  - file: contrib/profiles/wifi-scep.mobileconfig
  - file: other.mobileconfig
    uuid: 0F8FAD5B-D9CB-469F-A165-70867728950E
assignments:
  - profile: "*"
  - profile: com.example.*
policies:
  - name: short
    match: { ca: Test_SCEP, profile: "com.example.*" }
    renew_at_percent: 66.5
    short_lived_fraction: 0.25
    smear: 1h
    max_attempts: 3
    backoff: { initial: 1s, max: 2s }
    verify_timeout: 3h
    rate_limit: 10/s
    deadlines: [30d, 7d, 1d, 12h]
  - name: default
    match: { ca: "*", profile: "*" }
    renew_before: 30d
    rate_limit: 600/m
mdm:
  driver: %s
notifiers:
  - name: ops
    driver: webhook
    url: https://hooks.example.com/x
    format: slack
    token_env: PATH
    hmac_key_env: PATH
    timeout: 5s
    events: [renewal.failed, renewal.verified, ca.unhealthy]
  - name: pager
    driver: exec
    command: [/bin/true, "--flag"]
    events: [certificate.deadline, certificate.expired]
  - name: mail
    driver: smtp
    url: smtp://127.0.0.1:2525
    starttls: true
    username_env: PATH
    password_env: PATH
    from: renewd@example.com
    to: [pki@example.com, ops@example.com]
    events: [ca.unhealthy, mdm.unreachable]
  - name: sys
    driver: syslog
    events: ["*"]
"""

MDMS = {
    "exec": "exec\n  command: [contrib/hooks/file-drop.sh, var/outbox]\n"
            "  timeout: 30s",
    "webhook": "webhook\n  url: http://127.0.0.1:9/push\n"
               "  api_key_env: PATH\n  hmac_key_env: PATH\n  timeout: 5s",
    "nanomdm": "nanomdm\n  url: http://127.0.0.1:9000\n"
               "  api_key_env: PATH\n  timeout: 10s",
    "micromdm": "micromdm\n  url: https://mdm.example.com\n"
                "  api_key_env: PATH",
}


def gen_config():
    clean("config")
    for f in ("contrib/renewd.example.yaml", "contrib/renewd.service.yaml",
              "contrib/demo/renewd.demo.yaml"):
        put("config", os.path.basename(f), read(f))
    for drv, text in MDMS.items():
        put("config", "full-%s.yaml" % drv, FULL % text)
    # The integration harness's configuration (Fleet.config_text).
    put("config", "harness.yaml", """\
daemon:
  database: "/tmp/renewd-it/renewd.db"
  control_socket: "/tmp/renewd-it/renewd.sock"
  scan_interval: 1h
  log_level: debug
http:
  listen: 127.0.0.1:8181
  public_url: "http://127.0.0.1:8181"
  webhook_hmac_key_file: "/tmp/renewd-it/webhook_hmac_key"
  api_token_file: "/tmp/renewd-it/api_token"
certificate_authorities:
  - name: Test_SCEP
    url: http://127.0.0.1:2016/scep
    challenge_file: "/tmp/renewd-it/challenge"
profiles:
  - file: "/tmp/renewd-it/wifi-scep.mobileconfig"
assignments:
  - profile: "*"
policies:
  - name: default
    match: { ca: "*", profile: "*" }
    renew_before: 30d
    smear: 0s
    max_attempts: 3
    backoff: { initial: 1s, max: 2s }
    verify_timeout: 72h
mdm:
  driver: exec
  command: ["/tmp/renewd-it/hook.sh"]
  timeout: 30s
""")
    # YAML features the schema does not expect: anchors, aliases, tags,
    # flow style, a second document, block scalars.
    put("config", "yaml-features.yaml", """\
%YAML 1.1
---
daemon: &d {database: !!str x.db, scan_interval: "5m"}
http: {listen: '127.0.0.1:1', public_url: >-
    http://a.example}
certificate_authorities: [{name: A, url: "http://x/", challenge_env: PATH},
  {name: B, url: http://y/, challenge_env: PATH, <<: *d}]
profiles: [{file: |
    p.mobileconfig
  }]
assignments: ~
policies: []
mdm: {driver: exec, command: [a, *d]}
...
---
second: document
""")
    n = 0
    for s in c_literals("tests/unit/test_config.c"):
        if ":" in s and "\n" in s and len(s) > 20 and \
                re.match(r"^[a-z_ #\n]", s):
            n += 1
            put("config", "unit-%03d.yaml" % n, s)


# ---- profiles ----------------------------------------------------------

CH = "$FLEET_VAR_CUSTOM_SCEP_CHALLENGE_%s"
URL = "${FLEET_VAR_CUSTOM_SCEP_PROXY_URL_%s}"


def scep_payload(ca, cn, ou, challenge=None, url=None, ident="scep"):
    return {
        "PayloadContent": {
            "Challenge": challenge if challenge is not None else CH % ca,
            "Key Type": "RSA", "Key Usage": 5, "Keysize": 2048,
            "Subject": [[["CN", cn]], [["OU", ou]], [["O", "Example"]]],
            "URL": url if url is not None else URL % ca,
        },
        "PayloadDisplayName": "SCEP certificate",
        "PayloadIdentifier": "com.example." + ident,
        "PayloadType": "com.apple.security.scep",
        "PayloadUUID": "7E1C2B9A-5D4F-4A3B-8C2D-1E0F9A8B7C6D",
        "PayloadVersion": 1,
    }


def profile(*payloads, **extra):
    d = {
        "PayloadContent": list(payloads),
        "PayloadDisplayName": "Device certificate & <Wi-Fi>",
        "PayloadIdentifier": "com.example.scep.fuzz",
        "PayloadType": "Configuration",
        "PayloadUUID": "D5CE0366-BF0E-4141-9C60-A4900355618A",
        "PayloadVersion": 1,
    }
    d.update(extra)
    return d


def gen_profile():
    clean("profile")
    sample = read("contrib/profiles/wifi-scep.mobileconfig")
    put("profile", "wifi-scep.mobileconfig", sample)
    put("profile", "wifi-scep.binary.mobileconfig",
        plistlib.dumps(plistlib.loads(sample), fmt=plistlib.FMT_BINARY))
    rid = "$FLEET_VAR_SCEP_RENEWAL_ID"
    shapes = {
        "rid-in-ou": profile(scep_payload("Test_SCEP", "$FLEET_VAR_HOST_UUID",
                                          "Devices " + rid)),
        "rid-in-cn-other-ca": profile(scep_payload(
            "Other_CA", "${RENEWD_VAR_HOST_SERIAL_NUMBER} " + rid,
            "%SerialNumber%")),
        "renewd-prefix": profile(scep_payload(
            "Test_SCEP", "x $RENEWD_VAR_SCEP_RENEWAL_ID", "OU",
            challenge="$RENEWD_VAR_CUSTOM_SCEP_CHALLENGE_Test_SCEP",
            url="$RENEWD_VAR_CUSTOM_SCEP_PROXY_URL_Test_SCEP")),
        "rid-in-both": profile(scep_payload("Test_SCEP", rid, rid)),
        "two-scep": profile(scep_payload("Test_SCEP", rid, "a"),
                            scep_payload("Other_CA", rid, "b", ident="b")),
        "mixed-cas": profile(scep_payload(
            "Test_SCEP", rid, "a",
            url="$FLEET_VAR_CUSTOM_SCEP_PROXY_URL_Other_CA")),
        "unknown-var": profile(scep_payload(
            "Test_SCEP", rid + " $FLEET_VAR_NOPE ${FLEET_VAR_", "a")),
        "unknown-ca": profile(scep_payload("No_Such_CA", rid, "a")),
        "no-uuid": {k: v for k, v in profile(
            scep_payload("Test_SCEP", rid, "a")).items()
            if k != "PayloadUUID"},
        "no-scep": profile({"PayloadType": "com.apple.wifi.managed",
                            "PayloadIdentifier": "w", "PayloadUUID": "u",
                            "SSID_STR": "$FLEET_VAR_HOST_UUID"}),
        "content-not-array": profile(PayloadContent={"a": 1}),
    }
    for name, doc in shapes.items():
        put("profile", name + ".mobileconfig", plistlib.dumps(doc))
    put("profile", "array-root.mobileconfig",
        plistlib.dumps([1, "$FLEET_VAR_HOST_UUID"]))
    put("profile", "unterminated.mobileconfig",
        sample.replace(b"$FLEET_VAR_SCEP_RENEWAL_ID",
                       b"${FLEET_VAR_SCEP_RENEWAL_ID"))


# ---- certificates ------------------------------------------------------

def gen_certs(work):
    """-> (ca.pem path, list of DER device certs)"""
    clean("cert")
    ca_key = os.path.join(work, "ca.key")
    ca = os.path.join(work, "ca.pem")
    run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
         "-keyout", ca_key, "-out", ca, "-days", "3650",
         "-subj", "/O=renewd tests/CN=renewd fuzz seed CA"])
    subjects = {
        "rid-cn": "/O=renewd example/OU=Example Devices/CN=C02DEV1 WIFI "
                  + RID,
        "rid-ou": "/O=renewd example/OU=%s/CN=C02DEV2" % RID.upper()
                  .replace("RENEWD", "renewd"),
        "plain": "/CN=C02DEV3 WIFI",
        "utf8": "/O=Exämple ünïcode/CN=Gerät 4 " + RID,
    }
    ders = []
    n = 0
    for name, subj in subjects.items():
        n += 1
        key = os.path.join(work, name + ".key")
        csr = os.path.join(work, name + ".csr")
        pem = os.path.join(work, name + ".pem")
        kt = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] \
            if name == "plain" else ["-newkey", "rsa:1024"]
        run(["openssl", "req", "-new"] + kt + ["-nodes", "-keyout", key,
             "-out", csr, "-subj", subj, "-utf8"])
        run(["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey",
             ca_key, "-set_serial", str(4096 + n * 77777), "-days", "365",
             "-out", pem])
        der = run(["openssl", "x509", "-in", pem, "-outform", "DER"]).stdout
        ders.append(der)
        put("cert", name + ".pem", open(pem, "rb").read())
        put("cert", name + ".der", der)
    put("cert", "ca.pem", open(ca, "rb").read())
    # PEM with text before it, and a chain (the first block counts).
    put("cert", "with-text.pem", run(["openssl", "x509", "-in", pem,
                                      "-text"]).stdout)
    put("cert", "chain.pem", open(pem, "rb").read() + open(ca, "rb").read())
    return ca, ca_key, ders


# ---- SCEP --------------------------------------------------------------

PROXY = r'''
import http.server, sys, urllib.request, urllib.error, os
up, out = sys.argv[2], sys.argv[3]
n = [0]
class H(http.server.BaseHTTPRequestHandler):
    def go(self, body):
        q = self.path.split("?", 1)[1] if "?" in self.path else ""
        req = urllib.request.Request(up + self.path, data=body,
                                     method=self.command)
        if body is not None:
            req.add_header("Content-Type", "application/x-pki-message")
        try:
            r = urllib.request.urlopen(req, timeout=30)
            st, ct, data = r.status, r.headers.get("Content-Type"), r.read()
        except urllib.error.HTTPError as e:
            st, ct, data = e.code, e.headers.get("Content-Type"), e.read()
        n[0] += 1
        base = os.path.join(out, "%02d" % n[0])
        open(base + ".query", "w").write(q)
        open(base + ".ctype", "w").write(ct or "")
        open(base + ".resp", "wb").write(data)
        if body is not None:
            open(base + ".req", "wb").write(body)
        self.send_response(st)
        if ct:
            self.send_header("Content-Type", ct)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def do_GET(self):
        self.go(None)
    def do_POST(self):
        self.go(self.rfile.read(int(self.headers["Content-Length"])))
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
'''

SCEP_SH = r'''
set -e
ip link set lo up
cd "$W"
scepserver ca -init -depot depot >/dev/null 2>&1
scepserver -depot depot -port 2016 -challenge fuzz-secret \
    >scepserver.log 2>&1 &
S=$!
python3 proxy.py 2017 http://127.0.0.1:2016 rec >proxy.log 2>&1 &
P=$!
trap 'kill $S $P 2>/dev/null' EXIT
for i in $(seq 100); do
    curl -sf 'http://127.0.0.1:2017/scep?operation=GetCACaps' \
        >/dev/null 2>&1 && break
    sleep 0.1
done
openssl genrsa -traditional -out dev.key 2048 2>/dev/null
# A good enrollment (CertRep SUCCESS), then a wrong challenge (FAILURE).
mkdir ok bad
(cd ok && scepclient -server-url http://127.0.0.1:2017/scep \
    -challenge fuzz-secret -cn "C02DEV1 WIFI $RID" \
    -private-key ../dev.key -certificate dev.pem >log 2>&1) || true
(cd bad && scepclient -server-url http://127.0.0.1:2017/scep \
    -challenge wrong -cn "C02DEV2 WIFI" \
    -private-key ../dev.key -certificate dev.pem >log 2>&1) || true
'''


def gen_scep(work, ca, ca_key):
    for t in ("certrep", "cacert"):
        clean(t)
    w = os.path.join(work, "scep")
    os.makedirs(os.path.join(w, "rec"))
    with open(os.path.join(w, "proxy.py"), "w") as f:
        f.write(PROXY)
    env = dict(os.environ, W=w, RID=RID)
    # Loopback only: scepserver binds every interface of its namespace.
    subprocess.run(["unshare", "-n", "sh", "-c", SCEP_SH], env=env,
                   check=True, timeout=300)
    rec = os.path.join(w, "rec")
    got = {"certrep": 0, "cacert": 0}
    pki_msgs = []
    for n in sorted(os.listdir(rec)):
        if not n.endswith(".query"):
            continue
        base = os.path.join(rec, n[:-6])
        q = open(base + ".query").read()
        resp = open(base + ".resp", "rb").read()
        if "operation=GetCACert" in q:
            got["cacert"] += 1
            put("cacert", "scepserver-getcacert-%d.der" % got["cacert"],
                resp)
        elif "operation=PKIOperation" in q:
            got["certrep"] += 1
            put("certrep", "scepserver-certrep-%d.der" % got["certrep"],
                resp)
            if os.path.exists(base + ".req"):
                pki_msgs.append(open(base + ".req", "rb").read())
    if not got["certrep"] or not got["cacert"]:
        sys.exit("gen_corpus: no CertRep/GetCACert recorded; see %s" % w)
    # An RA bundle: degenerate PKCS#7 with the CA and an RA certificate.
    ra_key = os.path.join(work, "ra.key")
    ra_csr = os.path.join(work, "ra.csr")
    ra = os.path.join(work, "ra.pem")
    ext = os.path.join(work, "ca.ext")
    with open(ext, "w") as f:
        f.write("basicConstraints=critical,CA:TRUE\n")
    run(["openssl", "req", "-new", "-newkey", "rsa:1024", "-nodes",
         "-keyout", ra_key, "-out", ra_csr, "-subj", "/CN=renewd fuzz RA"])
    run(["openssl", "x509", "-req", "-in", ra_csr, "-CA", ca, "-CAkey",
         ca_key, "-set_serial", "7", "-days", "30", "-out", ra])
    ca_v3 = os.path.join(work, "ca-v3.pem")
    run(["openssl", "x509", "-in", ca, "-out", ca_v3])
    put("cacert", "ra-bundle.p7b", run(
        ["openssl", "crl2pkcs7", "-nocrl", "-certfile", ra, "-certfile",
         ca_v3, "-outform", "DER"]).stdout)
    put("cacert", "ca.der", run(["openssl", "x509", "-in", ca,
                                  "-outform", "DER"]).stdout)
    # A subject longer than scep_ca_info keeps (511 bytes).
    long_key = os.path.join(work, "long.key")
    subj = "/O=" + "o" * 60 + "".join("/OU=%s" % (chr(97 + i) * 60)
                                      for i in range(10)) + "/CN=long"
    put("cacert", "long-subject.der", run(
        ["openssl", "req", "-x509", "-newkey", "rsa:1024", "-nodes",
         "-keyout", long_key, "-subj", subj, "-days", "30",
         "-outform", "DER"]).stdout)
    # The device's PKIMessage is a SignedData too (no pkiStatus: refused).
    for i, m in enumerate(pki_msgs[:1]):
        put("certrep", "pkcsreq-%d.der" % (i + 1), m)
    return pki_msgs


# ---- CertRep variants (DER surgery on a real one) -------------------------

def der_len(n):
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(b)]) + b


def tlv(tag, content):
    return bytes([tag]) + der_len(len(content)) + content


def der_parse(b):
    """DER -> [tag, bytes | [children]] for each TLV in b."""
    out, i = [], 0
    while i < len(b):
        tag = b[i]
        n = b[i + 1]
        i += 2
        if n & 0x80:
            k = n & 0x7F
            n = int.from_bytes(b[i:i + k], "big")
            i += k
        body = b[i:i + n]
        i += n
        out.append([tag, der_parse(body) if tag & 0x20 else body])
    return out


def der_dump(nodes):
    return b"".join(tlv(t, der_dump(c) if isinstance(c, list) else c)
                    for t, c in nodes)


def oid_der(s):
    p = [int(x) for x in s.split(".")]
    out = bytes([40 * p[0] + p[1]])
    for v in p[2:]:
        enc = [v & 0x7F]
        v >>= 7
        while v:
            enc.insert(0, (v & 0x7F) | 0x80)
            v >>= 7
        out += bytes(enc)
    return out


SCEP_OID = {"messageType": "2.16.840.1.113733.1.9.2",
            "pkiStatus": "2.16.840.1.113733.1.9.3",
            "failInfo": "2.16.840.1.113733.1.9.4",
            "transactionID": "2.16.840.1.113733.1.9.7",
            "failInfoText": "1.3.6.1.5.5.7.24.1"}
PRINTABLE, UTF8, IA5, OCTETS, INTEGER = 0x13, 0x0C, 0x16, 0x04, 0x02


def certrep_variant(der, attrs):
    """The CertRep with its SCEP signed attributes replaced by attrs:
    {name: (tag, value) | None (removed) | "empty" (no values)}."""
    ci = der_parse(der)
    sd = ci[0][1][1][1][0][1]           # ContentInfo [0] -> SignedData
    si = sd[-1][1][0][1]                # signerInfos SET -> first SignerInfo
    signed = [n for n in si if n[0] == 0xA0][0]
    keep = [a for a in signed[1]
            if a[1][0][1] not in [oid_der(o) for o in SCEP_OID.values()]]
    for name, v in attrs.items():
        if v is None:
            continue
        vals = [] if v == "empty" else [[v[0], v[1]]]
        keep.append([0x30, [[0x06, oid_der(SCEP_OID[name])],
                            [0x31, vals]]])
    signed[1] = keep
    return der_dump(ci)


def gen_certrep_variants():
    d = os.path.join(OUT, "certrep")
    real = [n for n in sorted(os.listdir(d)) if n.startswith("scepserver")]
    if not real:
        return
    der = open(os.path.join(d, real[0]), "rb").read()
    txt = "CA says:\n\tno \u2014 " + "\u00e9" * 200
    variants = {
        "pending": {"messageType": (PRINTABLE, b"3"),
                    "pkiStatus": (PRINTABLE, b"3")},
        "failure-text": {"messageType": (PRINTABLE, b"3"),
                         "pkiStatus": (PRINTABLE, b"2"),
                         "failInfo": (PRINTABLE, b"4"),
                         "failInfoText": (UTF8, txt.encode()),
                         "transactionID": (PRINTABLE, b"T" * 300)},
        "odd-types": {"messageType": (IA5, b"3"),
                      "pkiStatus": (OCTETS, b"0"),
                      "failInfo": (INTEGER, b"\x02"),
                      "transactionID": (UTF8, b"\x00\x01\x7f")},
        "out-of-range": {"messageType": (PRINTABLE, b"123456"),
                         "pkiStatus": (PRINTABLE, b"7"),
                         "failInfo": (PRINTABLE, b"9")},
        "empty-values": {"messageType": "empty", "pkiStatus":
                         (PRINTABLE, b"0"), "failInfo": "empty"},
        "no-status": {"messageType": (PRINTABLE, b"3")},
    }
    for name, attrs in variants.items():
        put("certrep", "variant-%s.der" % name,
            certrep_variant(der, attrs))


# ---- proxy requests ----------------------------------------------------

def gen_proxy(pki_msgs):
    clean("proxy_id")
    tok = "abcdefghijklmnop_-Q9"
    ids = {
        "readme": "11111111-2222-3333-4444-555555555555%2C"
                  "D5CE0366-BF0E-4141-9C60-A4900355618A%2CTest_SCEP%2C"
                  "Zm9vYmFyYmF6cXV4LXRva2VuXzEyMzQ1Njc4OTA",
        "lower": "mac-1.example%2cwifi.prof_1%2cTest_SCEP%2c" + tok,
        "raw-commas": "h%2Cp,%43A%2c" + tok,
        "double-encoded": "h%252Cp%252Cc%252C" + tok,
        "five-fields": "h%2Cp%2Cc%2C" + tok + "%2Cx",
        "bad-escape": "h%2Cp%2Cc%2C%zz" + tok,
        "nul": "h%2Cp%2Cc%2C%00" + tok,
    }
    ops = ["operation=GetCACaps", "operation=GetCACert&message=Test_SCEP",
           "operation=GetNextCACert", "operation=PKIOperation",
           "operation=PKIOperation&operation=GetCACaps", "operation",
           "opera%74ion=Get%43ACaps&+=+&a&&=b"]
    for name, seg in ids.items():
        put("proxy_id", name, seg)
        for i, q in enumerate(ops):
            if name in ("readme", "lower") or i == 0:
                put("proxy_id", "%s-q%d" % (name, i), seg + "?" + q)
    for i, m in enumerate(pki_msgs[:2]):
        b64 = base64.b64encode(m).decode()
        pct = "".join(c if c.isalnum() else "%%%02X" % ord(c) for c in b64)
        put("proxy_id", "pkioperation-get-%d" % i, ids["readme"] +
            "?operation=PKIOperation&message=" + pct)
        # base64's '+' left unescaped by the client: decoded to ' '.
        put("proxy_id", "pkioperation-plus-%d" % i, ids["lower"] +
            "?message=" + b64.replace("/", "%2F").replace("=", "%3D") +
            "&operation=PKIOperation")


# ---- MDM webhook -------------------------------------------------------

def checkin_plist(topic, serial=None, binary=False):
    p = {"MessageType": topic.split(".", 1)[1], "UDID": UDID,
         "Topic": "com.apple.mgmt.External.x"}
    if serial:
        p["SerialNumber"] = serial
    if topic == "mdm.TokenUpdate":
        p.update({"PushMagic": "magic", "Token": b"\x01\x02\x03"})
    return plistlib.dumps(p, fmt=plistlib.FMT_BINARY if binary
                          else plistlib.FMT_XML)


def ack_plist(status, error_chain=None, certs=None, binary=False):
    p = {"UDID": UDID, "Status": status, "CommandUUID": CMD}
    if error_chain is not None:
        p["ErrorChain"] = error_chain
    if certs is not None:
        p["RequestType"] = "CertificateList"
        p["CertificateList"] = [
            {"Data": der, "CommonName": "x", "IsIdentity": True}
            for der in certs]
    return plistlib.dumps(p, fmt=plistlib.FMT_BINARY if binary
                          else plistlib.FMT_XML)


def gen_webhook(ders):
    clean("mdm_webhook")
    clean("mdm_plist")
    chain = [{"ErrorCode": 12021, "ErrorDomain": "MCProfileErrorDomain",
              "LocalizedDescription": "Profile \u201cWi-Fi\u201d failed.",
              "USEnglishDescription": "Profile failed."},
             {"ErrorCode": -1, "ErrorDomain": "NSURLErrorDomain",
              "USEnglishDescription": "SCEP\nserver\tunreachable"}]
    plists = {
        "authenticate": checkin_plist("mdm.Authenticate", "C02DEV1"),
        "tokenupdate": checkin_plist("mdm.TokenUpdate", "C02DEV1"),
        "checkout": checkin_plist("mdm.CheckOut"),
        "authenticate.bin": checkin_plist("mdm.Authenticate", "C02DEV1",
                                          binary=True),
        "ack-acknowledged": ack_plist("Acknowledged"),
        "ack-error": ack_plist("Error", error_chain=chain),
        "ack-notnow": ack_plist("NotNow"),
        "ack-idle": plistlib.dumps({"UDID": UDID, "Status": "Idle"}),
        "ack-certlist": ack_plist("Acknowledged", certs=ders[:2]),
        "ack-certlist.bin": ack_plist("Acknowledged", certs=ders[2:],
                                      binary=True),
        "ack-error.bin": ack_plist("Error", error_chain=chain, binary=True),
        # Longer than error_text keeps (1023 bytes), in UTF-8.
        "ack-error-long": ack_plist("Error", error_chain=[
            {"ErrorCode": i, "ErrorDomain": "D%d" % i,
             "LocalizedDescription": "\u00e9chec " * 20}
            for i in range(12)]),
        # More entries than MDM_WH_MAX_CERTS, and an empty Data.
        "ack-certlist-many.bin": ack_plist("Acknowledged",
                                           certs=[b"0"] * 1001,
                                           binary=True),
        "ack-certlist-empty-data": ack_plist("Acknowledged", certs=[b""]),
    }
    for name, p in plists.items():
        put("mdm_plist", name + ".plist", p)
    eid = 0

    def body(topic, obj, plist, **extra):
        nonlocal eid
        eid += 1
        o = {"udid": UDID, "raw_payload": base64.b64encode(plist).decode()}
        o.update(extra)
        b = {"topic": topic, "event_id": "evt-%d-%s" % (eid, uuid.UUID(
            int=eid)), "created_at": "2026-01-01T00:00:00Z", obj: o}
        return json.dumps(b, indent=None)

    for topic in ("mdm.Authenticate", "mdm.TokenUpdate", "mdm.CheckOut"):
        k = "authenticate" if topic == "mdm.Authenticate" else \
            topic.split(".")[1].lower()
        put("mdm_webhook", k + ".json",
            body(topic, "checkin_event", plists[k],
                 enrollment_id=UDID, url_params={"a": "b"}))
    for k in ("ack-acknowledged", "ack-error", "ack-notnow", "ack-idle",
              "ack-certlist", "ack-certlist.bin", "ack-error.bin",
              "ack-error-long", "ack-certlist-many.bin",
              "ack-certlist-empty-data"):
        status = plistlib.loads(plists[k])["Status"]
        put("mdm_webhook", k + ".json",
            body("mdm.Connect", "acknowledge_event", plists[k],
                 status=status, command_uuid=CMD))
    # NanoMDM's shape: empty event_id, fractional created_at with offset.
    put("mdm_webhook", "nanomdm-empty-event-id.json", json.dumps({
        "topic": "mdm.Authenticate", "event_id": "",
        "created_at": "2026-11-23T15:28:06.123456789+01:00",
        "checkin_event": {"udid": UDID, "url_params": None,
                          "raw_payload": base64.b64encode(
                              plists["authenticate.bin"]).decode()}}))
    put("mdm_webhook", "both-events.json", json.dumps({
        "topic": "mdm.Connect", "event_id": "x",
        "checkin_event": {}, "acknowledge_event": {}}))
    put("mdm_webhook", "bad-base64.json",
        body("mdm.CheckOut", "checkin_event", b"")[:-3] + "!!\"}}")


# ---- control socket ----------------------------------------------------

def gen_control():
    clean("control")
    reqs = {
        "trigger": '{"v":1,"cmd":"trigger"}\n',
        "status": '{"v":1,"cmd":"status"}\n',
        "wake": '{"cmd": "wake", "v": 1}\n',
        "version-2": '{"v":2,"cmd":"status"}\n',
        "unknown": '{"v":1,"cmd":"reload"}\n',
        "no-cmd": '{"v":1}\n',
        "v-string": '{"v":"1","cmd":"status"}\n',
        "two-lines": '{"v":1,"cmd":"wake"}\n{"v":1,"cmd":"trigger"}\n',
        "nul": '{"v":1,"cmd":"status"}\x00junk\n',
        "not-json": "status\n",
    }
    for name, r in reqs.items():
        put("control", name, r)


def main():
    scep = "--no-scep" not in sys.argv[1:]
    work = tempfile.mkdtemp(prefix="renewd-corpus-")
    try:
        gen_config()
        gen_profile()
        ca, ca_key, ders = gen_certs(work)
        if scep:
            pki = gen_scep(work, ca, ca_key)
        else:
            d = os.path.join(OUT, "certrep")
            pki = [open(os.path.join(d, n), "rb").read()
                   for n in sorted(os.listdir(d)) if n.startswith("pkcsreq")]
        gen_certrep_variants()
        gen_proxy(pki)
        gen_webhook(ders)
        gen_control()
    except BaseException:
        print("gen_corpus: failed; its work dir is kept: " + work,
              file=sys.stderr)
        raise
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
