"""Torture 4: the disk under the database fills up in the middle of a run.
renewd says so clearly in its log, stops taking new work instead of
spinning on it (a bounded number of log lines), answers 503 with a
Retry-After to the certificate API so reports are sent again, keeps the
store intact (PRAGMA integrity_check), loses nothing - a push that went
out while the database was full is recorded once there is room, not
forgotten in state 'running' and not pushed twice - and finishes every
renewal once space returns.

The database lives on a small tmpfs mounted in a private mount namespace
(this process unshares its mount namespace before starting anything;
renewd and renewctl inherit it). Needs root; skipped otherwise.

short (make test): 300 certificates. full (make torture): 3,000. The
file system is filled with a filler file but for LEAVE bytes (after the
WAL is truncated), so the scan fits and the disk runs out while profiles
are being pushed; the
devices hold their reports until space returns, so a job whose push could
not be recorded cannot be rescued by its device's report.
"""

import collections
import http.client
import json
import os
import sqlite3
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torture  # noqa: E402
from torture import harness  # noqa: E402

N = torture.size(300, 3000)
WAIT = torture.size(120, 900)
FULL_FOR = torture.size(4, 20)  # seconds renewd is watched while full
TMPFS = "64m"
LEAVE = torture.size(256, 2048) * 1024


def wal_truncate(db):
    """Checkpoint the WAL into the database and truncate it to 0 bytes."""
    c = sqlite3.connect(db, timeout=30)
    try:
        busy, _, _ = c.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        assert busy == 0, "WAL checkpoint blocked by a reader"
    finally:
        c.close()


