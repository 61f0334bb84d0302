"""GET /metrics and /healthz. Given a fleet of four certificates, two due,
when a scan pushes their jobs, the API verifies one of them and a device
knocks on the SCEP proxy with bad identifiers, then /metrics, read by a
strict parser of the Prometheus text format 0.0.4, says exactly what the
database says (read here with sqlite3, read-only, and by `renewctl --json
status`), counts the daemon's own events, and has no series per
certificate; /healthz answers 200 "ok"."""

import json
import math
import os
import re
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import CA_NAME  # noqa: E402

TOKEN = "metrics-test-api-token"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
DAY = 86400
WINDOWS = (("1d", DAY), ("7d", 7 * DAY), ("14d", 14 * DAY),
           ("30d", 30 * DAY), ("90d", 90 * DAY), ("365d", 365 * DAY))
CERT_STATES = ("active", "renewing", "superseded", "expired")
JOB_STATES = ("queued", "running", "pushed", "acknowledged", "verified",
              "failed", "cancelled")
# Every label a renewd series may carry: none names a certificate.
ALLOWED_LABELS = {"state", "within", "result", "operation", "status",
                  "notifier", "ca", "version", "le"}

NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


# ---- a strict parser of the text format -------------------------------

class ParseError(AssertionError):
    pass


def _value(s, where):
    if s in ("+Inf", "Inf"):
        return math.inf
    if s == "-Inf":
        return -math.inf
    if s == "NaN":
        return math.nan
    if not re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", s):
        raise ParseError("%s: bad value %r" % (where, s))
    return float(s)


def _labels(line, i, where):
    """Parse {k="v",...} starting at line[i] == '{'; -> (dict, next i)."""
    labels = {}
    i += 1
    while True:
        if line[i] == "}":
            return labels, i + 1
        m = LABEL_RE.match(line, i)
        if not m:
            raise ParseError("%s: bad label name at %d" % (where, i))
        key = m.group(0)
        i = m.end()
        if line[i:i + 2] != '="':
            raise ParseError("%s: want =\" after %s" % (where, key))
        i += 2
        val = []
        while True:
            if i >= len(line):
                raise ParseError("%s: unterminated label value" % where)
            c = line[i]
            if c == "\\":
                nxt = line[i + 1:i + 2]
                if nxt not in ("\\", '"', "n"):
                    raise ParseError("%s: bad escape \\%s" % (where, nxt))
                val.append("\n" if nxt == "n" else nxt)
                i += 2
            elif c == '"':
                i += 1
                break
            elif c == "\n":
                raise ParseError("%s: raw newline in label" % where)
            else:
                val.append(c)
                i += 1
        if key in labels:
            raise ParseError("%s: label %s twice" % (where, key))
        labels[key] = "".join(val)
        if line[i] == ",":
            i += 1
        elif line[i] != "}":
            raise ParseError("%s: want , or } at %d" % (where, i))


def parse_exposition(text):
    """-> {family: {"type", "help", "samples": [(name, labels, value)]}}.
    Every line is a comment or `name{labels} value`; every sample belongs
    to a family whose TYPE came first; a family's lines are contiguous and
    its TYPE and HELP appear once; no sample is repeated."""
    if not text.endswith("\n"):
        raise ParseError("the text does not end with a newline")
    families = {}
    current = None
    seen = set()
    for n, line in enumerate(text[:-1].split("\n"), 1):
        where = "line %d %r" % (n, line)
        if line == "":
            raise ParseError("%s: empty line" % where)
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                name = parts[2]
                if not NAME_RE.fullmatch(name):
                    raise ParseError("%s: bad family name" % where)
                fam = families.get(name)
                if fam is not None and current != name:
                    raise ParseError("%s: family %s is not contiguous"
                                     % (where, name))
                fam = families.setdefault(
                    name, {"type": None, "help": None, "samples": []})
                current = name
                key = parts[1].lower()
                if fam[key] is not None:
                    raise ParseError("%s: second %s" % (where, parts[1]))
                if parts[1] == "TYPE":
                    if fam["samples"]:
                        raise ParseError("%s: TYPE after samples" % where)
                    if len(parts) != 4 or parts[3] not in TYPES:
                        raise ParseError("%s: bad TYPE" % where)
                    fam["type"] = parts[3]
                else:
                    fam["help"] = parts[3] if len(parts) == 4 else ""
            continue
        m = NAME_RE.match(line)
        if not m:
            raise ParseError("%s: no metric name" % where)
        name, i, labels = m.group(0), m.end(), {}
        if i < len(line) and line[i] == "{":
            labels, i = _labels(line, i, where)
        if i >= len(line) or line[i] != " ":
            raise ParseError("%s: want one space before the value" % where)
        fields = line[i + 1:].split(" ")
        if len(fields) not in (1, 2) or "" in fields:
            raise ParseError("%s: want `value [timestamp]`" % where)
        value = _value(fields[0], where)
        if current is None:
            raise ParseError("%s: sample before any TYPE" % where)
        fam = families[current]
        if fam["type"] is None:
            raise ParseError("%s: family %s has no TYPE" % (where, current))
        if fam["type"] == "histogram":
            ok = name in (current + "_bucket", current + "_sum",
                          current + "_count")
        else:
            ok = name == current
        if not ok:
            raise ParseError("%s: sample %s outside its family (in %s)"
                             % (where, name, current))
        key = (name, tuple(sorted(labels.items())))
        if key in seen:
            raise ParseError("%s: duplicate sample" % where)
        seen.add(key)
        fam["samples"].append((name, labels, value))
    for name, fam in families.items():
        if fam["type"] is None:
            raise ParseError("family %s has no TYPE" % name)
    return families


