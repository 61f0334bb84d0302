# Thin wrapper over CMake so a newcomer needs two commands: make run, make test.
BUILD      ?= build
TEST_BUILD ?= build-test
CONFIG     ?= contrib/renewd.example.yaml
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
FUZZ_BUILD ?= build-fuzz
FUZZ_TIME  ?= 60

.PHONY: all deps build run run-core test clean install fuzz fuzz-build torture bench

all: build

deps:
	@contrib/deps.sh

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build $(BUILD) -j $(JOBS)

# The demo: scepserver as the CA, devsim's 200 devices, renewd (var/demo/).
run: build
	@BUILD=$(BUILD) contrib/demo/run-demo.sh

# renewd alone in the foreground on $(CONFIG) (state under var/).
run-core: build
	@mkdir -p var var/outbox
	$(BUILD)/renewd -c $(CONFIG)

test: deps
	cmake -S . -B $(TEST_BUILD) -DCMAKE_BUILD_TYPE=Debug -DRN_SANITIZE=ON
	cmake --build $(TEST_BUILD) -j $(JOBS)
	cd $(TEST_BUILD) && ctest --output-on-failure -j $(JOBS)
	JOBS=$(JOBS) tests/valgrind/run.sh
	$(MAKE) --no-print-directory fuzz-build
	cd $(FUZZ_BUILD) && ctest --output-on-failure -j $(JOBS) -L fuzz

# The libFuzzer targets (tests/fuzz/): a clang build of their own.
fuzz-build: deps
	cmake -S . -B $(FUZZ_BUILD) -DCMAKE_C_COMPILER=clang -DRN_FUZZ=ON
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzz

# Each target for FUZZ_TIME seconds; new inputs go to $(FUZZ_BUILD)/corpus/.
fuzz: fuzz-build
	sh tests/fuzz/run.sh long $(FUZZ_BUILD)/tests/fuzz $(FUZZ_BUILD) $(FUZZ_TIME)

# The crash and fault scenarios at full size (tests/torture/) against the
# release build: 20,000 renewals under 50 kill -9s, a failing MDM, a CA
# outage, a full disk. `make test` runs their short versions.
torture: build
	tests/torture/run.sh $(BUILD)

# The benchmarks (tests/bench/) against the release build: scan, renewal
# throughput, SCEP proxy overhead, end to end. Each prints a table; the
# results go to docs/benchmarks.md by hand. BENCH_DEVICES sets the end to
# end fleet (10000 takes most of an hour on 2 cores).
BENCH_DEVICES ?= 1000
bench: build
	@command -v wrk >/dev/null || { echo "bench: installing wrk" >&2; \
	  $$( [ "$$(id -u)" -eq 0 ] || echo sudo ) apt-get install -y -q wrk >/dev/null || \
	  { $$( [ "$$(id -u)" -eq 0 ] || echo sudo ) apt-get update -q >/dev/null && \
	    $$( [ "$$(id -u)" -eq 0 ] || echo sudo ) apt-get install -y -q wrk >/dev/null; }; }
	BUILD=$(BUILD) tests/bench/run.sh $(BENCH_DEVICES)

install: build
	cmake --install $(BUILD)

clean:
	rm -rf $(BUILD) $(TEST_BUILD) $(FUZZ_BUILD)
