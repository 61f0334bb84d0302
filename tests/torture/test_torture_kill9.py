"""Torture 1: renewd is killed with SIGKILL at random moments while it
renews a fleet, and restarted each time. Every due certificate still ends
verified, no job is lost, and a push is repeated only for a job whose
attempt a kill interrupted.

short (make test): 500 certificates, 5 kills. full (make torture): 20,000
certificates, 50 kills. Each size runs twice (this file and
test_torture_kill9_serial.py):

- one push at a time (max_in_flight 1): a kill interrupts at most one
  attempt, so duplicate pushes (a renewal ID pushed twice) <= kills;
- 64 pushes at a time (the default): a kill may interrupt up to 64
  attempts, each of which is pushed again once with the same renewal ID
  after the restart. The bound is then per job: a renewal ID is pushed at
  most once more than the number of times its job was recovered, and the
  total is at most kills x 64.

The MDM is the webhook push driver pointed at an in-test receiver that
records every push; for each push a "device" posts a certificate whose CN
carries the renewal ID to POST /api/v1/certificates (torture.Verifier).
Kill moments: KILLS random points of the push count, each plus a random
0-50 ms; when the next point is already passed at restart the kill lands
in renewd's start-up (recovery, policy recompute, first scan).
"""

import collections
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torture  # noqa: E402
from torture import harness  # noqa: E402

N = torture.size(500, 20000)
KILLS = torture.size(5, 50)
WAIT = torture.size(120, 1800)


