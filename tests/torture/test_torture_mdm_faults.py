"""Torture 2: the MDM endpoint fails 30% of pushes with HTTP 500 and lets
10% time out (it answers only after mdm.timeout has passed). Every renewal
still completes; every failure is in the job's outcome log with its
cause; each retry waits the policy's backoff: initial doubling to max,
with equal jitter (between half and all of it).

short (make test): 100 certificates. full (make torture): 2,000.
Policy: backoff 1s..8s, max_attempts 20 (a job fails all 20 attempts
with probability 0.4^20, about 1e-8), mdm.timeout 1s, the receiver hangs
2.5 s on a "timeout".

The jitter bounds are checked exactly: renewd logs each retry's
retry_at, and the attempt_failed event holds the same second, so
retry_at - failed_at is the backoff it drew, which must lie in
[d - d/2, d] for d = min(initial * 2^(attempt-1), max). The next
attempt_started must not come before retry_at (and its lag after it is
reported and bounded: it includes waiting for a free slot).
"""

import collections
import os
import re
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torture  # noqa: E402
from torture import harness  # noqa: E402

N = torture.size(100, 2000)
INITIAL, MAXB = 1, 8
MAX_ATTEMPTS = 20
WAIT = torture.size(150, 900)
# s between retry_at and the attempt actually starting: a due retry waits
# for a free slot (max_in_flight 64) behind the jobs due before it, and the
# full run starts with a backlog of 2,000 (the MDM takes ~70 pushes/s).
# A broken wake timer shows as retries that wait for the next scan (1 h).
MAX_LAG = torture.size(5, 30)


def backoff_range(attempt):
    d = INITIAL
    for _ in range(1, attempt):
        if d >= MAXB:
            break
        d *= 2
    d = min(d, MAXB)
    return d - d // 2, d


