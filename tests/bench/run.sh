#!/bin/sh
# make bench: every benchmark in turn against $BUILD (release), each
# printing its table; the whole output also goes to $BUILD/bench.txt.
# usage: tests/bench/run.sh [E2E_DEVICES]
set -u
BUILD=${BUILD:-build}
export BUILD
dir=$(dirname "$0")
out="$BUILD/bench.txt"
{
	echo "# renewd benchmarks $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo
	echo "command: make bench (BENCH_DEVICES=${1:-1000}), build $BUILD, git $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
	echo "machine: $(nproc) cores, $(free -m | awk '/^Mem:/ {print $2}') MiB memory, $(uname -sr), SQLite $(sqlite3 --version | cut -d' ' -f1)"
	rc=0
	python3 "$dir/bench_scan.py" || rc=1
	python3 "$dir/bench_throughput.py" || rc=1
	python3 "$dir/bench_proxy.py" || rc=1
	python3 "$dir/bench_e2e.py" --devices "${1:-1000}" || rc=1
	exit $rc
} 2>&1 | tee "$out"
