#!/usr/bin/env bash
# `koinon bench` runs against a four-validator devnet on a tiny load and
# reports sane fields: transfers committed, p50 <= p99, a ceiling measured on
# this machine, one entry per node. No timing target is asserted here: timings
# belong in the benchmark (`make bench`), not in tests. Also: a bad option is a
# usage error, and a key that may not issue stops the bench at funding.
#
# Usage: test_bench.sh BIN_DIR
set -euo pipefail

BIN=$(cd "${1:?usage: test_bench.sh BIN_DIR}" && pwd)
KOINON="$BIN/koinon"
KOINOND="$BIN/koinond"
WORK=$(mktemp -d /tmp/koinon-bench-test.XXXXXX)
# Ports 11000-11999, on loopback: API P..P+3, peers P+100..P+103.
BASE_PORT=$((11000 + ($$ % 40) * 20))
CHAIN="koinon-bench-$$"
PIDS=()

source "$(dirname "$0")/lib.sh"
trap cleanup EXIT
trap 'exit 1' INT TERM

# ---------------------------------------------------------------- usage errors
rc=0
"$KOINON" bench --issuer-key /nonexistent --currency SVQ --rate 0 2>"$WORK/err" || rc=$?
check "--rate 0 is a usage error" "$rc" 2
grep -q "invalid_argument" "$WORK/err" && ok "--rate 0 names invalid_argument" ||
  bad "--rate 0: $(cat "$WORK/err")"
rc=0
"$KOINON" bench --currency SVQ 2>/dev/null || rc=$?
check "--issuer-key is required" "$rc" 2

# ---------------------------------------------------------------- a tiny run
start_devnet
NODES="$(api 0),$(api 1),$(api 2),$(api 3)"

# A key that holds no role: its funding transactions are refused, the bench stops.
mkdir -p "$WORK/keys"
newkey nobody >/dev/null
rc=0
timeout 60 "$KOINON" bench --node "$NODES" --issuer-key "$(key nobody)" --currency SVQ \
  --accounts 4 --rate 10 --warmup 0 --duration 1 --store-dir "$WORK" >/dev/null 2>"$WORK/err" || rc=$?
check "a key that may not issue fails the bench" "$rc" 1
grep -q "funding" "$WORK/err" && ok "the failure names the funding" || bad "stderr: $(cat "$WORK/err")"

log "bench: 20 accounts, 50 transfers/s, 1 s warm-up, 3 s window"
timeout 90 "$KOINON" bench --node "$NODES" --issuer-key "$NET/keys/issuer-svq.json" --currency SVQ \
  --accounts 20 --rate 50 --warmup 1 --duration 3 --drain 15 --store-dir "$WORK" --json \
  >"$WORK/result.json" 2>"$WORK/bench.err" || fail "koinon bench failed: $(cat "$WORK/bench.err")"
jq . "$WORK/result.json" >/dev/null || fail "the result is not JSON: $(cat "$WORK/result.json")"
r() { jq -r "$1" "$WORK/result.json"; }
yes_no() { if [ "$(jq -r "$1" "$WORK/result.json")" = true ]; then echo yes; else echo no; fi; }

check "submission through the batch route" "$(r .submission)" "POST /v1/txs/batch"
check "validators" "$(r .validators)" 4
check "offered rate" "$(r .offered_rate)" 50
check "window" "$(r .window_s)" 3
check "transfers signed (rate x (warm-up + window))" "$(r .transfers_signed)" 200
check "committed_per_s > 0" "$(yes_no '.committed_per_s > 0')" yes
check "committed_per_s within the offered rate's reach" "$(yes_no '.committed_per_s <= 2 * .offered_rate')" yes
check "p50 > 0" "$(yes_no '.p50_ms > 0')" yes
check "p50 <= p99" "$(yes_no '.p50_ms <= .p99_ms')" yes
check "latency samples" "$(yes_no '.latency_samples > 0 and .latency_samples <= 150')" yes
check "refused, rejected and pending are counts" \
  "$(yes_no '[.refused, .rejected, .pending] | all(type == "number" and . >= 0)')" yes
check "nothing rejected at commit" "$(r .rejected)" 0
check "nodes" "$(r '.nodes | length')" 4
check "node urls" "$(r '[.nodes[].url] | join(",")')" "$NODES"
check "every node has cpu_percent, rss_bytes, max_rss_bytes (number or null)" \
  "$(yes_no '[.nodes[] | .cpu_percent, .rss_bytes, .max_rss_bytes] | all(. == null or type == "number")')" yes
check "ceiling > 0" "$(yes_no '.ceiling.ceiling_per_s > 0')" yes
check "verify_per_s_core > 0" "$(yes_no '.ceiling.verify_per_s_core > 0')" yes
check "block_commit_ms > 0" "$(yes_no '.ceiling.block_commit_ms > 0')" yes
check "apply_us > 0" "$(yes_no '.ceiling.apply_us > 0')" yes
check "ceiling is the lower bound" \
  "$(yes_no '.ceiling.ceiling_per_s == ([.ceiling.cpu_bound_per_s, .ceiling.storage_bound_per_s] | min)')" yes
check "ratio = committed / ceiling" \
  "$(yes_no '((.ratio - .committed_per_s / .ceiling.ceiling_per_s) | fabs) < 1e-6')" yes

# Funding really issued: each of the 20 accounts got 2 x ceil(200 / 20) + 2 = 22.
check "supply issued by the funding" "$(curl -sf "$(api 0)/v1/currencies/SVQ" | jq -r .supply)" 440

if [ "$FAILURES" -ne 0 ]; then
  echo "$FAILURES check(s) failed"
  exit 1
fi
log "bench test passed"
