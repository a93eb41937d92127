#!/usr/bin/env bash
# A real koinond dies at each named crash point (KOINON_CRASH_AT, see
# docs/ARCHITECTURE.md "Crash points") and comes back from what it had made
# durable there.
#
# One four-validator devnet on loopback, with issues trickling in so blocks
# change the state. For each point, one validator (a different one each time)
# is stopped, started again with the point armed, and must die at that point:
# exit status 86 and the point's line on stderr. For the consensus and commit
# points a second validator is down meanwhile, so the victim's voice is needed
# for a quorum and its crash stalls the others in its height; for mid_catchup
# it first stays down until it is several blocks behind. Restarted unarmed on
# the same data directory, it must catch up and commit with the others. At
# the end:
#   - heights advance on all four;
#   - every height has the same block id and state hash on all four;
#   - no node ever saw two conflicting votes from one validator (evidence
#     in /v1/status and koinon_evidence_total in /metrics stay empty and 0),
#     i.e. no restarted node signed two different votes for one (height,
#     round, step).
#
# Usage: test_crash_points.sh BIN_DIR
set -euo pipefail

BIN=$(cd "$1" && pwd)
KOINON="$BIN/koinon"
KOINOND="$BIN/koinond"
WORK=$(mktemp -d /tmp/koinon-crash.XXXXXX)
CHAIN=koinon-crash-test
CRASH_STATUS=86 # NODE_CRASH_EXIT_STATUS in node/internal.h
PIDS=()
LOAD_PID=""

source "$(dirname "$0")/lib.sh"
trap 'cleanup "$LOAD_PID"' EXIT
trap 'exit 1' INT TERM

# API ports BASE_PORT+0..3 and peer ports BASE_PORT+100..103, all inside
# 18000-18999: the first base whose eight ports nobody listens on.
port_free() { ! ss -Hltn "sport = :$1" | grep -q .; }
pick_base_port() {
  local k base p free
  for k in $(seq 0 39); do
    base=$((18000 + (($$ + k) % 40) * 20))
    free=1
    for p in 0 1 2 3 100 101 102 103; do port_free $((base + p)) || { free=0; break; }; done
    [ $free = 1 ] && { echo "$base"; return 0; }
  done
  return 1
}
BASE_PORT=$(pick_base_port) || fail "no free ports in 18000-18999"

# start_node I [CRASH_SPEC]: starts validator I, armed when a spec is given.
start_node() {
  echo "=== start${2:+ armed with KOINON_CRASH_AT=$2}" >>"$WORK/node$1.log"
  if [ -n "${2:-}" ]; then KOINON_CRASH_AT=$2 start_validator "$1"; else start_validator "$1"; fi
}

# stop_node I: SIGTERM, then waits (bounded) for it to exit.
stop_node() {
  local i=$1 pid=${PIDS[$1]}
  kill -TERM "$pid" 2>/dev/null || true
  wait_for 20 "validator $i to stop" gone "$pid"
  wait "$pid" 2>/dev/null || true
  PIDS[$i]=""
}
gone() { ! kill -0 "$1" 2>/dev/null; }

top_height() {
  local i h top=0
  for i in 0 1 2 3; do
    h=$(height_of "$i" 2>/dev/null) || continue
    [ -n "$h" ] && [ "$h" -gt "$top" ] && top=$h
  done
  echo "$top"
}

# All four commit at least $1 more blocks than the highest of them now.
all_advance() {
  local target=$(($(top_height) + $1))
  wait_for 60 "all four validators at height $target" all_at_least "$target" 0 1 2 3
}

# Evidence any node has seen or recorded, as "node:seen:metric:recorded" for
# those with some.
evidence_seen() {
  local i list metric recorded out=""
  for i in 0 1 2 3; do
    list=$(status_of "$i" | jq '.evidence | length') || { out+=" $i:unreachable"; continue; }
    recorded=$(status_of "$i" | jq '.evidence_recorded')
    metric=$(curl -sf --max-time 5 "$(api "$i")/metrics" | awk '$1 == "koinon_evidence_total" {print $2}')
    [ "$list" = 0 ] && [ "$metric" = 0 ] && [ "$recorded" = 0 ] ||
      out+=" $i:$list:${metric:-none}:$recorded"
  done
  echo "${out# }"
}

