"""POST /webhook/mdm: NanoMDM/MicroMDM events register hosts, queue issue
jobs, move jobs on command results, verify them from a CertificateList, and
retire hosts on CheckOut; redeliveries, bad signatures and malformed bodies
change nothing."""

import base64
import hashlib
import hmac
import json
import os
import plistlib
import sys
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import CA_NAME  # noqa: E402

_n = [0]


def event_id():
    _n[0] += 1
    return "evt-%d-%s" % (_n[0], harness.new_uuid())


def checkin(topic, udid, serial=None, eid=None, message_type=None):
    payload = {"MessageType": message_type or topic.split(".", 1)[1],
               "UDID": udid}
    if serial:
        payload["SerialNumber"] = serial
    return {"topic": topic, "event_id": eid or event_id(),
            "created_at": "2026-01-01T00:00:00Z",
            "checkin_event": {
                "udid": udid,
                "raw_payload": base64.b64encode(
                    plistlib.dumps(payload)).decode()}}


def ack(udid, status, command_uuid, error_chain=None, certs=None,
        eid=None):
    payload = {"UDID": udid, "Status": status, "CommandUUID": command_uuid}
    if error_chain is not None:
        payload["ErrorChain"] = error_chain
    if certs is not None:
        payload["RequestType"] = "CertificateList"
        payload["CertificateList"] = [
            {"Data": der, "CommonName": "x", "IsIdentity": True}
            for der in certs]
    return {"topic": "mdm.Connect", "event_id": eid or event_id(),
            "created_at": "2026-01-01T00:00:00Z",
            "acknowledge_event": {
                "udid": udid, "status": status,
                "command_uuid": command_uuid,
                "raw_payload": base64.b64encode(
                    plistlib.dumps(payload)).decode()}}


def post(f, body, key=None, signature=None):
    """-> (status, text)"""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(f.public_url + "/webhook/mdm", data=data,
                                 method="POST")
    req.add_header("Content-Type", "application/json")
    if key is not None:
        signature = base64.b64encode(
            hmac.new(key.encode(), data, hashlib.sha256).digest()).decode()
    if signature is not None:
        req.add_header("X-Hmac-Signature", signature)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def der_of(f, cn, days_left, lifetime_days=365):
    with open(f.certs.make(cn, days_left, lifetime_days, der=True),
              "rb") as fh:
        return fh.read()


