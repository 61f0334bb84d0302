#!/usr/bin/env python3
"""Renewal throughput: N due certificates (default 100,000) rendered,
pushed with the webhook MDM driver to a local HTTP sink and recorded, until
every job is 'pushed'. Printed beside the target (>= 10,000 renewals/s on
2 cores) and beside the sink's own ceiling, measured with wrk in the same
run with a body of the same size.

The sink (tests/bench/sink.c) is one epoll thread answering 202. renewd
runs on the release build with its defaults (log_level info, so one
"profile pushed" line per job) and max_in_flight as given.

    bench_throughput.py [--certs N] [--max-in-flight M] [--runs R]
"""

import argparse
import os
import sqlite3
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402

T_DUE = 2000000000
LEAD = 10


def tool(name):
    return os.path.join(bl.build_dir(), "tests", "bench", name)


class Sink:
    def __init__(self, d, dump=None):
        self.port = bl.free_port()
        argv = [tool("bench-sink"), "--listen", "127.0.0.1:%d" % self.port]
        if dump:
            argv += ["--dump", dump]
        self.out = os.path.join(d, "sink.out")
        self.proc = subprocess.Popen(argv, stdout=open(self.out, "w"),
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with open(self.out) as f:
                if "listening" in f.read():
                    return
            time.sleep(0.02)
        sys.exit("bench: sink did not start")

    def url(self):
        return "http://127.0.0.1:%d/push" % self.port

    def cpu_ms(self):
        with open("/proc/%d/schedstat" % self.proc.pid) as f:
            return int(f.read().split()[0]) / 1e6

    def stop(self):
        """(requests served, connections accepted), -1 when not printed"""
        self.proc.terminate()
        self.proc.wait(10)
        got = {"requests": -1, "connections": -1}
        with open(self.out) as f:
            for line in f:
                k, _, v = line.partition(" ")
                if k in got:
                    got[k] = int(v)
        return got["requests"], got["connections"]


def wrk_ceiling(d, url, body_len, conns, seconds=5):
    """Requests/s wrk gets from the sink: POST, same body size, `conns`
    keep-alive connections, one wrk thread (renewd has one loop)."""
    lua = os.path.join(d, "post.lua")
    with open(lua, "w") as f:
        f.write('wrk.method = "POST"\n'
                'wrk.headers["Content-Type"] = "application/json"\n'
                'wrk.body = string.rep("x", %d)\n' % body_len)
    p = subprocess.run(["wrk", "-t1", "-c%d" % conns, "-d%ds" % seconds,
                        "-s", lua, url], stdout=subprocess.PIPE, text=True)
    for line in p.stdout.splitlines():
        if line.startswith("Requests/sec:"):
            return float(line.split()[1])
    sys.exit("bench: wrk printed no rate:\n" + p.stdout)


def pushed_count(db):
    c = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=30)
    try:
        return c.execute("SELECT COUNT(*) FROM renewal_jobs WHERE "
                         "state = 'pushed'").fetchone()[0]
    finally:
        c.close()


