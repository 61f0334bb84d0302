#!/usr/bin/env python3
"""End to end: N devsim devices (default 1,000) enroll through renewd's
SCEP proxy against micromdm scepserver, then every certificate is renewed
the same way, each renewal verified by the device's CertificateList.
Prints the wall time and the renewals per second of the renewal phase (and
of the first enrollment), where the CPU time went (renewd, scepserver,
devsim, and devsim's child processes: one scepclient per enrollment), and
the cost of one device's key generation and scepclient run measured alone.
With N below 10,000 the time for 10,000 is extrapolated, and labelled so.

The devices take their RSA 2048 keys from devsim's key pool (--key-pool):
POOL keys kept in BUILD/bench-keys, generated on first use (the time is
printed apart from the phases) and reused by later runs. A key generation
costs 350 ms of CPU, and per enrollment it was 87% of the whole run's CPU;
renewd never sees a device's private key, and every enrollment still makes
a CSR of its own with scepclient. --fresh-keys runs `openssl genrsa` per
enrollment as before, for comparison.

    bench_e2e.py [--devices N] [--concurrency C] [--key-pool-size POOL]
                 [--fresh-keys]
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import plistlib
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402
from bench_proxy import start_scepserver  # noqa: E402

HMAC_KEY = "bench-hmac-key"
API_KEY = "bench-nano-key"
TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid):
    """(own CPU s, reaped children's CPU s) of a live process."""
    with open("/proc/%d/stat" % pid) as f:
        p = f.read().rsplit(")", 1)[1].split()
    return ((int(p[11]) + int(p[12])) / TICK,
            (int(p[13]) + int(p[14])) / TICK)


def post_webhooks(url, udids, threads=4):
    """A signed TokenUpdate for each device (as NanoMDM would send)."""
    todo = list(udids)
    lock = threading.Lock()
    errors = []

    def worker():
        while True:
            with lock:
                if not todo:
                    return
                udid = todo.pop()
            payload = {"MessageType": "TokenUpdate", "UDID": udid,
                       "SerialNumber": "SN" + udid.replace("-", "")}
            body = json.dumps({
                "topic": "mdm.TokenUpdate", "event_id": str(uuid.uuid4()),
                "created_at": "2026-01-01T00:00:00Z",
                "checkin_event": {"udid": udid, "raw_payload":
                                  base64.b64encode(plistlib.dumps(
                                      payload)).decode()}}).encode()
            req = urllib.request.Request(url, data=body, method="POST")
            req.add_header("Content-Type", "application/json")
            req.add_header("X-Hmac-Signature", base64.b64encode(
                hmac.new(HMAC_KEY.encode(), body,
                         hashlib.sha256).digest()).decode())
            try:
                with urllib.request.urlopen(req, timeout=30) as r:
                    r.read()
            except OSError as e:
                errors.append("%s: %s" % (udid, e))

    ts = [threading.Thread(target=worker) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        bl.note("%d webhooks failed, first: %s" % (len(errors), errors[0]))


def counts(db, kind):
    """{state: jobs} of one kind, plus 'hosts_verified': hosts with a
    verified job of that kind, both from one snapshot of the database
    (renewd verifies jobs between two statements otherwise)."""
    c = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=30,
                        isolation_level=None)
    try:
        c.execute("BEGIN")
        rows = c.execute("SELECT state, COUNT(*) FROM renewal_jobs WHERE "
                         "kind = ? GROUP BY state", (kind,)).fetchall()
        hv = c.execute("SELECT COUNT(DISTINCT host_uuid) FROM renewal_jobs "
                       "WHERE kind = ? AND state = 'verified'",
                       (kind,)).fetchone()[0]
    finally:
        c.close()
    res = dict(rows)
    res["hosts_verified"] = hv
    return res


def refused(db):
    """{kind: attempts the CA refused} (renewd retried each)."""
    c = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=30)
    try:
        return dict(c.execute(
            "SELECT j.kind, COUNT(*) FROM job_events e JOIN renewal_jobs j "
            "ON j.id = e.job_id WHERE e.event = 'ca_refused' GROUP BY "
            "j.kind").fetchall())
    finally:
        c.close()


