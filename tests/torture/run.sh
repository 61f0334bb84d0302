#!/bin/sh
# make torture: every crash and fault scenario (tests/torture/) at full
# size against the build in $1 (default: build/, the release build), one
# after the other. Each prints its summary table; all of them are also
# appended as JSON lines to $TORTURE_RESULTS (default
# <build>/torture-results.jsonl). TORTURE_MODE=short runs the short
# versions instead (what ctest runs), TORTURE_SEED replays a run, and
# TORTURE_KEEP=DIR keeps each fleet's files (log, database) in DIR.
set -u
src=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:-$src/build}" && pwd)
export TORTURE_MODE="${TORTURE_MODE:-full}"
export RENEWD_BIN="$build/renewd" RENEWCTL_BIN="$build/renewctl"
export DEVSIM_BIN="$build/devsim" RENEWD_SRC="$src"
export TORTURE_RESULTS="${TORTURE_RESULTS:-$build/torture-results.jsonl}"
py=/usr/bin/python3
[ -x "$py" ] || py=python3

: >"$TORTURE_RESULTS"
failed=""
for t in "$src"/tests/torture/test_torture_*.py; do
	name=$(basename "$t" .py)
	echo "torture ($TORTURE_MODE): $name"
	t0=$(date +%s)
	if ! "$py" "$t"; then
		failed="$failed $name"
	fi
	echo "torture: $name took $(($(date +%s) - t0)) s"
done
echo "torture: results in $TORTURE_RESULTS"
if [ -n "$failed" ]; then
	echo "torture: FAILED:$failed"
	exit 1
fi
echo "torture: all scenarios passed"
