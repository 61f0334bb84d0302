"""Given renewd killed with -9 while pushes are in flight, a restart
finishes every job: none is lost."""

import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

N = 5


class CrashRecovery(harness.RenewdTestCase):

    def test_kill9_during_pushes_loses_no_job(self):
        # Given a fleet of 5 due certificates and a hook that takes 3 s.
        f = self.fleet()
        f.hook.set_sleep(3)
        f.start()
        hosts = {f.add_host(10, serial="dev%d" % i)[0] for i in range(N)}
        self.assertEqual(len(hosts), N)

        # When a trigger starts the pushes and renewd is killed with -9
        # while the hooks are still running.
        t = f.trigger()
        self.assertEqual((t.get("due"), t.get("enqueued")), (N, N), t)
        harness.poll(lambda: len(f.hook.starts()) >= 1, 20,
                     "the first hook to start", f.log_tail)
        # Give the others up to 1.5 s to start too (the hook sleeps 3 s,
        # so the first one is still running).
        try:
            harness.poll(lambda: len(f.hook.starts()) >= N, 1.5,
                         "all hooks to start")
        except AssertionError:
            pass
        ends_before_kill = [i for i in f.hook.invocations()
                            if i["what"] == "end"]
        self.assertEqual(ends_before_kill, [],
                         "a hook finished before the kill; the test did "
                         "not kill renewd mid-push")
        killed_mid_push = {s["job"] for s in f.hook.starts()}
        rc = f.kill9()
        self.assertEqual(rc, -signal.SIGKILL)

        # Then, after a restart, all 5 jobs end pushed.
        f.start()
        jobs = f.wait_jobs(
            lambda js: len(js) >= N and all(j["state"] == "pushed"
                                            for j in js),
            "all %d jobs to be pushed after the restart" % N)
        self.assertEqual(len(jobs), N, jobs)
        self.assertEqual(len({j["id"] for j in jobs}), N)
        self.assertEqual({j["host_uuid"] for j in jobs}, hosts)
        # Every job was pushed by a hook run (killed runs may be repeated,
        # at most once per job for one kill).
        starts = f.hook.starts()
        self.assertGreaterEqual(len(starts), N)
        self.assertLessEqual(len(starts), 2 * N, starts)
        self.assertEqual({s["job"] for s in starts},
                         {str(j["id"]) for j in jobs})
        ok_ends = {i["job"] for i in f.hook.invocations()
                   if i["what"] == "end" and i["rc"] == "0"}
        self.assertEqual(ok_ends, {str(j["id"]) for j in jobs})
        for j in jobs:
            names = [e["event"] for e in f.job_show(j["id"])["events"]]
            self.assertIn("pushed", names)
            if str(j["id"]) in killed_mid_push:
                self.assertIn("recovered", names)
        f.stop()


if __name__ == "__main__":
    harness.main()
