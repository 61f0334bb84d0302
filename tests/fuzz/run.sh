#!/bin/sh
# Run libFuzzer targets and print one line per target.
#
#   run.sh smoke BINDIR WORKDIR SECONDS TARGET...   (ctest -L fuzz)
#   run.sh long  BINDIR WORKDIR SECONDS [TARGET...] (make fuzz)
#
# BINDIR holds fuzz_<target>; the seeds are tests/fuzz/corpus/<target>/
# beside this script and are never written to. smoke: new inputs go to a
# scratch WORKDIR/corpus/<target>, emptied first; long: the seeds are
# copied into WORKDIR/corpus/<target>, which keeps growing from run to
# run. Crash, leak and timeout inputs land in WORKDIR/artifacts/<target>/.
# Exits 1 when a target crashed or failed to run.
set -u

mode=$1 bindir=$2 work=$3 secs=$4
shift 4
here=$(cd "$(dirname "$0")" && pwd)
if [ $# -eq 0 ]; then
	for d in "$here"/corpus/*/; do
		set -- "$@" "$(basename "$d")"
	done
fi

# Keys libFuzzer prints with -print_final_stats=1, and its cov: counters.
stat() { sed -n "s/^stat::$1: *//p" "$2" | tail -n 1; }
cov() { sed -n "s/^#[0-9]*[[:space:]]*$1 *cov: \([0-9]*\).*/\1/p" "$2" | tail -n 1; }

fail=0
fmt='%-12s %12s %8s %10s %15s %8s\n'
printf "$fmt" target executions exec/s new-units "coverage" crashes
for t in "$@"; do
	bin=$bindir/fuzz_$t
	seeds=$here/corpus/$t
	corpus=$work/corpus/$t
	art=$work/artifacts/$t
	log=$work/logs/$t.log
	mkdir -p "$art" "$work/logs"
	if [ "$mode" = smoke ]; then
		rm -rf "$corpus"
		mkdir -p "$corpus"
		dirs="$corpus $seeds"
	else
		mkdir -p "$corpus"
		cp -n "$seeds"/* "$corpus"/ 2>/dev/null
		dirs=$corpus
	fi
	dict=
	[ -f "$here/dict/$t.dict" ] && dict=-dict=$here/dict/$t.dict
	before=$(ls "$art" | wc -l)
	# stdin from /dev/null: a config naming /dev/stdin as a secret file
	# must not wait for a terminal.
	# shellcheck disable=SC2086
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	"$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$art/" $dict $dirs \
		</dev/null >"$log" 2>&1
	rc=$?
	crashes=$(( $(ls "$art" | wc -l) - before ))
	execs=$(stat number_of_executed_units "$log")
	rate=$(stat average_exec_per_sec "$log")
	units=$(stat new_units_added "$log")
	c0=$(cov INITED "$log")
	c1=$(cov DONE "$log")
	[ -n "$c1" ] || c1=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' "$log" | tail -n 1)
	printf "$fmt" "$t" "${execs:--}" "${rate:--}" "${units:--}" \
		"${c0:-?}->${c1:-?}" "$crashes"
	if [ $rc -ne 0 ] || [ "$crashes" -ne 0 ]; then
		fail=1
		echo "fuzz_$t exited $rc; log: $log" >&2
		grep -E 'ERROR|invariant|SUMMARY|Test unit written' "$log" \
			| head -n 20 >&2
	fi
done
exit $fail
