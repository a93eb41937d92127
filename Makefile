# The two commands a newcomer needs: `make devnet` and `make test`.
BUILD_DIR ?= build
BUILD_TYPE ?= Release
VALIDATORS ?= 4
JOBS ?= 2
SEEDS ?= 1000

.PHONY: all deps build devnet test clean asan sim

all: build

deps:
	@bash tools/deps.sh

$(BUILD_DIR)/CMakeCache.txt:
	cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE)

build: deps $(BUILD_DIR)/CMakeCache.txt
	cmake --build $(BUILD_DIR) -j$(JOBS)

devnet: build
	$(BUILD_DIR)/bin/koinon devnet --validators $(VALIDATORS)

test: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j1

asan: deps
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DKOINON_ASAN=ON
	cmake --build build-asan -j$(JOBS)
	ctest --test-dir build-asan --output-on-failure -j1

clean:
	rm -rf $(BUILD_DIR) build-asan

# Deterministic simulation over seeds 1..SEEDS (tests/sim/README.md); replay one
# seed with $(BUILD_DIR)/bin/koinon_sim --seed S.
sim: deps $(BUILD_DIR)/CMakeCache.txt
	cmake --build $(BUILD_DIR) -j$(JOBS) --target koinon_sim
	TMPDIR=$$( [ -d /dev/shm ] && echo /dev/shm || echo /tmp ) $(BUILD_DIR)/bin/koinon_sim --seeds 1..$(SEEDS)