def one_run(d, tmpl, n, mif):
    db = os.path.join(d, "renewd.db")
    bl.copy_db(tmpl, db)
    sink = Sink(d)
    cfg = bl.renewd_config(
        d, "  driver: webhook\n  url: %s\n  timeout: 30s\n" % sink.url(),
        bl.free_port(), "http://127.0.0.1:%d/scep" % bl.free_port(),
        max_in_flight=mif)
    r = bl.renewd_at_due(d, cfg, T_DUE, LEAD)
    try:
        run0, wait0 = r.schedstat()
        th0 = r.thread_cpu_ns()
        s0 = sink.cpu_ms()
        t0 = time.monotonic()
        scan = r.call("trigger")
        t_scan = time.monotonic() - t0
        done = 0
        while done < n:
            time.sleep(0.2)
            done = pushed_count(db)
            if r.proc.poll() is not None:
                sys.exit("bench: renewd died:\n" + r.tail())
            if time.monotonic() - t0 > 1800:
                bl.note("gave up after 30 min: %d of %d pushed" % (done, n))
                break
        elapsed = time.monotonic() - t0
        run1, wait1 = r.schedstat()
        th1 = r.thread_cpu_ns()
        s1 = sink.cpu_ms()
        hwm = r.hwm_kib()
    finally:
        r.stop()
        got, conns = sink.stop()
    return {"elapsed": elapsed, "pushed": done, "scan_s": t_scan,
            "scan": scan, "cpu_s": (run1 - run0) / 1e9,
            "runq_s": (wait1 - wait0) / 1e9, "sink_cpu_s": (s1 - s0) / 1e3,
            "sink_requests": got, "sink_conns": conns, "hwm": hwm,
            "threads_s": {k: (th1[k] - th0.get(k, 0)) / 1e9 for k in th1
                          if k != "renewd"}}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--certs", type=int, default=100000)
    ap.add_argument("--max-in-flight", type=int, default=64)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--body", type=int, default=0,
                    help="webhook body bytes for wrk (default: measured)")
    a = ap.parse_args()
    d = bl.workdir("throughput")
    print("## Renewal throughput: %d due certificates, webhook driver, "
          "max_in_flight %d" % (a.certs, a.max_in_flight))
    print()
    print("machine: %s" % bl.machine())

    # One push, dumped, gives the real webhook body size.
    cfg = bl.renewd_config(d, "  driver: exec\n  command: [/bin/true]\n",
                           bl.free_port(), "http://127.0.0.1:1/scep")
    bl.init_db(d, cfg)
    db = os.path.join(d, "renewd.db")
    t0 = time.monotonic()
    bl.sqlite(db, bl.fill_sql(a.certs, a.certs, T_DUE, T_DUE - 86400,
                              "clustered"))
    tmpl = os.path.join(d, "template.db")
    os.rename(db, tmpl)
    bl.note("filled %d due certificates in %.1f s" % (
        a.certs, time.monotonic() - t0))
    body = a.body
    if not body:
        dump = os.path.join(d, "bodies.jsonl")
        sub = os.path.join(d, "probe")
        os.mkdir(sub)
        sink = Sink(sub, dump)
        cfg = bl.renewd_config(
            sub, "  driver: webhook\n  url: %s\n" % sink.url(),
            bl.free_port(), "http://127.0.0.1:1/scep")
        bl.init_db(sub, cfg)
        bl.sqlite(os.path.join(sub, "renewd.db"),
                  bl.fill_sql(1, 1, 1, 1, "clustered"))
        r = bl.Renewd(sub, cfg)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (
                os.path.exists(dump) and os.path.getsize(dump) > 0):
            time.sleep(0.05)
        r.stop()
        sink.stop()
        with open(dump, "rb") as f:
            body = len(f.readline().rstrip(b"\n"))
    bl.note("webhook body: %d bytes" % body)

    rows = []
    for i in range(a.runs):
        # the peer, measured right before renewd, on an idle sink
        sink = Sink(d)
        ceiling = wrk_ceiling(d, sink.url(), body, a.max_in_flight)
        sink.stop()
        res = one_run(d, tmpl, a.certs, a.max_in_flight)
        rate = res["pushed"] / res["elapsed"]
        bl.note("run %d: %d pushed in %.2f s (%.0f/s; scan %.2f s), renewd "
                "CPU %.2f s (+%.2f s waiting for a CPU), sink CPU %.2f s, "
                "sink requests %d on %d connections, peak RSS %d KiB; wrk "
                "ceiling %.0f/s; load %s" % (
                    i + 1, res["pushed"], res["elapsed"], rate,
                    res["scan_s"], res["cpu_s"], res["runq_s"],
                    res["sink_cpu_s"], res["sink_requests"],
                    res["sink_conns"], res["hwm"],
                    ceiling, bl.loadavg()))
        rows.append(["renewals/s, run %d (%d in %.1f s)" % (
            i + 1, res["pushed"], res["elapsed"]), "%.0f" % rate,
            "10,000/s", bl.ratio(rate, 10000), "%.0f/s" % ceiling,
            bl.ratio(rate, ceiling)])
        rows.append(["  of which the scan", "%.2f s" % res["scan_s"], "", "",
                     "", ""])
        per = 1e6 / max(res["pushed"], 1)
        rows.append(["  renewd CPU per renewal, loop thread", "%.0f us" % (
            res["cpu_s"] * per), "", "", "", ""])
        for name, sec in sorted(res["threads_s"].items()):
            rows.append(["  renewd CPU per renewal, %s thread" % name,
                         "%.0f us" % (sec * per), "", "", "", ""])
        rows.append(["  sink CPU per renewal", "%.0f us" % (
            res["sink_cpu_s"] * per), "", "", "", ""])
        rows.append(["  renewd peak RSS", "%.1f MiB" % (res["hwm"] / 1024.0),
                     "", "", "", ""])
    bl.table("renewal throughput (renewd, release build)",
             ["what", "measured", "target", "ratio", "sink ceiling (wrk)",
              "ratio"], rows)
    print()
    print("load after: %s" % bl.loadavg())
    subprocess.run(["rm", "-rf", d])
    return 0


if __name__ == "__main__":
    sys.exit(main())
