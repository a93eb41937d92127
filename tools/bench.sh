#!/usr/bin/env bash
# `make bench`: runs `koinon bench` against a four-validator devnet, then against
# a one-validator network, each started here on 127.0.0.1 in a temporary
# directory and stopped (by pid) before the script ends, whatever happens.
# Each result is printed beside the ceiling for its validator count
# (docs/PERFORMANCE.md explains the method).
#
# Usage: tools/bench.sh BIN_DIR
# Environment: BENCH_DURATION (s, default 30), BENCH_WARMUP (s, default 5),
# BENCH_RATE (transfers/s offered, default 20000), BENCH_ACCOUNTS (default 1000),
# BENCH_VALIDATORS ("4 1": which networks to run), BENCH_BASE_PORT (default 9100).
set -euo pipefail

BIN=$(cd "${1:?usage: tools/bench.sh BIN_DIR}" && pwd)
KOINON="$BIN/koinon"
KOINOND="$BIN/koinond"
DURATION=${BENCH_DURATION:-30}
WARMUP=${BENCH_WARMUP:-5}
RATE=${BENCH_RATE:-20000}
ACCOUNTS=${BENCH_ACCOUNTS:-1000}
NETWORKS=${BENCH_VALIDATORS:-4 1}
BASE_PORT=${BENCH_BASE_PORT:-9100}
# The work directory sits on the disk the nodes use (not /dev/shm), so the
# durable commit the bench measures there is the nodes' own.
WORK=$(mktemp -d "${TMPDIR:-/tmp}/koinon-bench.XXXXXX")
PIDS=()

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

stop_nodes() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  PIDS=()
}
cleanup() {
  stop_nodes
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

fail() {
  log "FAIL: $*"
  local f
  for f in "$WORK"/*/node*.log; do [ -f "$f" ] && { echo "--- tail of $f" >&2; tail -n 20 "$f" >&2; }; done
  exit 1
}

height_of() { curl -sf --max-time 2 "http://127.0.0.1:$1/v1/status" | jq -r .height; }

# wait_committing PORT: the node answers and has committed height 2.
wait_committing() {
  local deadline=$((SECONDS + 60)) h
  until h=$(height_of "$1" 2>/dev/null) && [ -n "$h" ] && [ "$h" -ge 2 ]; do
    [ $SECONDS -lt $deadline ] || fail "the node on port $1 does not commit"
    sleep 0.2
  done
}

# run_network V PORT: a V-validator network on API ports PORT.. (peers +100),
# the bench against all its nodes, then the network stopped.
run_network() {
  local v=$1 port=$2 dir="$WORK/net$1" i name nodes="" ports=()
  log "starting a $v-validator network on 127.0.0.1:$port.."
  "$KOINON" init --validators "$v" --out "$dir" --base-port "$port" --chain-id "koinon-bench-$v" \
    >/dev/null || fail "koinon init"
  for ((i = 0; i < v; i++)); do
    name=$(jq -r ".validators[$i].name" "$dir/genesis.json")
    "$KOINOND" --config "$dir/$name/node.json" >>"$dir/node$i.log" 2>&1 &
    PIDS+=($!)
    ports+=($((port + i)))
    nodes+="${nodes:+,}http://127.0.0.1:$((port + i))"
  done
  for p in "${ports[@]}"; do wait_committing "$p"; done
  log "bench: $v validator(s), rate $RATE/s, $ACCOUNTS accounts, warm-up ${WARMUP}s, window ${DURATION}s"
  "$KOINON" bench --node "$nodes" --issuer-key "$dir/keys/issuer-svq.json" --currency SVQ \
    --accounts "$ACCOUNTS" --rate "$RATE" --warmup "$WARMUP" --duration "$DURATION" \
    --store-dir "$WORK" --json-out "$WORK/result-$v.json" || fail "koinon bench ($v validators)"
  stop_nodes
  echo
}

[ -x "$KOINON" ] && [ -x "$KOINOND" ] || fail "no koinon and koinond in $BIN"
command -v jq >/dev/null || fail "jq is needed (tools/deps.sh installs it)"
offset=0
for v in $NETWORKS; do
  run_network "$v" $((BASE_PORT + offset))
  offset=$((offset + 10))
done

echo "summary (committed transfers/s and commit latency, against this machine's ceiling):"
printf '  %-10s %10s %10s %10s %10s %10s %8s %8s\n' validators offered committed p50_ms p99_ms \
  ceiling ratio refused
for v in $NETWORKS; do
  jq -r --arg v "$v" '"  \($v|.[0:10]|. + " " * (10 - length)) " +
    ([.offered_rate, .committed_per_s, .p50_ms, .p99_ms, .ceiling.ceiling_per_s]
      | map(. * 10 | round / 10 | tostring | " " * (10 - length) + .) | join(" ")) +
    " " + ((.ratio * 1000 | round / 10 | tostring) + "%" | " " * (8 - length) + .) +
    " " + (.refused | tostring | " " * (8 - length) + .)' "$WORK/result-$v.json"
done
