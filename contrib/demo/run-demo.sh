#!/bin/sh
# The `make run` demo, from the repo root:
#   micromdm scepserver (127.0.0.1:2016) as the CA, 1-day certificates;
#   devsim (127.0.0.1:9000): 200 simulated devices behind a NanoMDM API;
#   renewd on contrib/demo/renewd.demo.yaml (SQLite in var/demo/).
# 200 Authenticate webhooks enroll dev-0001..dev-0200; each gets its
# first certificate through renewd's SCEP proxy, then renews about a
# minute later under the demo policy. `renewctl status` every 10 s.
# Ctrl-C stops everything. Logs: var/demo/{renewd,devsim,scepserver}.log
set -u
BUILD=${BUILD:-build}
N=${DEMO_DEVICES:-200}
D=var/demo
CFG=contrib/demo/renewd.demo.yaml

for b in "$BUILD/renewd" "$BUILD/renewctl" "$BUILD/devsim"; do
	[ -x "$b" ] || { echo "run-demo: $b missing (make build)" >&2; exit 1; }
done
command -v scepserver >/dev/null || { echo "run-demo: scepserver not installed (apt-get install scep)" >&2; exit 1; }

rm -rf "$D"
mkdir -p "$D"
umask 077
printf 'demo-mdm-key-%s\n' "$$" > "$D/mdm-key"
printf 'demo-hmac-key-%s\n' "$$" > "$D/hmac"

SCEP_PID= DEVSIM_PID= RENEWD_PID=
stop() {
	trap - INT TERM
	echo
	echo "run-demo: stopping"
	[ -n "$RENEWD_PID" ] && kill -TERM "$RENEWD_PID" 2>/dev/null && wait "$RENEWD_PID" 2>/dev/null
	[ -n "$DEVSIM_PID" ] && kill -TERM "$DEVSIM_PID" 2>/dev/null && wait "$DEVSIM_PID" 2>/dev/null
	[ -n "$SCEP_PID" ] && kill -TERM "$SCEP_PID" 2>/dev/null && wait "$SCEP_PID" 2>/dev/null
	echo "run-demo: stopped; state and logs kept in $D/"
	exit 0
}
trap stop INT TERM

wait_http() { # URL WHAT PID
	i=0
	while ! curl -s -o /dev/null --max-time 1 "$1"; do
		if ! kill -0 "$3" 2>/dev/null; then echo "run-demo: $2 exited, see $D/" >&2; stop; fi
		i=$((i + 1))
		[ $i -gt 200 ] && { echo "run-demo: $2 did not start" >&2; stop; }
		sleep 0.1
	done
}

echo "run-demo: CA: scepserver on 127.0.0.1:2016 (depot $D/depot, 1-day certificates)"
scepserver ca -init -depot "$D/depot" > "$D/scepserver.log" 2>&1 || { echo "run-demo: scepserver ca -init failed" >&2; exit 1; }
scepserver -depot "$D/depot" -port 2016 -challenge demo-secret -crtvalid 1 >> "$D/scepserver.log" 2>&1 &
SCEP_PID=$!
wait_http "http://127.0.0.1:2016/scep?operation=GetCACaps" scepserver "$SCEP_PID"

echo "run-demo: MDM: devsim with $N devices on 127.0.0.1:9000"
"$BUILD/devsim" --listen 127.0.0.1:9000 --webhook http://127.0.0.1:8180/webhook/mdm \
	--hmac-key-file "$D/hmac" --api-key-file "$D/mdm-key" \
	--devices "$N" --concurrency 16 > "$D/devsim.log" 2>&1 &
DEVSIM_PID=$!
i=0
until grep -q "listening on" "$D/devsim.log" 2>/dev/null; do
	kill -0 "$DEVSIM_PID" 2>/dev/null || { echo "run-demo: devsim exited, see $D/devsim.log" >&2; stop; }
	i=$((i + 1)); [ $i -gt 200 ] && { echo "run-demo: devsim did not start" >&2; stop; }
	sleep 0.1
done

echo "run-demo: renewd -c $CFG (log $D/renewd.log)"
"$BUILD/renewd" -c "$CFG" > "$D/renewd.log" 2>&1 &
RENEWD_PID=$!
wait_http "http://127.0.0.1:8180/healthz" renewd "$RENEWD_PID"

echo "run-demo: $N devices authenticate (signed MDM webhooks)"
python3 - "$N" "$D/hmac" <<'PY' || { echo "run-demo: enrollment webhooks failed" >&2; stop; }
import base64, hashlib, hmac, json, plistlib, sys, urllib.request, uuid
n, key = int(sys.argv[1]), open(sys.argv[2]).read().strip().encode()
for i in range(1, n + 1):
    udid = "dev-%04d" % i
    payload = {"MessageType": "Authenticate", "UDID": udid,
               "SerialNumber": "C02DEMO%04d" % i}
    body = json.dumps({
        "topic": "mdm.Authenticate", "event_id": "demo-" + str(uuid.uuid4()),
        "created_at": "2026-01-01T00:00:00Z",
        "checkin_event": {"udid": udid, "raw_payload":
            base64.b64encode(plistlib.dumps(payload)).decode()}}).encode()
    req = urllib.request.Request("http://127.0.0.1:8180/webhook/mdm",
                                 data=body, method="POST")
    req.add_header("Content-Type", "application/json")
    req.add_header("X-Hmac-Signature", base64.b64encode(
        hmac.new(key, body, hashlib.sha256).digest()).decode())
    with urllib.request.urlopen(req, timeout=10) as r:
        if r.status != 200:
            sys.exit("webhook for %s: HTTP %d" % (udid, r.status))
PY

start=$(date +%s)
while :; do
	kill -0 "$RENEWD_PID" 2>/dev/null || { echo "run-demo: renewd exited, see $D/renewd.log" >&2; tail -n 20 "$D/renewd.log" >&2; RENEWD_PID=; stop; }
	[ -t 1 ] && printf '\033[H\033[2J'
	echo "renewd demo: $N devices, 1-day certificates renewed ~1 min after issue  (+$(( $(date +%s) - start ))s, Ctrl-C stops)"
	echo "logs: $D/renewd.log $D/devsim.log $D/scepserver.log"
	echo
	"$BUILD/renewctl" -c "$CFG" status
	sleep 10 &
	wait $! 2>/dev/null
done