def sample(fams, family, name=None, **labels):
    """The value of one sample; AssertionError when absent."""
    fam = fams.get(family)
    if fam is None:
        raise AssertionError("no family %s" % family)
    for n, lb, v in fam["samples"]:
        if n == (name or family) and lb == labels:
            return v
    raise AssertionError("no sample %s%r in %r" % (name or family, labels,
                                                    fam["samples"]))


# ---- the daemon's HTTP side ------------------------------------------

def http_get(f, path):
    """(status, body text, Content-Type)."""
    try:
        with urllib.request.urlopen(f.public_url + path, timeout=30) as r:
            return (r.status, r.read().decode("utf-8"),
                    r.headers.get("Content-Type"))
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8"), e.headers.get(
            "Content-Type")


def scrape(f):
    status, text, ctype = http_get(f, "/metrics")
    if status != 200:
        raise AssertionError("/metrics answered %d: %s" % (status, text))
    if ctype != CONTENT_TYPE:
        raise AssertionError("Content-Type %r" % ctype)
    return text, parse_exposition(text)


def api_import(f, host, pem):
    body = json.dumps({"host_uuid": host, "profile_uuid": f.profile_uuid,
                       "ca_name": CA_NAME, "pem": pem}).encode()
    req = urllib.request.Request(f.public_url + "/api/v1/certificates",
                                 data=body, method="POST")
    req.add_header("Content-Type", "application/json")
    req.add_header("Authorization", "Bearer " + TOKEN)
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read().decode())


# ---- the database's side ----------------------------------------------

def db_truth(f, now):
    """What the store says, read the way renewctl status derives it:
    an active certificate that is not in the due queue is renewing."""
    con = sqlite3.connect("file:%s?mode=ro" % f.db, uri=True, timeout=10)
    try:
        certs = dict.fromkeys(CERT_STATES, 0)
        for state, n in con.execute(
                "SELECT state, COUNT(*) FROM managed_certificates "
                "GROUP BY state"):
            certs[state] = n
        (scheduled,) = con.execute(
            "SELECT COUNT(*) FROM renewal_schedule").fetchone()
        certs["renewing"] = certs["active"] - scheduled
        certs["active"] = scheduled
        jobs = dict.fromkeys(JOB_STATES, 0)
        for state, n in con.execute(
                "SELECT state, COUNT(*) FROM renewal_jobs GROUP BY state"):
            jobs[state] = n
        nvas = [r[0] for r in con.execute(
            "SELECT not_valid_after FROM managed_certificates "
            "WHERE state = 'active'")]
        (pending,) = con.execute(
            "SELECT COUNT(*) FROM notifications WHERE state = 'pending'"
        ).fetchone()
    finally:
        con.close()
    expiring = {name: sum(1 for x in nvas if x < now + secs)
                for name, secs in WINDOWS}
    expiring["+Inf"] = len(nvas)
    return {"certs": certs, "jobs": jobs, "expiring": expiring,
            "expired": sum(1 for x in nvas if x < now),
            "earliest": min(nvas) if nvas else None, "pending": pending}


