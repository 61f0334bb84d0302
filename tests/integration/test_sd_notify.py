"""renewd under a service manager: given NOTIFY_SOCKET (and WATCHDOG_USEC)
as systemd sets them for Type=notify, renewd says READY=1 once it can be
reached, keeps a STATUS= line with the last scan, pings the watchdog from
its loop, brackets reloads with RELOADING=1/READY=1, and says STOPPING=1
on SIGTERM. Without NOTIFY_SOCKET nothing of this happens or breaks."""

import os
import re
import signal
import socket
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

WATCHDOG_USEC = 200000  # a ping every 100 ms
STATUS_RE = re.compile(
    r"^last scan \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ: (\d+) due, (\d+) "
    r"enqueued, [0-9.]+ ms; \d+ jobs in flight")


def tcp_accepts(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(1.0)
        try:
            s.connect(("127.0.0.1", port))
        except OSError:
            return False
    return True


def reload_start(lines):
    """The first message after a SIGHUP that is not the loop's own:
    a watchdog ping or a status line may be sent between the test's
    count of the messages and renewd's handling of the signal."""
    for ln in lines:
        if ln != "WATCHDOG=1" and not ln.startswith("STATUS="):
            return ln
    return None


class Notify:
    """The service manager's end: a datagram socket renewd is told about.
    Every message is kept with its arrival time; when one says READY=1 the
    listener looks, right then, whether renewd's control socket and HTTP
    port accept connections."""

    def __init__(self, fleet, abstract=False):
        self.fleet = fleet
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = "renewd-it-%s" % uuid.uuid4().hex
            self.sock.bind("\0" + name)
            self.env_value = "@" + name
        else:
            path = os.path.join(fleet.dir, "notify")
            self.sock.bind(path)
            self.env_value = path
        self.sock.settimeout(0.1)
        self.lock = threading.Lock()
        self.msgs = []  # {"t", "text", "ctl", "http"}
        self.done = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.done:
            try:
                data = self.sock.recv(8192)
            except socket.timeout:
                continue
            except OSError:
                return
            text = data.decode("utf-8", "replace")
            m = {"t": time.monotonic(), "text": text}
            if "READY=1" in text.split("\n"):
                m["ctl"] = self.fleet._socket_accepts()
                m["http"] = tcp_accepts(self.fleet.http_port)
            with self.lock:
                self.msgs.append(m)

    def env(self, watchdog_usec=WATCHDOG_USEC, **extra):
        e = {"NOTIFY_SOCKET": self.env_value}
        if watchdog_usec is not None:
            e["WATCHDOG_USEC"] = str(watchdog_usec)
        e.update(extra)
        return e

    def all(self):
        with self.lock:
            return list(self.msgs)

    def lines(self):
        """Every KEY=VALUE line in arrival order."""
        return [ln for m in self.all() for ln in m["text"].split("\n")]

    def count(self, line):
        return sum(1 for ln in self.lines() if ln == line)

    def statuses(self):
        return [ln[len("STATUS="):] for ln in self.lines()
                if ln.startswith("STATUS=")]

    def wait(self, cond, what, timeout=harness.JOB_TIMEOUT):
        return harness.poll(
            lambda: cond(self), timeout, what,
            lambda: "notifications so far: %r\n%s" % (
                [m["text"] for m in self.all()], self.fleet.log_tail()))

    def close(self):
        self.done = True
        self.thread.join(2)
        self.sock.close()


class SdNotify(harness.RenewdTestCase):

    def listener(self, fleet, **kw):
        n = Notify(fleet, **kw)
        self.addCleanup(n.close)
        return n

    def test_ready_status_watchdog_reload_stopping(self):
        # Given a fleet with one certificate due for renewal, and renewd
        # started by a "service manager" with a 200 ms watchdog.
        f = self.fleet()
        f.start()
        host, _ = f.add_host(10, serial="devA")
        f.stop()
        n = self.listener(f)
        f.start(env=n.env())

        # Then READY=1 arrives exactly once, when the control socket and
        # the HTTP server already accept connections.
        n.wait(lambda n: n.count("READY=1") >= 1, "READY=1")
        ready = [m for m in n.all() if "READY=1" in m["text"].split("\n")]
        self.assertEqual(len(ready), 1, n.all())
        self.assertTrue(ready[0]["ctl"], "READY=1 before the control "
                        "socket accepted")
        self.assertTrue(ready[0]["http"], "READY=1 before the HTTP "
                        "server accepted")

        # And the status line reports the scan that found the due
        # certificate (refreshed every 2 s).
        def scanned(n):
            for s in n.statuses():
                m = STATUS_RE.match(s)
                if m and m.group(1) == "1" and m.group(2) == "1":
                    return s
            return None
        n.wait(scanned, "STATUS= naming a scan with 1 due, 1 enqueued")

        # And the watchdog is pinged from the loop every ~100 ms.
        n.wait(lambda n: n.count("WATCHDOG=1") >= 5, "5 x WATCHDOG=1",
               timeout=10)
        pings = [m["t"] for m in n.all() if m["text"] == "WATCHDOG=1"]
        gaps = [b - a for a, b in zip(pings, pings[1:])]
        self.assertLess(max(gaps), 0.2 * 0.9 + 0.5,
                        "watchdog gaps %r" % gaps)
        self.assertGreater(sum(gaps) / len(gaps), 0.05,
                           "watchdog pinged too often: %r" % gaps)

        # And the push hook, a child of renewd, did not inherit the
        # notify socket or the watchdog.
        f.wait_jobs(lambda js: any(j["state"] == "pushed" for j in js),
                    "the job pushed")
        pushes = f.hook.pushes()
        self.assertEqual(len(pushes), 1)
        self.assertEqual(pushes[0]["env"].get("HOST_UUID"), host)
        for k in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
            self.assertNotIn(k, pushes[0]["env"])

        # When the configuration is reloaded with a broken file.
        before = len(n.lines())
        f.write_config("daemon: [\n")
        f.signal(signal.SIGHUP)

        # Then RELOADING=1 (with MONOTONIC_USEC) and READY=1 bracket it,
        # and the status says the old configuration was kept.
        def after_reload(n, want):
            new = n.lines()[before:]
            if "READY=1" not in new:
                return None
            sts = [ln[len("STATUS="):] for ln in new
                   if ln.startswith("STATUS=")]
            return new if any(want(s) for s in sts) else None
        new = n.wait(lambda n: after_reload(
            n, lambda s: "last reload failed" in s),
            "READY=1 and a STATUS= about the failed reload")
        self.assertEqual(reload_start(new), "RELOADING=1", new)
        self.assertRegex(new[new.index("RELOADING=1") + 1],
                         r"^MONOTONIC_USEC=\d+$")
        self.assertLess(new.index("RELOADING=1"), new.index("READY=1"))

        # When the good configuration comes back and is reloaded.
        before = len(n.lines())
        f.write_config()
        f.signal(signal.SIGHUP)

        # Then READY=1 again and a status without the note.
        new = n.wait(lambda n: after_reload(
            n, lambda s: STATUS_RE.match(s) and "reload failed" not in s),
            "READY=1 and a STATUS= after the good reload")
        self.assertEqual(reload_start(new), "RELOADING=1", new)
        f.wait_log("configuration reloaded")

        # When SIGTERM arrives.
        f.stop()

        # Then STOPPING=1 was the last word, after every READY=1, and
        # renewd closed every handle (checked by stop()).
        n.wait(lambda n: n.count("STOPPING=1") == 1, "STOPPING=1",
               timeout=5)
        lines = n.lines()
        stop_at = lines.index("STOPPING=1")
        self.assertEqual([ln for ln in lines[stop_at:]
                          if ln in ("READY=1", "RELOADING=1")], [])
        self.assertEqual(lines.count("READY=1"), 3, lines)

    def test_watchdog_of_another_pid_is_not_pinged(self):
        # Given WATCHDOG_PID naming another process (a parent that set up
        # the watchdog for itself).
        f = self.fleet()
        n = self.listener(f)

        # When renewd starts with it.
        f.start(env=n.env(WATCHDOG_PID="1"))

        # Then it still says READY=1 but never pings.
        n.wait(lambda n: n.count("READY=1") == 1, "READY=1")
        time.sleep(0.6)
        self.assertEqual(n.count("WATCHDOG=1"), 0, n.lines())
        f.stop()
        self.assertEqual(n.count("STOPPING=1"), 1, n.lines())

    def test_once_says_ready_then_stopping(self):
        # Given a fleet with one due certificate and an abstract notify
        # socket.
        f = self.fleet()
        f.start()
        f.add_host(10, serial="devA")
        f.stop()
        n = self.listener(f, abstract=True)

        # When renewd runs once under it.
        rc, out = f.run_renewd(["--once"], env=n.env())

        # Then it exits 0 after READY=1 and then STOPPING=1.
        self.assertEqual(rc, 0, out)
        n.wait(lambda n: "STOPPING=1" in n.lines(), "STOPPING=1",
               timeout=5)
        lines = [ln for ln in n.lines() if ln in ("READY=1", "STOPPING=1")]
        self.assertEqual(lines, ["READY=1", "STOPPING=1"], n.lines())
        self.assertEqual(len(f.hook.pushes()), 1, out)
        self.assertNotIn("handles still open", out)

    def test_without_notify_socket_nothing_changes(self):
        # Given a fleet started without NOTIFY_SOCKET (the harness never
        # passes one on) and a socket nobody told renewd about.
        f = self.fleet()
        n = self.listener(f)
        f.start(env={"WATCHDOG_USEC": str(WATCHDOG_USEC)})

        # Then renewd works as always, and the socket hears nothing.
        f.add_host(10, serial="devA")
        doc = f.trigger()
        self.assertEqual(doc.get("due"), 1, doc)
        self.assertEqual(f.ctl("status")["daemon"]["pid"], f.proc.pid)
        time.sleep(0.5)
        f.stop()
        self.assertEqual(n.all(), [])
        self.assertNotIn("systemd", f.log_text())

    def test_notify_socket_nobody_listens(self):
        # Given NOTIFY_SOCKET naming a path where nothing listens.
        f = self.fleet()
        gone = os.path.join(f.dir, "no-such-notify")

        # When renewd starts, runs and stops.
        f.start(env={"NOTIFY_SOCKET": gone,
                     "WATCHDOG_USEC": str(WATCHDOG_USEC)})
        f.add_host(10, serial="devA")
        self.assertEqual(f.trigger().get("due"), 1)
        time.sleep(0.5)
        f.stop()

        # Then it logged the problem once and ran normally.
        log = f.log_text()
        self.assertEqual(log.count("cannot notify systemd"), 1, log)


if __name__ == "__main__":
    harness.main()