class Kill9Scenario(harness.RenewdTestCase):
    """The scenario; test_torture_kill9*.py run it with one setting
    each (one ctest entry each, so each stays short)."""

    def run_kills(self, max_in_flight):
        seed = torture.seed()
        rng = torture.rand(seed)
        ca = torture.FastCA()
        # Given a fleet of N due certificates, the webhook MDM driver and
        # a device for every push.
        f = torture.TortureFleet(max_attempts=5, backoff=("1s", "2s"),
                                 max_in_flight=max_in_flight)
        self._fleets.append(f)
        self.addCleanup(f.close)
        ver = torture.Verifier(f, ca, workers=4)
        self.addCleanup(ver.stop)
        rcv = torture.PushReceiver(on_ok=ver.on_push)
        self.addCleanup(rcv.close)
        f.mdm = rcv.mdm_yaml(timeout="10s")
        f.write_config()
        f.start()
        t_imp = time.monotonic()
        hosts = torture.import_initial(f, ca, N, ver)
        t_imp = time.monotonic() - t_imp

        # When a scan enqueues them all and renewd is killed -9 at KILLS
        # random moments of the run, restarted at once each time...
        t0 = time.monotonic()
        t = f.trigger()
        self.assertEqual((t["due"], t["enqueued"]), (N, N), t)
        marks = sorted(rng.sample(range(1, int(N * 0.95)), KILLS))
        kills, restart_s, startup_kills = 0, [], 0
        for m in marks:
            def reached():
                if not f.running():
                    raise AssertionError("renewd died\n" + f.log_tail())
                return len(rcv.pushes) >= m
            harness.poll(reached, WAIT, "push %d of %d" % (m, N),
                         f.log_tail, interval=0.005)
            time.sleep(rng.uniform(0, 0.05))
            if time.monotonic() - f.started_at < 0.5:
                startup_kills += 1
            self.assertEqual(f.kill9(), -signal.SIGKILL)
            kills += 1
            time.sleep(rng.uniform(0, 0.2))  # down for a moment
            ts = time.monotonic()
            f.start()
            restart_s.append(time.monotonic() - ts)

        # ...then every job ends verified.
        def all_verified():
            if not f.running():
                raise AssertionError("renewd died\n" + f.log_tail())
            c = f.job_counts()
            bad = {k: v for k, v in c.items() if k in ("failed",
                                                       "cancelled")}
            if bad:
                raise AssertionError("jobs ended badly: %r" % bad)
            return c.get("verified", 0) == N and sum(c.values()) == N
        harness.poll(all_verified, WAIT, "%d verified jobs" % N,
                     lambda: "jobs: %r\n%s" % (f.job_counts(),
                                               f.log_tail()),
                     interval=0.25)
        wall = time.monotonic() - t0
        ver.wait_idle(60)

        jobs, cur = torture.fleet_outcome(f)
        pushes = rcv.got()
        per_rid = collections.Counter(p.rid for p in pushes)
        dups = sum(n - 1 for n in per_rid.values())
        ev = collections.Counter(dict(f.query(
            "SELECT event, COUNT(*) FROM job_events GROUP BY event")))
        recovered = dict(f.query(
            "SELECT job_id, COUNT(*) FROM job_events WHERE event = "
            "'recovered' GROUP BY job_id"))
        torture.summary("kill -9 during renewals, max_in_flight %d"
                        % max_in_flight, [
            ("certificates renewed", N),
            ("kills (SIGKILL)", kills),
            ("  of them in start-up", startup_kills),
            ("pushes", len(pushes)),
            ("duplicate pushes", dups),
            ("jobs recovered at restart", sum(recovered.values())),
            ("API retries while down", ver.status["conn"]),
            ("restart to ready, mean s", sum(restart_s) / len(restart_s)),
            ("initial import s", t_imp),
            ("wall time s", wall),
            ("renewals per s", N / wall),
            ("seed", seed)])

        # No job lost, none doubled: one job per host, each verified.
        self.assertEqual(len(jobs), N)
        self.assertEqual(sorted(j[1] for j in jobs), sorted(hosts))
        for jid, host, state, rid, attempts in jobs:
            self.assertEqual(state, "verified", (jid, host, state))
            # The host's current certificate carries the job's renewal
            # ID. It is the one that verified the job, unless the profile
            # was pushed twice and the device enrolled twice: then the
            # later certificate replaced it (a job verifies only once).
            c = cur[host]
            self.assertEqual(c[1], rid, (jid, host, rid, c))
            if per_rid[rid] == 1:
                self.assertEqual(c[2], jid, (jid, host, rid, c))
        # Every initial certificate and every extra enrollment of a
        # repeated push was superseded; nothing else was.
        old = f.query("SELECT COUNT(*) FROM managed_certificates WHERE "
                      "state = 'superseded'")[0][0]
        self.assertEqual(old, N + dups)
        self.assertEqual(ev["enqueued"], N, ev)
        self.assertEqual(ev["verified"], N, ev)
        self.assertEqual(ev["attempt_failed"], 0, ev)
        # An interrupted attempt is started again (unless its device was
        # quicker and verified the job first); nothing else is.
        self.assertGreaterEqual(ev["attempt_started"], N, ev)
        self.assertLessEqual(ev["attempt_started"],
                             N + sum(recovered.values()), ev)
        self.assertLessEqual(sum(recovered.values()), kills * max_in_flight)

        # Duplicates: each belongs to a job a kill interrupted, at most
        # one per such kill, and carries the same renewal ID (a recovered
        # attempt is pushed again as it was).
        rid_job = dict(f.query("SELECT renewal_id, job_id FROM "
                               "job_renewal_ids"))
        self.assertEqual(set(per_rid), set(j[3] for j in jobs),
                         "pushed renewal IDs differ from the jobs'")
        self.assertEqual(len(rid_job), N, "a job got a second renewal ID")
        for rid, n in per_rid.items():
            self.assertLessEqual(n - 1, recovered.get(rid_job[rid], 0),
                                 "renewal ID %s pushed %d times, its job "
                                 "recovered %d times" % (
                                     rid, n, recovered.get(rid_job[rid],
                                                           0)))
        self.assertLessEqual(dups, kills * max_in_flight)
        self.assertEqual(torture.integrity_ok(f.db), [("ok",)])
        f.stop()
        return dups, kills


class Kill9Parallel(Kill9Scenario):

    def test_64_pushes_at_a_time_duplicates_only_of_recovered_jobs(self):
        self.run_kills(64)


if __name__ == "__main__":
    harness.main()