class Metrics(harness.RenewdTestCase):

    def test_metrics_match_the_store_and_count_the_daemons_work(self):
        # Given a fleet: two certificates due (5 and 10 days left under
        # renew_before 30d), two not (200 and 400 days).
        f = self.fleet(api_token=TOKEN)
        f.start()
        status, body, _ = http_get(f, "/healthz")
        self.assertEqual((status, body), (200, "ok\n"))

        # Before anything happened: every state present at 0, no expiry.
        text, fams = scrape(f)
        for st in CERT_STATES:
            self.assertEqual(sample(fams, "renewd_certificates", state=st),
                             0)
        for st in JOB_STATES:
            self.assertEqual(sample(fams, "renewd_jobs", state=st), 0)
        self.assertNotIn(
            "renewd_certificate_earliest_expiry_timestamp_seconds", fams)
        self.assertEqual(sample(fams, "renewd_push_duration_seconds",
                                "renewd_push_duration_seconds_count"), 0)

        hosts = {}
        for days, serial in ((10, "devA"), (5, "devB"), (200, "devC"),
                             (400, "devD")):
            hosts[serial], _ = f.add_host(days, serial=serial)

        # When a scan pushes the two due jobs...
        t = f.trigger()
        self.assertEqual((t.get("due"), t.get("enqueued")), (2, 2), t)
        jobs = f.wait_jobs(
            lambda js: len(js) == 2 and all(j["state"] == "pushed"
                                            for j in js),
            "both jobs pushed")
        # ...the device of devA comes back with its new certificate...
        job_a = [j for j in jobs if j["host_uuid"] == hosts["devA"]][0]
        with open(f.certs.make("devA WIFI " + job_a["renewal_id"], 300)) \
                as fh:
            doc = api_import(f, hosts["devA"], fh.read())
        self.assertEqual(doc.get("verified_job"), job_a["id"], doc)
        # ...and a device tries the SCEP proxy with bad identifiers.
        for q, want in (("GetCACaps", 400), ("GetCACert", 400),
                        ("GetCACaps", 400), ("GetNextCACert", 400)):
            status, _, _ = http_get(
                f, "/mdm/scep/proxy/not-an-identifier?operation=" + q)
            self.assertEqual(status, want)

        # Then, once the cache of the first scrape has expired, /metrics
        # shows the verified job...
        def fresh():
            _, fm = scrape(f)
            return fm if sample(fm, "renewd_jobs",
                                state="verified") == 1 else None
        harness.poll(fresh, 15, "renewd_jobs{state=\"verified\"} 1",
                     f.log_tail)
        # ...and the CA check (nothing listens there) has reported.
        harness.poll(lambda: "renewd_ca_up" in scrape(f)[1], 15,
                     "renewd_ca_up", f.log_tail)
        text, fams = scrape(f)
        now = int(time.time())
        truth = db_truth(f, now)

        # The store aggregates are exactly what the database says.
        for st in CERT_STATES:
            self.assertEqual(sample(fams, "renewd_certificates", state=st),
                             truth["certs"][st], st)
        self.assertEqual(truth["certs"]["renewing"], 1)  # devB's job
        self.assertEqual(truth["certs"]["superseded"], 1)  # devA's old
        for st in JOB_STATES:
            self.assertEqual(sample(fams, "renewd_jobs", state=st),
                             truth["jobs"][st], st)
        for name, want in truth["expiring"].items():
            self.assertEqual(sample(fams, "renewd_certificates_expiring",
                                    within=name), want, name)
        self.assertEqual(truth["expiring"]["7d"], 1)
        self.assertEqual(truth["expiring"]["365d"], 3)  # not devD (400d)
        self.assertEqual(sample(fams, "renewd_certificates_expired"),
                         truth["expired"])
        self.assertEqual(
            sample(fams,
                   "renewd_certificate_earliest_expiry_timestamp_seconds"),
            truth["earliest"])
        self.assertEqual(sample(fams, "renewd_notifications_pending"),
                         truth["pending"])
        # renewctl status agrees (it derives renewing the same way).
        status_doc = f.ctl("status")
        for st in CERT_STATES:
            self.assertEqual(status_doc["certificates"][st],
                             truth["certs"][st], st)
        for st in JOB_STATES:
            self.assertEqual(status_doc["jobs"][st], truth["jobs"][st], st)

        # The daemon counted its own work.
        outcome = lambda r: sample(fams, "renewd_job_outcomes_total",  # noqa
                                   result=r)
        self.assertEqual(outcome("pushed"), 2)
        self.assertEqual(outcome("verified"), 1)
        for r in ("retry", "failed", "cancelled"):
            self.assertEqual(outcome(r), 0, r)
        self.assertGreaterEqual(sample(fams, "renewd_scans_total"), 2)
        last = sample(fams, "renewd_last_scan_timestamp_seconds")
        self.assertLessEqual(abs(last - now), 120)
        self.assertGreaterEqual(sample(fams,
                                       "renewd_scan_duration_seconds"), 0)
        proxy = lambda op, st: sample(  # noqa: E731
            fams, "renewd_scep_proxy_requests_total", operation=op,
            status=st)
        self.assertEqual(proxy("GetCACaps", "400"), 2)
        self.assertEqual(proxy("GetCACert", "400"), 1)
        self.assertEqual(proxy("other", "400"), 1)
        self.assertEqual(sample(fams, "renewd_ca_up", ca=CA_NAME), 0)
        version = subprocess.run([harness.renewd_bin(), "--version"],
                                 stdout=subprocess.PIPE, text=True
                                 ).stdout.split()[-1]
        self.assertEqual(sample(fams, "renewd_build_info", version=version),
                         1)
        started = sample(fams, "renewd_start_time_seconds")
        self.assertTrue(now - 300 <= started <= now, started)

        # Two pushes in the histogram: cumulative buckets, +Inf = count.
        hist = fams["renewd_push_duration_seconds"]
        self.assertEqual(hist["type"], "histogram")
        buckets = [(lb["le"], v) for n, lb, v in hist["samples"]
                   if n.endswith("_bucket")]
        self.assertEqual(buckets[-1][0], "+Inf")
        les = [float(le) for le, _ in buckets]
        self.assertEqual(les, sorted(les))
        counts = [v for _, v in buckets]
        self.assertEqual(counts, sorted(counts))
        self.assertEqual(counts[-1], 2)
        self.assertEqual(sample(fams, "renewd_push_duration_seconds",
                                "renewd_push_duration_seconds_count"), 2)
        self.assertGreater(sample(fams, "renewd_push_duration_seconds",
                                  "renewd_push_duration_seconds_sum"), 0)

        # Aggregates only: no label names a certificate, host or serial,
        # and no family grows with the fleet.
        for name, fam in fams.items():
            self.assertTrue(name.startswith("renewd_"), name)
            self.assertLessEqual(len(fam["samples"]), 20, name)
            self.assertTrue(fam["help"], name)
            for _, lb, _ in fam["samples"]:
                self.assertLessEqual(set(lb), ALLOWED_LABELS, (name, lb))
        for h in hosts.values():
            self.assertNotIn(h, text)
            self.assertNotIn(h.lower(), text)

        # A second scrape at once shares the cached aggregates.
        text2, fams2 = scrape(f)
        self.assertEqual(fams2["renewd_certificates"]["samples"],
                         fams["renewd_certificates"]["samples"])
        status, body, _ = http_get(f, "/healthz")
        self.assertEqual((status, body), (200, "ok\n"))
        status, _, _ = http_get(f, "/metrics?x")  # the path is what counts
        self.assertEqual(status, 200)
        f.stop()

    def test_parser_rejects_broken_text(self):
        # The parser above is strict: each of these is refused.
        good = ("# HELP renewd_x Help.\n# TYPE renewd_x gauge\n"
                "renewd_x{a=\"1\"} 1\n")
        self.assertIn("renewd_x", parse_exposition(good))
        for bad in (
                "renewd_x 1\n",                                  # no TYPE
                good + "renewd_x{a=\"1\"} 2\n",                  # duplicate
                good + "# TYPE renewd_x gauge\n",                # 2nd TYPE
                good.replace("} 1", "}  1"),                     # spacing
                good.replace("\"1\"", "\"a\\tb\""),              # escape
                good.replace("a=", "1a="),                       # label
                good + "renewd_y 1\n",                           # family
                good[:-1],                                       # no \n
                good + "\n",                                     # empty
                good.replace(" 1\n", " one\n")):                 # value
            with self.assertRaises(ParseError, msg=bad):
                parse_exposition(bad)


if __name__ == "__main__":
    harness.main()
