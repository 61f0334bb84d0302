# Thin wrapper over CMake so a newcomer needs two commands: make run, make test.
BUILD      ?= build
TEST_BUILD ?= build-test
CONFIG     ?= contrib/renewd.example.yaml
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: all deps build run run-core test clean install

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

install: build
	cmake --install $(BUILD)

clean:
	rm -rf $(BUILD) $(TEST_BUILD)
