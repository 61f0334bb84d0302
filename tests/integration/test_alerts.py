"""Alerts through the notifiers: one alert per condition and one resolve
message, at-least-once delivery through the outbox (across a receiver
outage and a renewd restart), and the webhook, exec and smtp drivers
against real receivers on 127.0.0.1."""

import email
import email.policy
import email.utils
import hashlib
import hmac
import json
import os
import sqlite3
import sys
import threading
import time
import unittest
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

# Debian's python3-aiosmtpd, installed by contrib/deps.sh: a real SMTP
# server for the smtp driver. Not optional: a missing package is a failure.
from aiosmtpd.controller import Controller  # noqa: E402
from aiosmtpd.smtp import AuthResult  # noqa: E402

# AUTH without TLS is what the loopback test server is for: no warnings.
warnings.filterwarnings("ignore", message="Requiring AUTH while not "
                        "requiring TLS")

TOKEN = "alert-token-Xq91"
HMAC_KEY = "alert-hmac-key-7Hd2"


def outbox(f, where="1=1"):
    db = sqlite3.connect("file:%s?mode=ro" % f.db, uri=True)
    try:
        return db.execute("SELECT id, event, notifier, state, attempts, "
                          "last_error, payload FROM notifications WHERE "
                          + where + " ORDER BY id").fetchall()
    finally:
        db.close()


def settled(f):
    """True when every outbox row is delivered or given up."""
    return not outbox(f, "state = 'pending'")


def alerts_of(receiver, event=None):
    res = []
    for r in receiver.got():
        doc = json.loads(r["body"])
        if event is None or doc.get("event") == event:
            res.append((doc, r))
    return res


class Mailbox:
    """aiosmtpd on 127.0.0.1 that keeps every message it accepts; with
    `users`, AUTH is required (plain text allowed: loopback only)."""

    def __init__(self, users=None):
        self.messages = []
        self.logins = []
        box = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                box.messages.append({
                    "from": envelope.mail_from,
                    "rcpt": list(envelope.rcpt_tos),
                    "data": envelope.content})
                return "250 OK"

        def auth(server, session, envelope, mechanism, data):
            user = data.login.decode()
            ok = users is not None and users.get(user) == \
                data.password.decode()
            box.logins.append((user, ok))
            return AuthResult(success=ok)

        kw = {}
        if users is not None:
            kw = dict(authenticator=auth, auth_required=True,
                      auth_require_tls=False)
        self.port = harness.free_port()
        self.ctl = Controller(Handler(), hostname="127.0.0.1",
                              port=self.port, **kw)
        self.ctl.start()

    def url(self):
        return "smtp://127.0.0.1:%d" % self.port

    def parsed(self):
        return [email.message_from_bytes(m["data"], policy=email.policy.SMTP)
                for m in self.messages]

    def close(self):
        self.ctl.stop()


