"""Dispatch limits and policy changes: max_in_flight caps concurrent
pushes, a policy's rate_limit caps renewals started per period, and a
reloaded policy recomputes when each certificate is due."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def with_settings(text, daemon_line=None, policy_line=None,
                  renew_before=None):
    if daemon_line:
        text = text.replace("  log_level: debug\n",
                            "  log_level: debug\n  %s\n" % daemon_line)
    if policy_line:
        text = text.replace("    smear: 0s\n",
                            "    smear: 0s\n    %s\n" % policy_line)
    if renew_before:
        text = text.replace("    renew_before: 30d\n",
                            "    renew_before: %s\n" % renew_before)
    return text


def max_concurrency(invocations):
    live, peak = 0, 0
    for i in sorted(invocations, key=lambda i: (i["ms"], i["what"] != "end")):
        live += 1 if i["what"] == "start" else -1
        peak = max(peak, live)
    return peak


class Limits(harness.RenewdTestCase):

    def test_max_in_flight_caps_concurrent_pushes(self):
        # Given max_in_flight 2, a hook that takes 1 s and five due hosts.
        f = self.fleet()
        f.write_config(with_settings(f.config_text(),
                                     daemon_line="max_in_flight: 2"))
        f.hook.set_sleep(1)
        f.start()
        for _ in range(5):
            f.add_host(10)

        # When a scan enqueues them all...
        t = f.trigger()
        self.assertEqual((t["due"], t["enqueued"]), (5, 5), t)
        f.wait_jobs(lambda js: len(js) == 5 and
                    all(j["state"] == "pushed" for j in js),
                    "all five jobs pushed")

        # ...then never more than two hooks ran at once, and two did.
        inv = f.hook.invocations()
        self.assertEqual(len([i for i in inv if i["what"] == "start"]), 5)
        self.assertEqual(max_concurrency(inv), 2, inv)
        f.stop()

    def test_rate_limit_caps_renewals_per_period(self):
        # Given a policy limited to 2 renewals a minute and four due hosts.
        f = self.fleet()
        f.write_config(with_settings(f.config_text(),
                                     policy_line="rate_limit: 2/m"))
        f.start()
        for _ in range(4):
            f.add_host(10)

        # When they are enqueued, two are pushed...
        f.trigger()
        f.wait_jobs(lambda js: sum(j["state"] == "pushed" for j in js) == 2,
                    "two jobs pushed")
        # ...and the other two wait for the next minute's budget.
        time.sleep(1.5)
        jobs = f.jobs()
        states = sorted(j["state"] for j in jobs)
        self.assertEqual(states, ["pushed", "pushed", "queued", "queued"],
                         jobs)
        self.assertEqual(len(f.hook.starts()), 2)
        f.stop()

    def test_reloaded_policy_recomputes_due_times(self):
        # Given a certificate with 100 days left under renew_before 30d:
        # not due.
        f = self.fleet()
        f.start()
        host, imp = f.add_host(100)
        t = f.trigger()
        self.assertEqual(t["due"], 0, t)
        (cert,) = [c for c in f.certs_of(host) if c["state"] == "active"]
        before = harness.parse_rfc3339(cert["renew_at"])

        # When the policy changes to renew_before 120d and renewd reloads...
        f.write_config(with_settings(f.config_text(), renew_before="120d"))
        f.signal(__import__("signal").SIGHUP)
        f.wait_log("configuration reloaded")

        # ...then the certificate's renew_at moves 90 days earlier and it
        # is renewed without an operator trigger.
        (job,) = f.wait_jobs(lambda js: len(js) == 1 and
                             js[0]["state"] == "pushed",
                             "the now-due certificate to be pushed")
        self.assertEqual(job["host_uuid"], host)
        (old,) = [c for c in f.certs_of(host) if c["id"] == imp["id"]]
        after = harness.parse_rfc3339(old["renew_at"])
        self.assertEqual(before - after, 90 * 86400)
        f.stop()


if __name__ == "__main__":
    harness.main()