class MdmFaultTorture(harness.RenewdTestCase):

    def test_failing_and_hanging_mdm_every_renewal_completes(self):
        seed = torture.seed()
        rng = torture.rand(seed)
        lock = threading.Lock()

        def decide(body):
            with lock:
                r = rng.random()
            return "500" if r < 0.30 else "timeout" if r < 0.40 else "ok"

        # Given N due certificates and an MDM that fails 30% of pushes
        # with 500 and hangs past the timeout on 10%.
        ca = torture.FastCA()
        f = torture.TortureFleet(max_attempts=MAX_ATTEMPTS,
                                 backoff=("%ds" % INITIAL, "%ds" % MAXB))
        self._fleets.append(f)
        self.addCleanup(f.close)
        ver = torture.Verifier(f, ca, workers=4)
        self.addCleanup(ver.stop)
        rcv = torture.PushReceiver(on_ok=ver.on_push, decide=decide,
                                   hang=2.5)
        self.addCleanup(rcv.close)
        f.mdm = rcv.mdm_yaml(timeout="1s")
        f.write_config()
        f.start()
        hosts = torture.import_initial(f, ca, N, ver)

        # When a scan enqueues them all...
        t0 = time.monotonic()
        t = f.trigger()
        self.assertEqual((t["due"], t["enqueued"]), (N, N), t)

        # ...then every job ends verified, none failed.
        def done():
            c = f.job_counts()
            if c.get("failed") or c.get("cancelled"):
                raise AssertionError("jobs ended badly: %r" % c)
            return c.get("verified", 0) == N
        harness.poll(done, WAIT, "%d verified jobs" % N,
                     lambda: "jobs: %r\n%s" % (f.job_counts(),
                                               f.log_tail()),
                     interval=0.25)
        wall = time.monotonic() - t0
        ver.wait_idle(30)
        pushes = rcv.got()
        by_rid = {}
        for p in pushes:
            self.assertNotIn(p.rid, by_rid, "renewal ID pushed twice")
            by_rid[p.rid] = p
        outcomes = collections.Counter(p.outcome for p in pushes)

        # Each job's outcome log: one attempt per push the MDM saw, each
        # failure recorded with its cause.
        events = collections.defaultdict(list)
        for jid, at, ev, detail in f.query(
                "SELECT job_id, at, event, detail FROM job_events "
                "ORDER BY id"):
            events[jid].append((at, ev, detail or ""))
        retry_log = collections.defaultdict(list)
        with open(f.log, errors="replace") as fh:
            for line in fh:
                if "attempt failed, will retry" in line:
                    kv = torture.parse_logfmt(line)
                    retry_log[int(kv["job"])].append(
                        int(harness.parse_rfc3339(kv["retry_at"])))
        failures = late_ok = 0
        max_attempts = 0
        draws = collections.defaultdict(set)  # d -> backoffs drawn
        lags = []
        for jid, evs in events.items():
            attempts = []  # [(attempt no, rid, started at, end event)]
            for i, (at, ev, detail) in enumerate(evs):
                if ev == "attempt_started":
                    m = re.match(r"attempt (\d+) renewal_id (\S+)", detail)
                    self.assertTrue(m, detail)
                    attempts.append([int(m.group(1)), m.group(2), at,
                                     None])
                elif ev in ("attempt_failed", "pushed", "verified") and \
                        attempts and attempts[-1][3] is None:
                    attempts[-1][3] = (at, ev, detail)
            self.assertEqual(evs[-1][1], "verified", (jid, evs))
            max_attempts = max(max_attempts, len(attempts))
            self.assertEqual([a[0] for a in attempts],
                             list(range(1, len(attempts) + 1)), evs)
            retries = iter(retry_log[jid])
            for k, (no, rid, started, end) in enumerate(attempts):
                p = by_rid.get(rid)
                self.assertIsNotNone(p, "attempt %s of job %d never "
                                     "reached the MDM" % (rid, jid))
                self.assertEqual(p.job, jid)
                self.assertIsNotNone(end, (jid, evs))
                at, ev, detail = end
                if p.outcome == "500":
                    self.assertEqual((ev, detail.startswith("http 500")),
                                     ("attempt_failed", True), (jid, evs))
                elif p.outcome == "timeout":
                    self.assertEqual((ev, detail), ("attempt_failed",
                                                    "timed out after 1s"),
                                     (jid, evs))
                    # the attempt was given up after mdm.timeout (whole
                    # seconds: 1 s, +1 for the tick)
                    self.assertLessEqual(at - started, 3, (jid, evs))
                elif ev == "attempt_failed":
                    # an "ok" answer that came too late under load
                    self.assertEqual(detail, "timed out after 1s")
                    late_ok += 1
                else:
                    self.assertIn(ev, ("pushed", "verified"), (jid, evs))
                    self.assertEqual(k, len(attempts) - 1, (jid, evs))
                    continue
                failures += 1
                # The backoff drawn for this retry and its jitter bounds.
                retry_at = next(retries)
                b = retry_at - at
                lo, hi = backoff_range(no)
                self.assertTrue(lo <= b <= hi, "job %d attempt %d: backoff "
                                "%d s outside [%d, %d]" % (jid, no, b, lo,
                                                           hi))
                draws[hi].add(b)
                nxt = attempts[k + 1][2]
                self.assertGreaterEqual(nxt, retry_at, (jid, evs))
                lags.append(nxt - retry_at)
            self.assertIsNone(next(retries, None), jid)
        self.assertEqual(len(events), N)
        fail_pushes = outcomes["500"] + outcomes["timeout"]
        self.assertEqual(failures, fail_pushes + late_ok)
        self.assertEqual(sum(len(v) for v in retry_log.values()), failures)
        self.assertEqual(outcomes["ok"], N + late_ok)

        # The show command an operator reads has every failure too.
        worst = max(events, key=lambda j: len(events[j]))
        shown = f.job_show(worst)["events"]
        self.assertEqual(
            [e["detail"] for e in shown if e["event"] == "attempt_failed"],
            [d for _, ev, d in events[worst] if ev == "attempt_failed"])

        torture.summary("MDM failing 30% (500) and timing out 10%", [
            ("certificates renewed", N),
            ("pushes seen by the MDM", len(pushes)),
            ("  answered 500", outcomes["500"]),
            ("  timed out", outcomes["timeout"]),
            ("  accepted", outcomes["ok"]),
            ("  accepted too late (timed out)", late_ok),
            ("failed attempts recorded", failures),
            ("most attempts of one job", max_attempts),
            ("backoffs drawn (d: values)", "; ".join(
                "%d: %s" % (d, ",".join(map(str, sorted(v))))
                for d, v in sorted(draws.items()))),
            ("retry start lag s (median, max)", "%d, %d" % (
                sorted(lags)[len(lags) // 2] if lags else 0,
                max(lags) if lags else 0)),
            ("wall time s", wall),
            ("seed", seed)])

        self.assertGreater(outcomes["500"], 0)
        self.assertGreater(outcomes["timeout"], 0)
        self.assertLessEqual(max(lags), MAX_LAG)
        # the jitter is random, not a constant: both halves were drawn
        for d, v in draws.items():
            if d >= 2 and len(v) == 1 and torture.full():
                self.fail("backoff %d always drew %s" % (d, v))
        self.assertEqual(torture.integrity_ok(f.db), [("ok",)])
        self.assertEqual(sorted(h for h in hosts),
                         sorted(r[0] for r in f.query(
                             "SELECT host_uuid FROM renewal_jobs")))
        f.stop()


if __name__ == "__main__":
    harness.main()