class FakeNanoMdm:
    """A tiny NanoMDM: records every PUT /v1/enqueue/{id} (path, plist)
    and answers 200 with a NanoMDM-style JSON result."""

    def __init__(self):
        self.puts = []
        self.lock = threading.Lock()
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_PUT(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                with outer.lock:
                    outer.puts.append({"path": self.path,
                                       "auth": self.headers.get(
                                           "Authorization"),
                                       "plist": plistlib.loads(body)})
                payload = b'{"status":{}}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)
        self.thread.start()

    def got(self):
        with self.lock:
            return list(self.puts)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class MdmWebhook(harness.RenewdTestCase):

    def enroll(self, f, udid, serial):
        st, text = post(f, checkin("mdm.Authenticate", udid, serial))
        self.assertEqual((st, text), (200, "ok"), f.log_tail())
        jobs = f.wait_jobs(
            lambda js: any(j["host_uuid"] == udid and j["state"] == "pushed"
                           for j in js), "the issue job to be pushed")
        return [j for j in jobs if j["host_uuid"] == udid][0]

    def test_enroll_ack_certificate_list(self):
        f = self.fleet()
        f.start()
        udid = harness.new_uuid().upper()

        # Authenticate for a new device: host + issue job, pushed through
        # the hook with the serial number rendered. A redelivery is a no-op.
        body = checkin("mdm.Authenticate", udid, "SNWH1")
        self.assertEqual(post(f, body), (200, "ok"))
        self.assertEqual(post(f, body), (200, "duplicate"))
        job = f.wait_jobs(lambda js: len(js) == 1 and
                          js[0]["state"] == "pushed",
                          "the issue job to be pushed")[0]
        self.assertEqual(job["host_uuid"], udid)
        self.assertEqual(job["kind"], "issue")
        self.assertEqual(job["ca_name"], CA_NAME)
        rid = job["renewal_id"]
        pushes = f.hook.pushes()
        self.assertEqual(len(pushes), 1)
        self.assertIn(("SNWH1 WIFI " + rid).encode(), pushes[0]["raw"])

        # TokenUpdate with the job still open queues nothing more.
        self.assertEqual(post(f, checkin("mdm.TokenUpdate", udid)),
                         (200, "ok"))
        self.assertEqual(len(f.jobs()), 1)

        # Malformed bodies: 400 with the parser's message, no change.
        st, text = post(f, b"{not json")
        self.assertEqual(st, 400, text)
        st, text = post(f, {"topic": "mdm.Authenticate",
                            "event_id": "e-1"})
        self.assertEqual(st, 400, text)
        self.assertIn("checkin_event", text)

        # NanoMDM sends "event_id": "": accepted, and a redelivery of the
        # same body is recognised by its hash.
        body = checkin("mdm.TokenUpdate", udid)
        body["event_id"] = ""
        self.assertEqual(post(f, body), (200, "ok"))
        self.assertEqual(post(f, body), (200, "duplicate"))

        # NotNow only records an event.
        self.assertEqual(post(f, ack(udid, "NotNow", job["command_uuid"])),
                         (200, "ok"))
        self.assertEqual(f.jobs()[0]["state"], "pushed")

        # Acknowledged -> acknowledged.
        self.assertEqual(post(f, ack(udid, "Acknowledged",
                                     job["command_uuid"])), (200, "ok"))
        j = f.jobs()[0]
        self.assertEqual(j["state"], "acknowledged")
        events = [e["event"] for e in f.job_show(j["id"])["events"]]
        self.assertIn("not_now", events)
        self.assertIn("acknowledged", events)

        # CertificateList: two certificates carry the renewal ID (the
        # newest valid one wins), one matches nothing.
        old = der_of(f, "SNWH1 WIFI " + rid, 300)
        new = der_of(f, "SNWH1 WIFI " + rid, 364)
        expired = der_of(f, "SNWH1 WIFI " + rid, -1)
        other = der_of(f, "something else entirely", 100)
        body = ack(udid, "Acknowledged", harness.new_uuid(),
                   certs=[old, new, expired, other])
        self.assertEqual(post(f, body), (200, "ok"), f.log_tail())
        j = f.jobs()[0]
        self.assertEqual(j["state"], "verified")
        certs = f.certs_of(udid)
        self.assertEqual(len(certs), 1, certs)
        self.assertEqual(certs[0]["sha256"],
                         hashlib.sha256(new).hexdigest())
        self.assertEqual(certs[0]["state"], "active")
        um = f.ctl("certs", "--unmatched")["certificates"]
        self.assertEqual([u["sha256"] for u in um],
                         [hashlib.sha256(other).hexdigest()], um)
        self.assertEqual(um[0]["host_uuid"], udid)
        self.assertIn("something else entirely", um[0]["subject"])

        # Reported again: the managed one is not "unmatched".
        body = ack(udid, "Acknowledged", harness.new_uuid(),
                   certs=[new, other])
        self.assertEqual(post(f, body), (200, "ok"))
        self.assertEqual(len(f.ctl("certs", "--unmatched")["certificates"]),
                         1)

        # A new Authenticate with a current certificate queues nothing.
        self.assertEqual(post(f, checkin("mdm.Authenticate", udid)),
                         (200, "ok"))
        self.assertEqual(len(f.jobs()), 1)

    def test_error_then_checkout(self):
        f = self.fleet(max_attempts=1)
        # An exec notifier for host.retired appends each payload it gets.
        got = os.path.join(f.dir, "retired.jsonl")
        script = f.write_file("on-retired.sh",
                              "#!/bin/sh\ncat >> %s\necho >> %s\n"
                              % (got, got), mode=0o755)
        f.notifiers = ("  - name: retire-log\n"
                       "    driver: exec\n"
                       "    command: [%s]\n"
                       "    events: [host.retired]\n" % json.dumps(script))
        f.write_config()
        f.start()
        udid = harness.new_uuid()
        job = self.enroll(f, udid, "SNWH2")

        # An Error result is a failed attempt carrying the error chain.
        chain = [{"ErrorDomain": "MCProfileErrorDomain", "ErrorCode": 1009,
                  "LocalizedDescription": "The profile could not be "
                                          "installed."}]
        self.assertEqual(post(f, ack(udid, "Error", job["command_uuid"],
                                     error_chain=chain)), (200, "ok"))
        j = f.wait_jobs(lambda js: js[0]["state"] == "failed",
                        "the job to fail")[0]
        ev = f.job_show(j["id"])["events"]
        errs = [e for e in ev if e["event"] == "device_error"]
        self.assertEqual(len(errs), 1, ev)
        self.assertIn("MCProfileErrorDomain 1009", errs[0]["detail"])
        self.assertIn("could not be installed", errs[0]["detail"])

        # Another device enrolls; its pushed job is cancelled on CheckOut.
        udid2 = harness.new_uuid()
        job2 = self.enroll(f, udid2, "SNWH3")
        self.assertEqual(post(f, checkin("mdm.CheckOut", udid2)),
                         (200, "ok"))
        j2 = [j for j in f.jobs() if j["id"] == job2["id"]][0]
        self.assertEqual(j2["state"], "cancelled")
        ev = f.job_show(j2["id"])["events"]
        self.assertIn("host checked out",
                      [e["detail"] for e in ev if e["event"] == "cancelled"])
        # ...and the host.retired alert, queued in the same transaction,
        # reaches the notifier once.
        def delivered():
            try:
                with open(got) as fh:
                    lines = [l for l in fh.read().splitlines() if l]
            except FileNotFoundError:
                return None
            return lines or None
        lines = harness.poll(delivered, 20, "host.retired delivered",
                             f.log_tail)
        self.assertEqual(len(lines), 1, lines)
        ev = json.loads(lines[0])
        self.assertEqual(ev["event"], "host.retired")
        self.assertEqual(ev["host"], udid2)
        self.assertEqual(ev["key"], "host.retired:" + udid2)
        self.assertIn("1 open renewal job cancelled", ev["summary"])
        import sqlite3

        def outbox():
            db = sqlite3.connect("file:%s?mode=ro" % f.db, uri=True)
            rows = db.execute("SELECT notifier, state, attempts FROM "
                              "notifications WHERE event = 'host.retired'"
                              ).fetchall()
            db.close()
            return rows == [("retire-log", "delivered", 1)] or None
        harness.poll(outbox, 10, "the outbox row marked delivered",
                     f.log_tail)

    def test_ack_asks_for_certificate_list(self):
        nano = FakeNanoMdm()
        self.addCleanup(nano.close)
        f = self.fleet()
        f.use_nanomdm(nano.url, "nano-KEY-77x")
        f.write_config()
        f.start()
        host, _ = f.add_host(10, serial="SNNANO")
        f.trigger()
        job = f.wait_jobs(lambda js: len(js) == 1 and
                          js[0]["state"] == "pushed",
                          "the renew job to be pushed")[0]
        puts = nano.got()
        self.assertEqual(len(puts), 1, puts)
        self.assertEqual(puts[0]["path"], "/v1/enqueue/" + host)
        self.assertEqual(puts[0]["auth"], "Basic " + base64.b64encode(
            b"nanomdm:nano-KEY-77x").decode())
        self.assertEqual(puts[0]["plist"]["Command"]["RequestType"],
                         "InstallProfile")
        self.assertEqual(puts[0]["plist"]["CommandUUID"],
                         job["command_uuid"])

        # The device installed it: renewd asks for its certificates.
        self.assertEqual(post(f, ack(host, "Acknowledged",
                                     job["command_uuid"])), (200, "ok"))
        self.assertEqual(f.jobs()[0]["state"], "acknowledged")
        harness.poll(lambda: len(nano.got()) >= 2 or None, 10,
                     "the CertificateList PUT", f.log_tail)
        puts = nano.got()
        self.assertEqual(len(puts), 2, puts)
        self.assertEqual(puts[1]["path"], "/v1/enqueue/" + host)
        cmd = puts[1]["plist"]
        self.assertEqual(cmd["Command"], {"RequestType": "CertificateList"})
        self.assertNotEqual(cmd["CommandUUID"], job["command_uuid"])

        def requested():
            ev = f.job_show(job["id"])["events"]
            return [e for e in ev
                    if e["event"] == "certificate_list_requested"] or None
        ev = harness.poll(requested, 10, "certificate_list_requested",
                          f.log_tail)
        self.assertEqual(ev[0]["detail"], cmd["CommandUUID"])
        self.assertEqual(f.jobs()[0]["state"], "acknowledged")

    def test_hmac(self):
        f = self.fleet(webhook_hmac_key="wh-secret-9Kd")
        f.start()
        udid = harness.new_uuid()
        body = checkin("mdm.Authenticate", udid, "SNWH4")
        self.assertEqual(post(f, body), (401, "bad signature"))
        self.assertEqual(post(f, body, key="wrong"), (401, "bad signature"))
        self.assertEqual(post(f, body, signature="not base64!"),
                         (401, "bad signature"))
        self.assertEqual(f.jobs(), [])
        st, text = post(f, b"{oops", key="wh-secret-9Kd")
        self.assertEqual(st, 400, text)
        self.assertEqual(post(f, body, key="wh-secret-9Kd"), (200, "ok"))
        f.wait_jobs(lambda js: len(js) == 1, "one job")
        self.assertNotIn("wh-secret-9Kd", f.log_text())


if __name__ == "__main__":
    harness.main()
