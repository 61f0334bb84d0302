#!/usr/bin/env python3
"""SCEP proxy overhead: the same requests sent to micromdm scepserver
directly and through renewd's proxy, in the same run, with N concurrent
clients (tests/bench/scepload.c, libcurl multi, keep-alive). Targets:
proxy throughput >= 90% of direct, median added latency <= 1 ms.

Method. renewd mints a proxy token each time it renders a job's profile,
so the benchmark first has renewd render T jobs (T hosts with a due
certificate, the webhook driver pushing to tests/bench/sink.c, which dumps
the bodies) and reads the proxy URLs out of the pushed profiles. Then:
  GetCACaps, GetCACert: every request carries a live token (the proxy
    checks it, and the host, profile, CA and open job, on every request;
    these operations do not consume it), direct vs proxy;
  PKIOperation: a real PKCSReq per request (CSR with the challenge,
    enveloped to the CA, signed; built before the clock starts), which
    scepserver answers with a certificate; through the proxy each request
    uses its own token (consumed) and renewd records the CertRep on the
    job. A request counts as ok only for HTTP 200 and, for PKIOperation,
    pkiStatus SUCCESS.
Direct and proxy runs alternate (direct, proxy, proxy, direct) and the
figures are the sums and the medians of the pooled latencies.

scepserver spends 30-40 ms of CPU on each enrollment, and its time varies
by more than the proxy adds, so at one client PKIOperations also go
interleaved, direct and proxied request by request (the row "PKIOperation,
interleaved": medians of each side, and the median difference of adjacent
pairs), and one more table times the proxy alone:
PKIOperations at one client against bench-sink --scep, a CA that answers
at once with a canned CertRep, direct and through a second renewd.

    bench_proxy.py [--concurrency 1,8,32] [--gets 4000] [--pkis 100]
                   [--instant-pkis 500]
"""

import argparse
import base64
import json
import os
import plistlib
import ssl
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib as bl  # noqa: E402
from bench_throughput import Sink, T_DUE, tool  # noqa: E402


def start_scepserver(d):
    depot = os.path.join(d, "depot")
    subprocess.run(["scepserver", "ca", "-init", "-depot", depot],
                   check=True, capture_output=True, timeout=120)
    port = bl.free_port()
    log = open(os.path.join(d, "scepserver.log"), "w")
    # scepserver binds every interface; only 127.0.0.1 is ever sent to.
    proc = subprocess.Popen(["scepserver", "-depot", depot, "-port",
                             str(port), "-challenge", bl.CHALLENGE],
                            stdout=log, stderr=subprocess.STDOUT)
    log.close()
    url = "http://127.0.0.1:%d/scep" % port
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "?operation=GetCACaps",
                                   timeout=1).read()
            return proc, url, os.path.join(depot, "ca.pem")
        except OSError:
            time.sleep(0.1)
    proc.kill()
    sys.exit("bench: scepserver did not start")


def proxy_urls(dump):
    """The SCEP payload URL of every pushed profile in the sink's dump."""
    urls = []
    with open(dump, "rb") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                doc = json.loads(line)
            except ValueError:
                continue  # the line the sink is still writing
            prof = plistlib.loads(base64.b64decode(doc["profile"]))
            for p in prof.get("PayloadContent", []):
                if p.get("PayloadType") == "com.apple.security.scep":
                    urls.append(p["PayloadContent"]["URL"])
    return urls


def load(args, each=False):
    env = dict(os.environ, SCEPLOAD_EACH="1") if each else None
    p = subprocess.run([tool("bench-scepload")] + [str(a) for a in args],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=1800, env=env)
    if p.returncode != 0:
        sys.exit("bench: scepload failed: %s" % p.stderr)
    if p.stderr.strip():
        bl.note(p.stderr.strip())
    return json.loads(p.stdout)


