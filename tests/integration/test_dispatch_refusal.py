"""A job the store refuses halfway through its attempt leaves nothing
behind and does not hold up the others.

A dispatch round prepares its jobs without a savepoint each (the usual
refusal, a job no longer queued, comes before any write). When a write
fails halfway through a job instead, the whole round rolls back and the
next rounds give each job a savepoint: the failing job is skipped, with
none of its half-written attempt kept, and every other job is pushed.
The failure is injected with a trigger that refuses one job's
attempt_started event, a write that comes after the job-start UPDATE.
"""

import json
import os
import sqlite3
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


class DispatchRefusal(harness.RenewdTestCase):

    def test_job_refused_halfway_leaves_nothing_and_others_go_on(self):
        # Given a fleet with six due certificates pushing to a webhook.
        rcv = self.receiver(202)
        f = self.fleet()
        f.mdm = ("  driver: webhook\n"
                 "  url: %s\n"
                 "  timeout: 10s\n" % json.dumps(rcv.url("/push")))
        f.write_config()
        f.start()
        hosts = [f.add_host(10, serial="dev%d" % i)[0] for i in range(6)]
        bad = hosts[3]

        # And a database that refuses the attempt_started event of the
        # job for one host, after its job-start UPDATE has run.
        db = sqlite3.connect(f.db, timeout=10)
        db.execute(
            "CREATE TRIGGER refuse_one BEFORE INSERT ON job_events "
            "WHEN NEW.event = 'attempt_started' AND NEW.job_id IN "
            "(SELECT id FROM renewal_jobs WHERE host_uuid = '%s') "
            "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END" % bad)
        db.commit()
        db.close()

        # When the operator triggers a scan.
        t = f.trigger()
        self.assertEqual((t.get("due"), t.get("enqueued")), (6, 6), t)

        # Then every other job is pushed, once.
        jobs = f.wait_jobs(
            lambda js: len(js) == 6 and sum(
                j["state"] == "pushed" for j in js) == 5,
            "the five other jobs to be pushed")
        pushed = [r for r in rcv.got() if r["path"] == "/push"]
        self.assertEqual(sorted(json.loads(r["body"])["host_uuid"]
                                for r in pushed),
                         sorted(h for h in hosts if h != bad))

        # And the refused job is still queued with nothing of the
        # attempt kept: no attempt counted, no renewal ID, no token.
        (j,) = [j for j in jobs if j["host_uuid"] == bad]
        self.assertEqual(j["state"], "queued", j)
        db = sqlite3.connect(f.db, timeout=10)
        row = db.execute(
            "SELECT attempts, renewal_id, "
            "(SELECT COUNT(*) FROM job_renewal_ids WHERE job_id = r.id), "
            "(SELECT COUNT(*) FROM scep_tokens WHERE job_id = r.id), "
            "(SELECT COUNT(*) FROM job_events WHERE job_id = r.id AND "
            " event = 'attempt_started') "
            "FROM renewal_jobs r WHERE host_uuid = ?", (bad,)).fetchone()
        db.close()
        self.assertEqual(row, (0, None, 0, 0, 0))

        # The first round was rolled back whole and said why.
        log = f.wait_log("cannot start attempts")
        self.assertIn("refused by the test", log)


if __name__ == "__main__":
    harness.main()