class DiskFullTorture(harness.RenewdTestCase):

    @classmethod
    def setUpClass(cls):
        # before any thread starts: unshare(CLONE_NEWNS) needs that
        why = torture.enter_private_mount_ns()
        if why:
            raise unittest.SkipTest("disk-full scenario skipped: %s" % why)

    def api_post(self, f, host, pem):
        c = http.client.HTTPConnection("127.0.0.1", f.http_port, timeout=30)
        try:
            c.request("POST", "/api/v1/certificates", body=json.dumps({
                "host_uuid": host, "profile_uuid": f.profile_uuid,
                "ca_name": harness.CA_NAME, "pem": pem}).encode(),
                headers={"Authorization": "Bearer " + torture.API_TOKEN,
                         "Content-Type": "application/json"})
            r = c.getresponse()
            return r.status, r.read(), r.getheader("Retry-After")
        finally:
            c.close()

    def healthz(self, f):
        c = http.client.HTTPConnection("127.0.0.1", f.http_port, timeout=30)
        try:
            c.request("GET", "/healthz")
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def tmpfs_fleet(self):
        """A fleet whose database is on a small tmpfs, the webhook MDM
        driver and devices that report through the API (paused)."""
        ca = torture.FastCA()
        f = torture.TortureFleet(max_attempts=5, backoff=("1s", "2s"))
        self._fleets.append(f)
        self.addCleanup(f.close)
        dbdir = os.path.join(f.dir, "dbfs")
        os.makedirs(dbdir)
        torture.mount_tmpfs(dbdir, TMPFS)
        self.addCleanup(torture.umount, dbdir)
        f.db = os.path.join(dbdir, "renewd.db")
        ver = torture.Verifier(f, ca, workers=4, retry_delay=0.5)
        self.addCleanup(ver.stop)
        rcv = torture.PushReceiver(on_ok=ver.on_push)
        self.addCleanup(rcv.close)
        f.mdm = rcv.mdm_yaml(timeout="10s")
        f.write_config()
        return f, ca, ver, rcv, dbdir

    def test_full_at_start_up_scan_waits_for_room(self):
        # Given renewd stopped with N/3 due certificates in its database,
        # and the file system then filled but for 64 KiB.
        n = N // 3
        f, ca, ver, rcv, dbdir = self.tmpfs_fleet()
        f.start()
        hosts = torture.import_initial(f, ca, n, ver)
        f.stop()
        ver.pause()
        filler, _ = torture.fill(dbdir, leave=64 * 1024)
        # When renewd starts, its first scan cannot write...
        mark = len(f.log_text())
        f.start()
        text = f.wait_log("database is full: not starting new work",
                          start=mark, timeout=60)
        self.assertIn('during=scanning', text)
        # ...so a trigger says why, nothing is pushed, the API says 503.
        rc, out, err = f.ctl_raw("trigger")
        self.assertEqual(rc, 1, (out, err))
        self.assertIn("database is full", out + err)
        st, body, ra = self.api_post(f, hosts[0],
                                     ca.make("TRT WIFI x", 365, 365))
        self.assertEqual((st, int(ra) > 0), (503, True), body)
        # ...and /healthz reports it, so a load balancer or monitor sees.
        self.assertEqual(self.healthz(f)[0], 503)
        time.sleep(FULL_FOR / 2)
        self.assertEqual(len(rcv.pushes), 0)
        self.assertEqual(f.job_counts(), {})
        self.assertEqual(torture.integrity_ok(f.db), [("ok",)])

        # When space returns, the scan runs by itself and all renew.
        os.unlink(filler)
        t_space = time.monotonic()
        ver.resume()

        def done():
            c = f.job_counts()
            return c.get("verified", 0) == n and sum(c.values()) == n
        harness.poll(done, WAIT, "%d verified jobs" % n,
                     lambda: "jobs: %r\n%s" % (f.job_counts(),
                                               f.log_tail()),
                     interval=0.25)
        text = f.log_text()[mark:]
        self.assertIn("database writable again, resuming work", text)
        self.assertEqual(self.healthz(f), (200, b"ok\n"))
        self.assertEqual(len(rcv.pushes), n)
        self.assertEqual(torture.integrity_ok(f.db), [("ok",)])
        torture.summary("database disk full at start-up", [
            ("certificates renewed", n),
            ("all verified after space returned s",
             time.monotonic() - t_space)])
        f.stop()

    def test_database_disk_full_then_space_returns(self):
        seed = torture.seed()
        # Given a fleet whose database is on a small tmpfs...
        f, ca, ver, rcv, dbdir = self.tmpfs_fleet()
        f.start()
        # ...and N due certificates in it.
        hosts = torture.import_initial(f, ca, N, ver)
        self.assertEqual(torture.integrity_ok(f.db), [("ok",)])

        # When the file system fills up while a scan starts the
        # renewals (the devices keep their reports for now)...
        ver.pause()
        # Since group commit a renewal writes a few WAL pages, and a run
        # this size fits in the WAL the import left: empty it first so
        # new frames need new space.
        wal_truncate(f.db)
        filler, nfill = torture.fill(dbdir, leave=LEAVE)
        mark = len(f.log_text())
        t0 = time.monotonic()
        trc, tout, terr = f.ctl_raw("trigger")
        # ...renewd says the database is full and stops taking work...
        text = f.wait_log("database is full: not starting new work",
                          start=mark, timeout=60)
        time.sleep(1.0)  # pushes already on the wire may still land
        pushes_at_full = len(rcv.pushes)
        lines_at_full = f.log_count("database is full")
        running_at_full = {r[0] for r in f.query(
            "SELECT id FROM renewal_jobs WHERE state = 'running'")}
        # ...answers the certificate API 503 with a Retry-After...
        st, body, retry_after = self.api_post(
            f, hosts[0], ca.make("TRT WIFI extra", 365, 365))
        # ...and stays quiet: no push, a few log lines, an intact store.
        time.sleep(FULL_FOR)
        pushes_while_full = len(rcv.pushes) - pushes_at_full
        lines_while_full = f.log_count("database is full") - lines_at_full
        integrity_full = torture.integrity_ok(f.db)
        status_full = f.ctl("status")
        rc_, status_text, _ = f.ctl_raw("status", json_out=False)
        counts_full = f.job_counts()

        # When space returns...
        os.unlink(filler)
        t_space = time.monotonic()

        # ...then every push that went out is recorded (none is left
        # 'running', none pushed twice), the rest are pushed...
        def all_pushed():
            if not f.running():
                raise AssertionError("renewd died\n" + f.log_tail())
            c = f.job_counts()
            return c.get("pushed", 0) == N and sum(c.values()) == N
        harness.poll(all_pushed, WAIT, "%d pushed jobs" % N,
                     lambda: "jobs: %r\n%s" % (f.job_counts(),
                                               f.log_tail()),
                     interval=0.25)
        t_pushed = time.monotonic() - t_space
        # ...and once the devices report, every job is verified.
        ver.resume()

        def done():
            c = f.job_counts()
            if c.get("failed") or c.get("cancelled"):
                raise AssertionError("jobs ended badly: %r" % c)
            return c.get("verified", 0) == N and sum(c.values()) == N
        harness.poll(done, WAIT, "%d verified jobs" % N,
                     lambda: "jobs: %r\n%s" % (f.job_counts(),
                                               f.log_tail()),
                     interval=0.25)
        ver.wait_idle(60)
        jobs, cur = torture.fleet_outcome(f)
        per_rid = collections.Counter(p.rid for p in rcv.got())
        dups = sum(n - 1 for n in per_rid.values())
        text = f.log_text()[mark:]
        late = [line for line in text.splitlines()
                if "profile pushed" in line and "recorded=late" in line]
        torture.summary("database disk full", [
            ("certificates renewed", N),
            ("tmpfs size", TMPFS),
            ("free space left by the filler", "%d KiB" % (LEAVE // 1024)),
            ("trigger answer", (tout or terr).strip()[:60]),
            ("pushes before full", pushes_at_full),
            ("jobs when full", json.dumps(counts_full, sort_keys=True)),
            ("jobs 'running' when full", len(running_at_full)),
            ("  pushes recorded late", len(late)),
            ("pushes while full (%ds)" % FULL_FOR, pushes_while_full),
            ("'database is full' lines while full", lines_while_full),
            ("API answer while full", "%s, Retry-After %s" % (
                st, retry_after)),
            ("duplicate pushes", dups),
            ("all pushed after space returned s", t_pushed),
            ("wall time s", time.monotonic() - t0),
            ("seed", seed)])

        # While full: clear message, no new work, bounded log, 503, an
        # intact store, and the operator's status says so.
        self.assertIn("database is full: not starting new work", text)
        self.assertEqual(pushes_while_full, 0)
        self.assertLess(lines_while_full, 10 + FULL_FOR)
        self.assertEqual(st, 503, body)
        self.assertTrue(retry_after and int(retry_after) > 0, retry_after)
        self.assertIn(b"database is full", body)
        self.assertEqual(integrity_full, [("ok",)])
        self.assertTrue(status_full["daemon"].get("store_full"),
                        status_full)
        self.assertIn("FULL", status_text)
        # After: resumed, the held outcomes written with their real times,
        # nothing lost, nothing doubled.
        self.assertIn("database writable again, resuming work", text)
        # A job left 'running' by the full disk was either pushed (the
        # push is recorded now, at the time it happened) or could not
        # even store its profile's token (requeued, the attempt does not
        # count, pushed later).
        requeued = 0
        for jid in running_at_full:
            names = [r[0] for r in f.query(
                "SELECT event FROM job_events WHERE job_id = ? ORDER BY id",
                (jid,))]
            self.assertEqual(names[-3:], ["attempt_started", "pushed",
                                          "verified"], (jid, names))
            if "requeued" in names:
                requeued += 1
                self.assertEqual(names, ["enqueued", "attempt_started",
                                         "requeued", "attempt_started",
                                         "pushed", "verified"])
        self.assertEqual(len(late) + requeued, len(running_at_full))
        self.assertEqual(dups, 0)
        self.assertEqual(len(jobs), N)
        self.assertEqual(sorted(j[1] for j in jobs), sorted(hosts))
        for jid, host, state, rid, attempts in jobs:
            self.assertEqual(cur[host][1:3], (rid, jid), (jid, host))
        self.assertFalse(f.ctl("status")["daemon"].get("store_full"))
        self.assertEqual(torture.integrity_ok(f.db), [("ok",)])
        f.stop()


if __name__ == "__main__":
    harness.main()