def write_lines(path, lines):
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def mint(d, ca_url, ntok):
    """renewd with ca_url as its CA, after it rendered ntok jobs' profiles:
    (renewd, the webhook sink, the proxy URLs of the pushed profiles)."""
    os.makedirs(d, exist_ok=True)
    dump = os.path.join(d, "bodies.jsonl")
    sink = Sink(d, dump)
    cfg = bl.renewd_config(
        d, "  driver: webhook\n  url: %s\n  timeout: 30s\n" % sink.url(),
        bl.free_port(), ca_url, max_in_flight=64)
    bl.init_db(d, cfg)
    bl.sqlite(os.path.join(d, "renewd.db"),
              bl.fill_sql(ntok, ntok, T_DUE, T_DUE - 86400, "clustered"))
    off = T_DUE + 5 - int(time.time())
    r = bl.Renewd(d, cfg, env={"RENEWD_TIME_OFFSET": str(off)})
    t0 = time.monotonic()
    urls = []
    while len(urls) < ntok and time.monotonic() - t0 < 300:
        time.sleep(0.5)
        urls = proxy_urls(dump) if os.path.exists(dump) else []
    if len(urls) < ntok:
        r.stop()
        sink.stop()
        sys.exit("bench: only %d of %d profiles pushed" % (len(urls), ntok))
    r.wait_idle(quiet=0.3)
    bl.note("%d proxy tokens minted in %.1f s" % (len(urls),
                                                 time.monotonic() - t0))
    # the store's checkpoint thread copies the minting's WAL frames to the
    # database once the writes stop (its retries back off to 2 s): let it
    # finish, so the first rows do not time it
    time.sleep(3)
    return r, sink, urls


def stop_all(r, sink, ca):
    """Stop renewd and the sink (either may not have started) and the CA."""
    if r:
        r.stop()
    if sink:
        sink.stop()
    ca.terminate()
    ca.wait(20)


def row(op, c, res):
    """One table row from the runs of both ways."""
    dr = sum(x["count"] for x in res["direct"]) / sum(
        x["seconds"] for x in res["direct"])
    pr = sum(x["count"] for x in res["proxy"]) / sum(
        x["seconds"] for x in res["proxy"])
    dm = bl.median([x["p50_ms"] for x in res["direct"]])
    pm = bl.median([x["p50_ms"] for x in res["proxy"]])
    d99 = max(x["p99_ms"] for x in res["direct"])
    p99 = max(x["p99_ms"] for x in res["proxy"])
    okd = sum(x["ok"] for x in res["direct"])
    okp = sum(x["ok"] for x in res["proxy"])
    n = sum(x["count"] for x in res["direct"])
    return [op, c, "%.0f" % dr, "%.0f" % pr,
            "%s (>= 0.90)" % bl.ratio(pr, dr),
            "%.2f" % dm, "%.2f" % pm, "%+.2f (<= 1)" % (pm - dm),
            "%.1f / %.1f" % (d99, p99), "%d/%d, %d/%d" % (okd, n, okp, n)]


def pki_runs(d, ca_url, ca_pem, pki_urls, n, c, label, order):
    """PKIOperations, n per run, direct and through the proxy in the
    given order; pki_urls is consumed (each proxied request spends a
    token)."""
    res = {"direct": [], "proxy": []}
    for which in order:
        if which == "direct":
            f = write_lines(os.path.join(d, "pd.txt"), [ca_url] * n)
        else:
            f = write_lines(os.path.join(d, "pp.txt"), pki_urls[:n])
            del pki_urls[:n]
        out = load(["pki", f, ca_pem, bl.CHALLENGE, n, c])
        res[which].append(out)
        bl.note("%s c=%d %s: %s" % (label, c, which, json.dumps(out)))
    return res


def interleaved(d, ca_url, ca_pem, pki_urls, n):
    """PKIOperations at one client, direct and proxied alternating request
    by request (n of each), so the CA's drift and its depot's growth
    weigh on both alike: the medians of each side and the median of the
    differences of adjacent pairs."""
    urls = []
    for u in pki_urls[:n]:
        urls += [ca_url, u]
    del pki_urls[:n]
    out = load(["pki", write_lines(os.path.join(d, "pi.txt"), urls), ca_pem,
                bl.CHALLENGE, 2 * n, 1], each=True)
    e = out["each_ms"]
    direct, proxy = e[0::2], e[1::2]
    diffs = [p - q for p, q in zip(proxy, direct)]
    bl.note("PKIOperation interleaved: ok %d of %d" % (out["ok"], 2 * n))
    return ["PKIOperation, interleaved", 1, "", "", "",
            "%.2f" % bl.median(direct), "%.2f" % bl.median(proxy),
            "%+.2f (<= 1); pairs %+.2f" % (
                bl.median(proxy) - bl.median(direct), bl.median(diffs)),
            "%.1f / %.1f" % (max(direct), max(proxy)),
            "%d of %d both ways" % (out["ok"], 2 * n)]


