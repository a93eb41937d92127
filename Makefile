# The two commands a newcomer needs: `make devnet` and `make test`.
BUILD_DIR ?= build
BUILD_TYPE ?= Release
VALIDATORS ?= 4
JOBS ?= 2
SEEDS ?= 1000
FUZZ_SECONDS ?= 60

.PHONY: all deps build devnet test clean asan sim fuzz bench

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

# The benchmark (docs/PERFORMANCE.md): a four-validator devnet, then a
# one-validator network, each loaded by `koinon bench` and printed beside the
# ceiling this machine's measured limits allow. BENCH_DURATION (s), BENCH_RATE
# (transfers/s offered) and BENCH_ACCOUNTS size the load.
BENCH_DURATION ?= 30
BENCH_RATE ?= 20000
BENCH_ACCOUNTS ?= 1000
bench: build
	BENCH_DURATION=$(BENCH_DURATION) BENCH_RATE=$(BENCH_RATE) BENCH_ACCOUNTS=$(BENCH_ACCOUNTS) \
	  bash tools/bench.sh $(BUILD_DIR)/bin

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

# Coverage-guided fuzzing of every decoder with libFuzzer (tests/fuzz/README.md):
# a clang build in build-fuzz, then each target for FUZZ_SECONDS, starting from
# its seeds; corpora persist in build-fuzz/corpus/<target>, crashes go to
# build-fuzz/crashes/. The modules are only gcc-clean, so clang's extra warnings
# stay warnings there; the fuzz targets themselves always build with -Werror.
FUZZ_TARGETS = $(patsubst tests/fuzz/fuzz_%.c,%,$(filter-out tests/fuzz/fuzz_common.c,$(wildcard tests/fuzz/fuzz_*.c)))
fuzz: deps
	CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKOINON_FUZZ=ON \
	  -DKOINON_WERROR=OFF
	cmake --build build-fuzz -j$(JOBS) --target fuzz_targets
	@failed=; mkdir -p build-fuzz/crashes; for t in $(FUZZ_TARGETS); do \
	  mkdir -p build-fuzz/corpus/$$t; \
	  build-fuzz/bin/fuzz_$${t}_replay --write-corpus build-fuzz/corpus/$$t || exit 1; \
	  echo "== fuzz_$$t: $(FUZZ_SECONDS)s"; \
	  build-fuzz/bin/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    -artifact_prefix=build-fuzz/crashes/$$t- build-fuzz/corpus/$$t || failed="$$failed $$t"; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: crashes in:$$failed (see build-fuzz/crashes/)"; exit 1; fi