def wait_verified(db, kind, n, r, timeout, on_all_enqueued=None):
    t0 = time.monotonic()
    last = None
    while time.monotonic() - t0 < timeout:
        c = counts(db, kind)
        if c != last:
            last = c
        if on_all_enqueued and sum(v for k, v in c.items()
                                   if k != "hosts_verified") >= n:
            on_all_enqueued()
            on_all_enqueued = None
        if c["hosts_verified"] + c.get("failed", 0) >= n:
            break
        if r.proc.poll() is not None:
            sys.exit("bench: renewd died:\n" + r.tail())
        time.sleep(0.5)
    return time.monotonic() - t0, last


def alone_costs(d, ca_url, reps=10):
    """Wall and CPU of one `openssl genrsa 2048` and one scepclient run
    (direct to scepserver), each repeated `reps` times, one at a time."""
    res = {}
    t0 = time.monotonic()
    c0 = os.times()
    for i in range(reps):
        # scepclient keeps csr.pem and self.pem beside the key: a
        # directory per run, as devsim does
        os.mkdir(os.path.join(d, "alone%d" % i))
        subprocess.run(["openssl", "genrsa", "-traditional", "-out",
                        os.path.join(d, "alone%d" % i, "k.pem"), "2048"],
                       check=True, capture_output=True)
    c1 = os.times()
    res["genrsa"] = ((time.monotonic() - t0) / reps,
                     (c1.children_user + c1.children_system -
                      c0.children_user - c0.children_system) / reps)
    t0 = time.monotonic()
    for i in range(reps):
        w = os.path.join(d, "alone%d" % i)
        subprocess.run(["scepclient", "-server-url", ca_url, "-challenge",
                        bl.CHALLENGE, "-cn", "alone %d %s" % (i, uuid.uuid4()),
                        "-private-key", os.path.join(w, "k.pem"),
                        "-certificate",
                        os.path.join(w, "c.pem")], cwd=w, check=True,
                       capture_output=True)
    c2 = os.times()
    res["scepclient"] = ((time.monotonic() - t0) / reps,
                         (c2.children_user + c2.children_system -
                          c1.children_user - c1.children_system) / reps)
    return res