def instant_ca(d, ca_pem, n, runs):
    """The proxy's own cost on an enrollment: PKIOperations at one client
    against bench-sink --scep, a CA that answers at once with a canned
    CertRep (scepserver's, from the fuzz seeds), direct and through a
    renewd of its own, alternating."""
    here = os.path.dirname(os.path.abspath(__file__))
    cad = os.path.join(d, "instant-ca")
    os.makedirs(cad)
    with open(os.path.join(cad, "caps.txt"), "w") as f:
        f.write("POSTPKIOperation\nSHA-256\nAES\nSCEPStandard\n")
    with open(ca_pem) as f, open(os.path.join(cad, "ca.der"), "wb") as o:
        o.write(ssl.PEM_cert_to_DER_cert(f.read()))
    with open(os.path.join(here, "..", "fuzz", "corpus", "certrep",
                           "scepserver-certrep-1.der"), "rb") as f, \
            open(os.path.join(cad, "certrep.der"), "wb") as o:
        o.write(f.read())
    port = bl.free_port()
    ca = subprocess.Popen([tool("bench-sink"), "--listen",
                           "127.0.0.1:%d" % port, "--scep", cad],
                          stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    ca_url = "http://127.0.0.1:%d/scep" % port
    r = sink = None
    try:
        r, sink, urls = mint(os.path.join(d, "instant"), ca_url,
                             n * runs + 8)
        load(["get", write_lines(os.path.join(d, "w.txt"), urls[:1]),
              "GetCACaps", 50, 1])
        res = pki_runs(d, ca_url, ca_pem, urls[8:], n, 1, "instant CA",
                       ["direct", "proxy", "proxy", "direct"] * (runs // 2))
    finally:
        stop_all(r, sink, ca)
    return row("PKIOperation", 1, res)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--concurrency", default="1,8,32")
    ap.add_argument("--gets", type=int, default=4000,
                    help="GET requests per run (4 runs per level)")
    ap.add_argument("--pkis", type=int, default=100,
                    help="PKIOperations per run (4 runs per level)")
    ap.add_argument("--instant-pkis", type=int, default=500,
                    help="PKIOperations per run against the instant CA "
                    "(4 runs; 0 skips it)")
    a = ap.parse_args()
    levels = [int(x) for x in a.concurrency.split(",")]
    d = bl.workdir("proxy")
    print("## SCEP proxy overhead: renewd's proxy vs scepserver direct")
    print()
    print("machine: %s" % bl.machine())
    ca_proc, ca_url, ca_pem = start_scepserver(d)
    ntok = 4 * a.pkis * len(levels) + a.pkis + 8
    rows = []
    r = sink = None
    try:
        r, sink, urls = mint(os.path.join(d, "scepserver"), ca_url, ntok)
        direct_f = write_lines(os.path.join(d, "direct.txt"), [ca_url])
        tok_gets = write_lines(os.path.join(d, "tok.txt"), urls[:8])
        pki_urls = urls[8:]
        # warm both paths up (connections, the CA's caches)
        load(["get", direct_f, "GetCACaps", 50, 4])
        load(["get", tok_gets, "GetCACaps", 50, 4])
        for c in levels:
            for op in ("GetCACaps", "GetCACert", "PKIOperation"):
                order = ("direct", "proxy", "proxy", "direct")
                if op == "PKIOperation":
                    res = pki_runs(d, ca_url, ca_pem, pki_urls, a.pkis, c,
                                   op, order)
                else:
                    res = {"direct": [], "proxy": []}
                    for which in order:
                        f = direct_f if which == "direct" else tok_gets
                        out = load(["get", f, op, a.gets, c])
                        res[which].append(out)
                        bl.note("%s c=%d %s: %s" % (op, c, which,
                                                    json.dumps(out)))
                rows.append(row(op, c, res))
                if op == "PKIOperation" and c == 1:
                    rows.append(interleaved(d, ca_url, ca_pem, pki_urls,
                                            a.pkis))
    finally:
        stop_all(r, sink, ca_proc)
    columns = ["operation", "clients", "direct/s", "proxy/s", "ratio",
               "direct p50", "proxy p50", "added p50", "p99 direct/proxy",
               "ok direct, proxy"]
    bl.table("SCEP proxy vs direct (req/s, latency in ms)", columns, rows)
    if a.instant_pkis > 0:
        inst = instant_ca(d, ca_pem, a.instant_pkis, 4)
        print()
        bl.table("renewd's own cost: PKIOperation against an instant CA "
                 "(bench-sink --scep), %d per run" % a.instant_pkis,
                 columns, [inst])
    print()
    print("load after: %s" % bl.loadavg())
    subprocess.run(["rm", "-rf", d])
    return 0


if __name__ == "__main__":
    sys.exit(main())
