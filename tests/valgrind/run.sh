#!/bin/sh
# renewd under valgrind memcheck for whole integration tests: a build
# without sanitizers (valgrind and ASan do not mix) in build-vg, then each
# test named below with every renewd it starts wrapped in valgrind. Any
# memcheck error or definitely/indirectly lost block makes renewd exit 99,
# which the harness reports as a failed stop. Part of `make test`.
set -eu
src=$(cd "$(dirname "$0")/../.." && pwd)
build=${VG_BUILD:-$src/build-vg}
tests=${VG_TESTS:-test_alerts test_renewal_flow}
jobs=${JOBS:-$(nproc 2>/dev/null || echo 2)}

cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Debug -DRN_SANITIZE=OFF >/dev/null
cmake --build "$build" -j "$jobs" --target renewd renewctl devsim
logs="$build/valgrind-logs"
rm -rf "$logs"
mkdir -p "$logs"

export RENEWD_BIN="$build/renewd" RENEWCTL_BIN="$build/renewctl"
export DEVSIM_BIN="$build/devsim" RENEWD_SRC="$src"
export RENEWD_WRAPPER="valgrind --quiet --error-exitcode=99 \
--leak-check=full --show-leak-kinds=definite,indirect \
--errors-for-leak-kinds=definite,indirect --track-fds=no \
--log-file=$logs/renewd.%p.log"
py=/usr/bin/python3
[ -x "$py" ] || py=python3

for t in $tests; do
	echo "valgrind: $t"
	"$py" "$src/tests/integration/$t.py"
done
n=$(ls "$logs" | wc -l)
bad=$(find "$logs" -type f -size +0 | wc -l)
echo "valgrind: $n renewd runs, $bad with reports"
if [ "$bad" -ne 0 ]; then
	find "$logs" -type f -size +0 -exec cat {} \;
	exit 1
fi