def wait_devsim(sim, log, t0, timeout=1800):
    """Wait for devsim to listen (after generating whatever its key pool
    lacked); its key pool line, with the wall time, or None."""
    pool = None
    while time.monotonic() - t0 < timeout:
        with open(log, errors="replace") as f:
            text = f.read()
        for line in text.splitlines():
            if " key pool " in line:
                pool = line.split(" key pool ", 1)[1]
        if "listening on" in text:
            if pool:
                pool += " (devsim ready after %.1f s)" % (
                    time.monotonic() - t0)
            return pool
        if sim.poll() is not None:
            sys.exit("bench: devsim exited:\n" + text[-2000:])
        time.sleep(0.1)
    sys.exit("bench: devsim did not start")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=16,
                    help="devices enrolling at once in devsim")
    ap.add_argument("--key-pool-size", type=int, default=256,
                    help="RSA keys in the pool (BUILD/bench-keys)")
    ap.add_argument("--fresh-keys", action="store_true",
                    help="no key pool: openssl genrsa per enrollment")
    ap.add_argument("--keep", action="store_true",
                    help="keep the work directory (database, logs)")
    ap.add_argument("--timeout", type=int, default=3600)
    a = ap.parse_args()
    n = a.devices
    d = bl.workdir("e2e")
    print("## End to end: %d devsim devices renewed through the proxy and "
          "scepserver" % n)
    print()
    print("machine: %s" % bl.machine())
    ca_proc, ca_url, _ = start_scepserver(d)
    try:
        costs = alone_costs(d, ca_url)
    except subprocess.CalledProcessError as e:
        ca_proc.terminate()
        sys.exit("bench: %s failed: %s" % (e.cmd[0], e.stderr))
    hmac_f = os.path.join(d, "hmac")
    key_f = os.path.join(d, "nano")
    with open(hmac_f, "w") as f:
        f.write(HMAC_KEY + "\n")
    with open(key_f, "w") as f:
        f.write(API_KEY + "\n")
    port = bl.free_port()
    http_port = bl.free_port()
    pool_dir = os.path.join(bl.build_dir(), "bench-keys")
    pool_args = [] if a.fresh_keys else [
        "--key-pool", pool_dir, "--key-pool-size", str(a.key_pool_size)]
    slog_path = os.path.join(d, "devsim.log")
    slog = open(slog_path, "w")
    t_sim = time.monotonic()
    sim = subprocess.Popen([
        os.path.join(bl.build_dir(), "devsim"), "--listen",
        "127.0.0.1:%d" % port, "--webhook",
        "http://127.0.0.1:%d/webhook/mdm" % http_port, "--hmac-key-file",
        hmac_f, "--api-key-file", key_f, "--devices", str(n),
        "--concurrency", str(a.concurrency)] + pool_args, stdout=slog,
        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    slog.close()
    pool_line = wait_devsim(sim, slog_path, t_sim)
    if pool_line:
        print("key pool: %s" % pool_line)
    mdm = ("  driver: nanomdm\n  url: http://127.0.0.1:%d\n"
           "  api_key_file: %s\n  timeout: 30s\n" % (port, json.dumps(key_f)))
    pol = ("    renew_before: 30d\n    smear: 0s\n    max_attempts: 8\n"
           "    backoff: { initial: 5s, max: 1m }\n"
           "    verify_timeout: 30m\n")
    cfg_args = dict(http_extra="  webhook_hmac_key_file: %s\n" %
                    json.dumps(hmac_f), policy=pol, log_level="warn")
    cfg = bl.renewd_config(d, mdm, http_port, ca_url, **cfg_args)
    db = os.path.join(d, "renewd.db")
    r = bl.Renewd(d, cfg)
    rows = []
    try:
        udids = ["dev-%04d" % i for i in range(1, n + 1)]
        cpu0 = {"renewd": r.schedstat()[0] / 1e9,
                "scepserver": proc_cpu(ca_proc.pid)[0],
                "devsim": proc_cpu(sim.pid)[0],
                "children": proc_cpu(sim.pid)[1]}
        t0 = time.monotonic()
        post_webhooks("http://127.0.0.1:%d/webhook/mdm" % http_port, udids)
        t_issue, c_issue = wait_verified(db, "issue", n, r, a.timeout)
        bl.note("issue: %s in %.1f s" % (c_issue, t_issue))

        # Under a policy that renews 0.0001% of the year after issue
        # (~32 s), every certificate is due once the newest is 32 s old:
        # wait that long, reload (the policy recompute ends with a scan),
        # and the whole fleet renews at once.
        pol_due = pol.replace("    renew_before: 30d\n",
                              "    renew_at_percent: 0.0001\n")
        time.sleep(35)
        r.wait_idle(quiet=0.5)
        cfg = bl.renewd_config(d, mdm, http_port, ca_url,
                               **dict(cfg_args, policy=pol_due))
        mid = {"renewd": r.schedstat()[0] / 1e9,
               "scepserver": proc_cpu(ca_proc.pid)[0],
               "devsim": proc_cpu(sim.pid)[0],
               "children": proc_cpu(sim.pid)[1]}
        t1 = time.monotonic()
        r.proc.send_signal(signal.SIGHUP)
        time.sleep(1)
        r.call("trigger")

        def back_to_30d():
            # all N renew jobs exist: the new certificates must not come
            # due again under the test policy (a second round)
            bl.renewd_config(d, mdm, http_port, ca_url, **cfg_args)
            r.proc.send_signal(signal.SIGHUP)
        t_renew, c_renew = wait_verified(db, "renew", n, r, a.timeout,
                                         back_to_30d)
        t_renew = time.monotonic() - t1
        end = {"renewd": r.schedstat()[0] / 1e9,
               "scepserver": proc_cpu(ca_proc.pid)[0],
               "devsim": proc_cpu(sim.pid)[0],
               "children": proc_cpu(sim.pid)[1]}
        bl.note("renew: %s in %.1f s (trigger at +%.1f s)" % (
            c_renew, t_renew, t1 - t0))
        hwm = r.hwm_kib()
    finally:
        r.stop()
        sim.send_signal(signal.SIGTERM)
        try:
            sim.wait(30)
        except subprocess.TimeoutExpired:
            sim.kill()
        ca_proc.terminate()
        ca_proc.wait(30)

    ok_i = c_issue["hosts_verified"]
    ok_r = c_renew["hosts_verified"]
    rate_i = ok_i / t_issue
    rate_r = ok_r / t_renew
    rows.append(["first enrollment (issue jobs)", "%d/%d verified" % (
        ok_i, n), "%.1f s" % t_issue, "%.1f/s" % rate_i])
    rows.append(["renewal (renew jobs)", "%d/%d verified" % (ok_r, n),
                 "%.1f s" % t_renew, "%.1f/s" % rate_r])
    if n < 10000:
        rows.append(["10,000 devices, EXTRAPOLATED linearly from %d" % n,
                     "-", "%.0f s" % (t_renew * 10000.0 / n),
                     "%.1f/s" % rate_r])
    bl.table("end to end (release build; devsim --concurrency %d, %s)" % (
        a.concurrency, "fresh keys: openssl genrsa per enrollment"
        if a.fresh_keys else "key pool of %d" % a.key_pool_size),
             ["phase", "result", "wall", "per second"], rows)

    spent = {k: end[k] - mid[k] for k in end}
    total = sum(spent.values())
    crow = []
    for k, label in (("children", "devsim's children: openssl genrsa + "
                      "scepclient" if a.fresh_keys else
                      "devsim's children: scepclient"),
                     ("scepserver", "scepserver (the CA)"),
                     ("renewd", "renewd"), ("devsim", "devsim itself")):
        crow.append([label, "%.1f s" % spent[k], "%.0f%%" % (
            100.0 * spent[k] / total if total else 0),
            "%.1f ms" % (spent[k] / max(ok_r, 1) * 1e3)])
    crow.append(["all four", "%.1f s" % total, "100%",
                 "%.1f ms" % (total / max(ok_r, 1) * 1e3)])
    crow.append(["wall x 2 cores", "%.1f s" % (2 * t_renew), "", ""])
    bl.table("where the CPU went during the renewal phase",
             ["process", "CPU", "share", "per renewal"], crow)
    bl.table("one device's work measured alone (%s)" % "10 runs, one at a "
             "time", ["step", "wall", "CPU"],
             [["openssl genrsa 2048 (process + keygen)",
               "%.1f ms" % (costs["genrsa"][0] * 1e3),
               "%.1f ms" % (costs["genrsa"][1] * 1e3)],
              ["scepclient against scepserver directly",
               "%.1f ms" % (costs["scepclient"][0] * 1e3),
               "%.1f ms (client only)" % (costs["scepclient"][1] * 1e3)]])
    ref = refused(db)
    print()
    print("attempts the CA refused, each retried by renewd after its "
          "backoff: %d in the first enrollment, %d in the renewal "
          "(scepserver's serial-file race under concurrency)" % (
              ref.get("issue", 0), ref.get("renew", 0)))
    print("renewd peak RSS %.1f MiB; load after: %s" % (hwm / 1024.0,
                                                       bl.loadavg()))
    if a.keep:
        print("work directory kept: %s" % d)
    else:
        subprocess.run(["rm", "-rf", d])
    return 0


if __name__ == "__main__":
    sys.exit(main())