class AlertTests(harness.RenewdTestCase):

    def webhook_notifier(self, f, url, events, fmt="json"):
        tok = f.write_file("notif_token", TOKEN + "\n")
        key = f.write_file("notif_hmac", HMAC_KEY + "\n")
        return ("  - name: ops\n"
                "    driver: webhook\n"
                "    url: %s\n"
                "    format: %s\n"
                "    token_file: %s\n"
                "    hmac_key_file: %s\n"
                "    timeout: 5s\n"
                "    events: [%s]\n" % (json.dumps(url), fmt,
                                        json.dumps(tok), json.dumps(key),
                                        ", ".join(events)))

    def scan_until_new_job(self, f, known):
        """Trigger scans until a job id not in `known` exists (a failed
        job re-arms its certificate after backoff.max, 2 s here)."""
        def check():
            f.trigger()
            jobs = f.jobs()
            new = [j for j in jobs if j["id"] not in known]
            return new or None
        return harness.poll(check, 20, "a new job from a scan", f.log_tail,
                            interval=0.5)

    def test_failed_renewal_alerts_once_and_resolves_once(self):
        # Given a webhook receiver subscribed to renewal.failed and
        # renewal.verified, and an MDM hook that fails every push.
        rcv = self.receiver(status=200)
        f = self.fleet(max_attempts=1)
        f.notifiers = self.webhook_notifier(
            f, rcv.url("/alerts"), ["renewal.failed", "renewal.verified"])
        f.write_config()
        f.hook.set_exit(1)
        f.start()
        host, _ = f.add_host(10, serial="ALRT1")

        # Scan 1: the job fails for good (one attempt allowed)...
        f.trigger()
        j1 = f.wait_jobs(lambda js: js and js[0]["state"] == "failed",
                         "the first job to fail")[0]
        # ...and the receiver gets renewal.failed once.
        harness.poll(lambda: alerts_of(rcv, "renewal.failed") or None, 20,
                     "renewal.failed delivered", f.log_tail)
        doc, req = alerts_of(rcv, "renewal.failed")[0]
        self.assertEqual(doc["status"], "firing")
        self.assertEqual(doc["severity"], "error")
        self.assertEqual(doc["host"], host)
        self.assertEqual(doc["profile"], f.profile_uuid)
        self.assertEqual(doc["ca"], harness.CA_NAME)
        self.assertEqual(doc["job"], j1["id"])
        self.assertIn("renewal failed for host %s" % host, doc["summary"])
        self.assertIsInstance(doc["id"], int)
        self.assertEqual(doc["renewd"]["version"], "0.1.0")
        # Authenticated and signed as configured.
        h = req["headers"]
        self.assertEqual(h["authorization"], "Bearer " + TOKEN)
        self.assertEqual(h["content-type"], "application/json")
        self.assertEqual(h["x-renewd-event"], "renewal.failed")
        mac = hmac.new(HMAC_KEY.encode(), req["body"],
                       hashlib.sha256).hexdigest()
        self.assertEqual(h["x-renewd-signature"], "sha256=" + mac)
        self.assertNotIn(TOKEN, f.log_text())

        # Scan 2: the re-armed certificate fails again: still one alert.
        j2 = self.scan_until_new_job(f, {j1["id"]})[0]
        f.wait_jobs(lambda js: all(j["state"] == "failed" for j in js) and
                    len(js) == 2, "the second job to fail")
        harness.poll(lambda: settled(f) or None, 20, "outbox settled",
                     f.log_tail)
        self.assertEqual(len(alerts_of(rcv, "renewal.failed")), 1,
                         alerts_of(rcv))

        # Scan 3: the MDM works again, the device installs a certificate
        # with the new renewal ID: renewal.verified and one resolve.
        f.hook.set_exit(0)
        j3 = self.scan_until_new_job(f, {j1["id"], j2["id"]})[0]
        j3 = f.wait_jobs(lambda js: [j for j in js if j["id"] == j3["id"]
                                     and j["state"] == "pushed"],
                         "the third job to be pushed")
        j3 = [j for j in j3 if j["state"] == "pushed"][0]
        path = f.certs.make("ALRT1 WIFI %s" % j3["renewal_id"], 365)
        f.import_cert(host, path)
        harness.poll(lambda: len(alerts_of(rcv, "renewal.failed")) == 2 or
                     None, 20, "the resolve message", f.log_tail)
        harness.poll(lambda: settled(f) or None, 20, "outbox settled",
                     f.log_tail)
        failed = [d for d, _ in alerts_of(rcv, "renewal.failed")]
        self.assertEqual([d["status"] for d in failed],
                         ["firing", "resolved"])
        self.assertEqual(failed[1]["key"], failed[0]["key"])
        verified = [d for d, _ in alerts_of(rcv, "renewal.verified")]
        self.assertEqual(len(verified), 1, verified)
        self.assertEqual(verified[0]["job"], j3["id"])
        self.assertEqual(verified[0]["renewal_id"], j3["renewal_id"])
        # Nothing else was sent (ca.unhealthy is not subscribed).
        self.assertEqual(len(rcv.got()), 3)

    def test_alert_survives_receiver_outage_and_restart(self):
        # Given a receiver that is down (nothing listens on its port).
        port = harness.free_port()
        f = self.fleet(max_attempts=1)
        f.notifiers = self.webhook_notifier(
            f, "http://127.0.0.1:%d/alerts" % port, ["renewal.failed"])
        f.write_config()
        f.hook.set_exit(1)
        f.start()
        host, _ = f.add_host(10, serial="ALRT2")
        f.trigger()
        f.wait_jobs(lambda js: js and js[0]["state"] == "failed",
                    "the job to fail")

        # The alert waits in the outbox with the connect error...
        def retrying():
            rows = outbox(f, "notifier = 'ops'")
            return rows if rows and rows[0][4] >= 1 else None
        rows = harness.poll(retrying, 20, "a failed delivery attempt",
                            f.log_tail)
        self.assertEqual(len(rows), 1, rows)
        self.assertEqual(rows[0][3], "pending")
        self.assertTrue(rows[0][5], rows)

        # When renewd restarts and then the receiver comes back...
        f.stop()
        f.start()
        rcv = self.receiver(status=204, port=port)

        # ...the alert is delivered, exactly once.
        harness.poll(lambda: alerts_of(rcv) or None, 40,
                     "the alert delivered after the outage", f.log_tail)
        harness.poll(lambda: settled(f) or None, 20, "outbox settled",
                     f.log_tail)
        got = alerts_of(rcv)
        self.assertEqual(len(got), 1, got)
        self.assertEqual(got[0][0]["event"], "renewal.failed")
        self.assertEqual(got[0][0]["host"], host)
        rows = outbox(f, "notifier = 'ops'")
        self.assertEqual(rows[0][3], "delivered")
        self.assertGreaterEqual(rows[0][4], 2)

    def test_deadlines_and_expiry_through_exec(self):
        # Given an exec notifier that records its environment and stdin.
        f = self.fleet()
        rec = os.path.join(f.dir, "notes")
        os.makedirs(rec)
        script = f.write_file(
            "note.sh",
            "#!/bin/sh\n"
            "n=$RENEWD_NOTIFICATION_ID\n"
            "cat > %s/$n.json\n"
            "env | grep '^RENEWD_' | sort > %s/$n.env\n" % (rec, rec),
            mode=0o755)
        f.notifiers = ("  - name: pager\n"
                       "    driver: exec\n"
                       "    command: [%s]\n"
                       "    timeout: 10s\n"
                       "    events: [certificate.deadline, "
                       "certificate.expired]\n" % json.dumps(script))
        f.write_config()
        # Three hosts: 3 days left (past the 7d deadline), 12 hours left
        # (past 1d), expired yesterday; one with 200 days left.
        h7, _ = f.add_host(3, serial="DL7")
        h1, _ = f.add_host(0.5, serial="DL1")
        hx, _ = f.add_host(-1, serial="DLX")
        hok, _ = f.add_host(200, serial="DLOK")
        f.start()

        def notes():
            res = {}
            for fn in os.listdir(rec):
                if fn.endswith(".json"):
                    base = fn[:-5]
                    try:
                        with open(os.path.join(rec, fn)) as fh:
                            doc = json.load(fh)
                        with open(os.path.join(rec, base + ".env")) as fh:
                            env = dict(l.rstrip("\n").split("=", 1)
                                       for l in fh if "=" in l)
                    except (OSError, ValueError):
                        continue
                    res[int(base)] = (doc, env)
            return res

        # The scan at start-up runs the sweep: three alerts.
        harness.poll(lambda: len(notes()) >= 3 or None, 30,
                     "three deadline/expiry alerts", f.log_tail)
        harness.poll(lambda: settled(f) or None, 20, "outbox settled",
                     f.log_tail)
        by_host = {d["host"]: (d, e) for d, e in notes().values()}
        self.assertEqual(set(by_host), {h7, h1, hx})
        d, e = by_host[h7]
        self.assertEqual((d["event"], d["severity"], d["status"]),
                         ("certificate.deadline", "warning", "firing"))
        self.assertEqual(e["RENEWD_EVENT"], "certificate.deadline")
        self.assertEqual(e["RENEWD_SEVERITY"], "warning")
        self.assertEqual(e["RENEWD_HOST"], h7)
        self.assertEqual(e["RENEWD_CA"], harness.CA_NAME)
        self.assertEqual(e["RENEWD_PROFILE"], f.profile_uuid)
        self.assertIn("expires in", e["RENEWD_SUMMARY"])
        self.assertIn("not_valid_after", d)
        self.assertEqual(by_host[h1][0]["severity"], "critical")
        self.assertEqual(by_host[h1][0]["event"], "certificate.deadline")
        self.assertEqual(by_host[hx][0]["event"], "certificate.expired")
        self.assertEqual(by_host[hx][0]["severity"], "critical")

        # More scans: no repeats.
        start = len(f.log_text())
        f.trigger()
        f.trigger()
        f.wait_log("scan done", start=start)
        harness.poll(lambda: settled(f) or None, 20, "outbox settled",
                     f.log_tail)
        time.sleep(0.5)
        self.assertEqual(len(notes()), 3, notes())

        # The 3-day host gets a new certificate: one resolve message.
        path = f.certs.make("DL7 WIFI replaced", 365)
        f.import_cert(h7, path)
        harness.poll(lambda: len(notes()) == 4 or None, 20,
                     "the resolve message", f.log_tail)
        last = notes()[max(notes())][0]
        self.assertEqual((last["event"], last["status"], last["host"]),
                         ("certificate.deadline", "resolved", h7))

    def test_smtp_notify_test_and_ca_alert(self):
        # Given an SMTP server that requires AUTH, and an smtp notifier
        # with credentials from files.
        box = Mailbox(users={"renewd-mail": "s3cret-Pw"})
        self.addCleanup(box.close)
        f = self.fleet()
        user = f.write_file("smtp_user", "renewd-mail\n")
        pw = f.write_file("smtp_pw", "s3cret-Pw\n")
        f.notifiers = ("  - name: mail\n"
                       "    driver: smtp\n"
                       "    url: %s\n"
                       "    username_file: %s\n"
                       "    password_file: %s\n"
                       "    from: renewd@example.com\n"
                       "    to: [pki-oncall@example.com, "
                       "ops@example.com]\n"
                       "    timeout: 10s\n"
                       "    events: [ca.unhealthy]\n"
                       "  - name: tls\n"
                       "    driver: smtp\n"
                       "    url: %s\n"
                       "    starttls: true\n"
                       "    from: renewd@example.com\n"
                       "    to: [x@example.com]\n"
                       "    timeout: 5s\n"
                       "    events: [ca.unhealthy]\n"
                       % (json.dumps(box.url()), json.dumps(user),
                          json.dumps(pw), json.dumps(box.url())))
        f.write_config()

        # `renewctl notify test mail` sends one message, without a daemon.
        rc, out, err = f.ctl_raw("notify", "test", "mail", json_out=False)
        self.assertEqual(rc, 0, err)
        self.assertIn("delivered", out)
        self.assertEqual(len(box.messages), 1)
        m = box.messages[0]
        self.assertEqual(m["from"], "renewd@example.com")
        self.assertEqual(m["rcpt"], ["pki-oncall@example.com",
                                     "ops@example.com"])
        self.assertEqual(box.logins, [("renewd-mail", True)])
        msg = box.parsed()[0]
        self.assertEqual(msg["From"], "renewd@example.com")
        self.assertEqual(msg["To"],
                         "pki-oncall@example.com, ops@example.com")
        self.assertIn("test message from renewd to notifier mail",
                      msg["Subject"])
        self.assertIsNotNone(email.utils.parsedate_to_datetime(msg["Date"]))
        self.assertRegex(msg["Message-ID"], r"^<renewd\.[0-9]+\.[0-9a-f]+@"
                         r"[^>]+>$")
        self.assertEqual(msg.get_content_type(), "text/plain")
        self.assertIn("test message from renewd", msg.get_content())

        # A notifier that requires STARTTLS refuses a server without it.
        rc, out, err = f.ctl_raw("notify", "test", "tls", json_out=False)
        self.assertEqual(rc, 1)
        self.assertIn("notifier 'tls' (smtp)", err)
        self.assertEqual(len(box.messages), 1)
        # And an unknown notifier is named.
        rc, out, err = f.ctl_raw("notify", "test", "nope", json_out=False)
        self.assertEqual(rc, 1)
        self.assertIn("notifier 'nope' is not in the configuration", err)

        # renewd starts; its CA does not answer (nothing listens on the
        # CA port): ca.unhealthy arrives by mail, once.
        f.start()
        harness.poll(lambda: len(box.messages) >= 2 or None, 30,
                     "the ca.unhealthy email", f.log_tail)
        msg = box.parsed()[1]
        self.assertIn("ca.unhealthy", msg["Subject"])
        self.assertIn("CA %s is unhealthy" % harness.CA_NAME,
                      msg["Subject"])
        self.assertIn("ERROR", msg["Subject"])
        body = msg.get_content()
        self.assertIn("ca               %s" % harness.CA_NAME, body)
        self.assertEqual(msg["X-Renewd-Event"], "ca.unhealthy")
        self.assertNotIn("s3cret-Pw", f.log_text())
        # The tls notifier's copy keeps failing and is retried, pending.
        harness.poll(lambda: outbox(f, "notifier = 'tls' AND attempts >= 1")
                     or None, 20, "the tls delivery attempt", f.log_tail)
        row = outbox(f, "notifier = 'tls'")[0]
        self.assertEqual(row[3], "pending")
        self.assertEqual(len(box.messages), 2)

    @unittest.skipUnless(os.geteuid() == 0, "needs root for a private "
                         "mount namespace with its own /dev/log")
    def test_syslog_driver(self):
        # Given a datagram socket standing in for /dev/log, bind-mounted
        # there in a private mount namespace for renewctl only.
        import socket
        import subprocess
        f = self.fleet()
        f.notifiers = ("  - name: sys\n"
                       "    driver: syslog\n"
                       "    events: [\"*\"]\n")
        f.write_config()
        sock_path = os.path.join(f.dir, "log.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.addCleanup(sock.close)
        sock.bind(sock_path)
        sock.settimeout(10)
        olddev = os.path.join(f.dir, "olddev")
        os.makedirs(olddev)
        wrap = ("set -e; mount --make-rprivate /; "
                "mount --rbind /dev %s; mount -t tmpfs tmpfs /dev; "
                "for d in null zero urandom random; do touch /dev/$d; "
                "mount --bind %s/$d /dev/$d; done; touch /dev/log; "
                "mount --bind %s /dev/log; exec \"$@\"" % (
                    olddev, olddev, sock_path))
        p = subprocess.run(
            ["unshare", "-m", "sh", "-c", wrap, "sh", harness.renewctl_bin(),
             "-c", f.cfg, "notify", "test", "sys"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=harness.child_env(), timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("delivered", p.stdout)
        # Then one syslog line: facility daemon, severity info (<30>),
        # tagged renewd[pid], with the one-line summary.
        data = sock.recv(4096).decode()
        self.assertTrue(data.startswith("<30>"), data)
        self.assertRegex(data, r"renewd\[[0-9]+\]: \[renewd\] INFO test: "
                         r"test message from renewd to notifier sys")

    def test_mdm_unreachable_then_recovered_slack_format(self):
        # Given an MDM webhook push driver whose endpoint is down, and a
        # Slack-format alert webhook.
        rcv = self.receiver(status=200)
        mdm_port = harness.free_port()
        f = self.fleet(max_attempts=5)
        f.mdm = ("  driver: webhook\n"
                 "  url: http://127.0.0.1:%d/push\n"
                 "  timeout: 5s\n" % mdm_port)
        f.notifiers = self.webhook_notifier(
            f, rcv.url("/slack"), ["mdm.unreachable"], fmt="slack")
        f.write_config()
        f.start()
        for i in range(3):
            f.add_host(10, serial="MDMD%d" % i)
        f.trigger()

        # Three connect errors in a row: one mdm.unreachable alert.
        harness.poll(lambda: rcv.got() or None, 30, "mdm.unreachable",
                     f.log_tail)
        body = json.loads(rcv.got()[0]["body"])
        self.assertEqual(list(body), ["text"])
        self.assertIn("[renewd] ERROR mdm.unreachable", body["text"])
        self.assertIn("webhook driver", body["text"])

        # The MDM comes back: the retried pushes succeed, and the
        # subscribers of mdm.unreachable get mdm.recovered once.
        mdm = self.receiver(status=202, port=mdm_port)
        f.wait_jobs(lambda js: len(js) == 3 and
                    all(j["state"] == "pushed" for j in js),
                    "all three pushed", timeout=40)
        harness.poll(lambda: len(rcv.got()) >= 2 or None, 20,
                     "mdm.recovered", f.log_tail)
        harness.poll(lambda: settled(f) or None, 20, "outbox settled",
                     f.log_tail)
        texts = [json.loads(r["body"])["text"] for r in rcv.got()]
        self.assertEqual(len(texts), 2, texts)
        self.assertIn("[renewd] RESOLVED mdm.recovered", texts[1])
        self.assertTrue(mdm.got())


if __name__ == "__main__":
    unittest.main(verbosity=2)