# Issues one unit in turn through every node that answers, about four a
# second, until killed: blocks that change the state, and a mempool to
# commit across the crashes.
load() {
  local k=0 i code issuer
  mapfile -t codes < <(jq -r '.currencies[].code' "$NET/genesis.json")
  while :; do
    code=${codes[$((k % ${#codes[@]}))]}
    issuer="$NET/keys/issuer-${code,,}.json"
    i=$((k % 4))
    "$KOINON" issue --key "$issuer" --currency "$code" --amount 1 --ref "load-$k" \
      --node "$(api "$i")" >/dev/null 2>&1 || true
    k=$((k + 1))
    sleep 0.25
  done
}

# crash_at I POINT N: restarts validator I armed with POINT:N, waits for it to
# die there, restarts it unarmed, and waits until all four advance.
#
# Except for mid_catchup, a bystander validator stays down meanwhile, so I is
# one of exactly three that make a quorum: when it dies, the other two stall
# in its height and round, and when it comes back it must go on from what it
# made durable there, where a vote that contradicts its last one would be
# seen by both.
crash_at() {
  local i=$1 point=$2 count=$3 pid status bystander="" k
  [ "$(evidence_seen)" = "" ] || bad "evidence before $point: $(evidence_seen)"
  if [ "$point" != mid_catchup ]; then
    bystander=$(((i + 2) % 4))
    stop_node "$bystander"
  fi
  stop_node "$i"
  local before
  before=$(wc -l <"$WORK/node$i.log")
  if [ "$point" = mid_catchup ]; then
    # Behind by more than one catch-up request's worth of nothing: a batch
    # of several blocks, so the crash falls between two of them.
    local h
    h=$(top_height)
    wait_for 60 "the others to get 8 blocks ahead" all_at_least $((h + 8)) $(( (i + 1) % 4 )) $(( (i + 2) % 4 )) $(( (i + 3) % 4 ))
  fi
  start_node "$i" "$point:$count"
  pid=${PIDS[$i]}
  wait_for 90 "validator $i to die at $point" gone "$pid"
  status=0
  wait "$pid" 2>/dev/null || status=$?
  PIDS[$i]=""
  check "$point: exit status of validator $i" "$status" "$CRASH_STATUS"
  if tail -n +$((before + 1)) "$WORK/node$i.log" | grep -qxF "koinond: crash point $point reached ($count): exiting now"; then
    ok "$point: validator $i logged its crash point"
  else
    bad "$point: no crash line in validator $i's log"
  fi
  before=$(wc -l <"$WORK/node$i.log")
  start_node "$i"
  if [ -n "$bystander" ]; then
    local others=()
    for k in 0 1 2 3; do [ "$k" = "$bystander" ] || others+=("$k"); done
    wait_for 60 "validator $i to commit with two others" all_at_least $(($(top_height) + 2)) "${others[@]}"
    start_node "$bystander"
  fi
  all_advance 3
  ok "$point: validator $i restarted and all four advance (height $(top_height))"
  # Where the crash left its height undecided for it (the others waited for
  # its vote), the victim must have resumed that height from its safety state.
  case $point in
  after_persist | after_send | mid_commit)
    if tail -n +$((before + 1)) "$WORK/node$i.log" | grep -q 'msg="resuming from safety state"'; then
      ok "$point: validator $i resumed from its safety state"
    else
      bad "$point: validator $i did not resume from its safety state"
    fi
    ;;
  *) ;;
  esac
}

# ---------------------------------------------------------------- devnet
# Quicker heights, so every point is reached within seconds.
NODE_JQ='.heartbeat_ms = 200 | .timeout_propose_ms = 1000 | .timeout_prevote_ms = 400
         | .timeout_precommit_ms = 400 | .timeout_delta_ms = 200 | .log_file = ""' start_devnet
load &
LOAD_PID=$!

# ---------------------------------------------------------------- the points
# n: several speeches or commits in, so each crash falls a few heights after
# the (re)start, mid-run rather than at the first step.
crash_at 0 before_persist 7
crash_at 1 after_persist 7
crash_at 2 after_send 7
crash_at 3 mid_commit 3
crash_at 0 after_commit 3
crash_at 1 mid_catchup 1

# ---------------------------------------------------------------- agreement
all_advance 5
kill "$LOAD_PID" 2>/dev/null || true
wait "$LOAD_PID" 2>/dev/null || true
LOAD_PID=""
top=$(top_height)
wait_for 30 "all four at height $top" all_at_least "$top" 0 1 2 3
# Every block of every node, one line a height: "height id state_hash txs".
for i in 0 1 2 3; do
  curl -sf --max-time 60 "$(api "$i")/v1/blocks/[1-$top]" |
    jq -r '"\(.height) \(.id) \(.state_hash) \(.txs | length)"' >"$WORK/chain$i.txt" || true
done
check "heights node 0 serves" "$(wc -l <"$WORK/chain0.txt")" "$top"
for i in 1 2 3; do
  if cmp -s "$WORK/chain0.txt" "$WORK/chain$i.txt"; then
    ok "blocks 1..$top: node $i has the same ids and state hashes as node 0"
  else
    bad "node $i disagrees with node 0: $(diff "$WORK/chain0.txt" "$WORK/chain$i.txt" | head -4 | tr '\n' ' ')"
  fi
done
check "evidence of equivocation on any node" "$(evidence_seen)" ""
txs=$(awk '{n += $4} END {print n + 0}' "$WORK/chain0.txt")
[ "$txs" -gt 0 ] || bad "no transaction was committed: the load did not reach the ledger"
log "blocks 1..$top carried $txs transactions"
for i in 0 1 2 3; do
  r=$(grep -c "refusing to sign" "$WORK/node$i.log" || true)
  [ "$r" = 0 ] || log "validator $i: the signing guard refused $r messages (after a restart)"
done

if [ "$FAILURES" != 0 ]; then
  tail_node_logs 30
  log "FAIL: $FAILURES checks failed"
  exit 1
fi
log "every crash point fired and every restart rejoined without divergence or equivocation"
