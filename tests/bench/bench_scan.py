#!/usr/bin/env python3
"""Scan benchmark: a store of N managed certificates (default 1,000,000)
spread over a year, D of them due (default 10,000). Measures, in renewd:
the scan that enqueues the D jobs, a scan with nothing due, and renewd's
peak RSS, against the targets (<= 100 ms, <= 5 ms, <= 64 MiB).

The database is filled with the sqlite3 CLI (recursive CTE) after renewd
created the schema, once per layout, and copied fresh for every run. The
due certificates become due a few seconds after renewd started (its clock
is moved with RENEWD_TIME_OFFSET), so the start-up work (the policy
recompute over every certificate) is finished, and nothing else runs, when
the benchmark triggers the scan over the control socket; the scan time is
the daemon's own (`duration_ms` of the reply, the same figure as the log's
"scan done ... duration_ms="). max_in_flight is 1 and the push hook is
/bin/true, so dispatch does not mix in.

    bench_scan.py [--certs N] [--due D] [--runs R] [--layout clustered|scattered|both]
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402

T_DUE = 2000000000  # renew_at of the due certificates (virtual time)
LEAD = 15  # seconds between renewd's start and the due time


def make_template(d, n, due, layout):
    cfg = config(d)
    bl.init_db(d, cfg)
    db = os.path.join(d, "renewd.db")
    t0 = time.monotonic()
    bl.sqlite(db, bl.fill_sql(n, due, T_DUE, T_DUE - 86400, layout))
    tmpl = os.path.join(d, "template-%s.db" % layout)
    os.rename(db, tmpl)
    bl.note("filled %d certificates (%s) in %.1f s" % (
        n, layout, time.monotonic() - t0))
    return tmpl


def config(d):
    return bl.renewd_config(
        d, "  driver: exec\n  command: [/bin/true]\n  timeout: 30s\n",
        bl.free_port(), "http://127.0.0.1:%d/scep" % bl.free_port(),
        max_in_flight=1)


def one_run(d, tmpl, due, empties=9):
    db = os.path.join(d, "renewd.db")
    bl.copy_db(tmpl, db)
    cfg = config(d)
    r = bl.renewd_at_due(d, cfg, T_DUE, LEAD)
    try:
        run0, wait0 = r.schedstat()
        full = r.call("trigger")
        run1, wait1 = r.schedstat()
        full["cpu_ms"] = (run1 - run0) / 1e6
        full["runq_ms"] = (wait1 - wait0) / 1e6
        if full.get("due") != due:
            bl.note("scan saw %r due, want %d: %s" % (full.get("due"), due,
                                                       full))
        empty = [r.call("trigger")["duration_ms"] for _ in range(empties)]
        hwm = r.hwm_kib()
    finally:
        r.stop()
    return full, empty, hwm


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--certs", type=int, default=1000000)
    ap.add_argument("--due", type=int, default=10000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--layout", default="both",
                    choices=("clustered", "scattered", "both"))
    a = ap.parse_args()
    layouts = ("clustered", "scattered") if a.layout == "both" else (a.layout,)
    d = bl.workdir("scan")
    print("## Scan: %d certificates, %d due" % (a.certs, a.due))
    print()
    print("machine: %s" % bl.machine())
    rows = []
    for layout in layouts:
        tmpl = make_template(d, a.certs, a.due, layout)
        fulls, cpus, waits, empties, hwms = [], [], [], [], []
        for i in range(a.runs):
            res, empty, hwm = one_run(d, tmpl, a.due)
            full = res["duration_ms"]
            bl.note("%s run %d: scan %.1f ms (%s enqueued; renewd on a CPU "
                    "%.1f ms, waiting for one %.1f ms), empty %.3f ms, "
                    "peak RSS %d KiB, load %s" % (
                        layout, i + 1, full, res.get("enqueued"),
                        res["cpu_ms"], res["runq_ms"], bl.median(empty), hwm,
                        bl.loadavg()))
            fulls.append(full)
            cpus.append(res["cpu_ms"])
            waits.append(res["runq_ms"])
            empties.extend(empty)
            hwms.append(hwm)
        os.unlink(tmpl)
        fm = bl.median(fulls)
        em = bl.median(empties)
        hm = max(hwms) / 1024.0
        rows.append(["scan enqueuing %d (%s), median of %d" % (
            a.due, layout, a.runs), "%.1f ms" % fm, "100 ms",
            bl.ratio(fm, 100)])
        rows.append(["  min / max", "%.1f / %.1f ms" % (min(fulls),
                                                        max(fulls)),
                     "", ""])
        rows.append(["  renewd on a CPU during it (median)",
                     "%.1f ms" % bl.median(cpus), "100 ms",
                     bl.ratio(bl.median(cpus), 100)])
        rows.append(["  renewd waiting for a CPU (median)",
                     "%.1f ms" % bl.median(waits), "", ""])
        rows.append(["scan with nothing due (%s), median of %d" % (
            layout, len(empties)), "%.3f ms" % em, "5 ms", bl.ratio(em, 5)])
        rows.append(["renewd peak RSS (%s)" % layout, "%.1f MiB" % hm,
                     "64 MiB", bl.ratio(hm, 64)])
    bl.table("scan (renewd, release build)",
             ["what", "measured", "target", "ratio"], rows)
    print()
    print("load after: %s" % bl.loadavg())
    for f in os.listdir(d):
        os.unlink(os.path.join(d, f))
    os.rmdir(d)
    return 0


if __name__ == "__main__":
    sys.exit(main())
