#!/usr/bin/env bash
# Four real koinond processes on loopback agree on one ledger.
#
# 1. Make ten keys merchants in every city's currency (the devnet currencies
#    have no p2p flag: keys without a business role could not pay each other)
#    and issue money to them in each.
# 2. Submit 1,000 transfers round-robin through all four nodes.
# 3. Check that all four report the same block at the same height, the same
#    balances, and that every currency's holders add up to its supply.
# 4. SIGKILL one validator: the other three keep committing. Restart it: it
#    catches up to the same state.
#
# Usage: test_consortium.sh BIN_DIR
set -euo pipefail

BIN=$(cd "$1" && pwd)
KOINON="$BIN/koinon"
KOINOND="$BIN/koinond"
WORK=$(mktemp -d /tmp/koinon-consortium.XXXXXX)
# Test ports stay below the kernel's ephemeral range (32768+).
BASE_PORT=$((15000 + ($$ % 25) * 200))
HOLDERS=10
TRANSFERS=${KOINON_TEST_TRANSFERS:-1000}
PIDS=()

# Waits for the given background jobs only (a bare `wait` would wait for the nodes).
wait_jobs() {
  local pid
  for pid in "$@"; do wait "$pid"; done
}

source "$(dirname "$0")/lib.sh"
fail() {
  log "FAIL: $*"
  tail_node_logs 30
  exit 1
}
trap cleanup EXIT
trap 'exit 1' INT TERM



start_node() {
  local i=$1 name
  name=$(jq -r ".validators[$i].name" "$WORK/net/genesis.json")
  KOINON_CHECK_INVARIANTS=1 "$KOINOND" --config "$WORK/net/$name/node.json" \
    >>"$WORK/node$i.log" 2>&1 &
  PIDS[$i]=$!
}



# Everything a node says about the ledger at height $2, as one string.
ledger_view() {
  local i=$1 h=$2 view k code
  view=$(curl -sf "$(api "$i")/v1/blocks/$h" | jq -r '.id + " " + .state_hash')
  for k in "$WORK"/holder*.json; do
    view+=" $(curl -sf "$(api "$i")/v1/accounts/$("$KOINON" pubkey --key "$k")" |
      jq -c '[.balances[] | [.currency, .balance]]')"
  done
  echo "$view"
}

# ---------------------------------------------------------------- setup
log "work dir $WORK, base port $BASE_PORT"
"$KOINON" init --validators 4 --out "$WORK/net" --base-port "$BASE_PORT" >/dev/null
for i in $(seq 1 $HOLDERS); do "$KOINON" keygen --out "$WORK/holder$i.json" >/dev/null; done
for i in 0 1 2 3; do start_node "$i"; done
wait_for 60 "four validators committing" all_at_least 2 0 1 2 3
log "consortium up"

mapfile -t CODES < <(jq -r '.currencies[].code' "$WORK/net/genesis.json")
pub() { "$KOINON" pubkey --key "$WORK/holder$1.json"; }

# ---------------------------------------------------------------- merchants, issue
# One issuer admin grants the merchant role; the issue lands in the treasury,
# which pays the holder in the same transaction.
n=0
for code in "${CODES[@]}"; do
  issuer="$WORK/net/keys/issuer-${code,,}.json"
  jobs=()
  for h in $(seq 1 $HOLDERS); do
    "$KOINON" grant merchant "$(pub "$h")" --currency "$code" --category retail --key "$issuer" \
      --node "$(api $(((n + 1) % 4)))" >/dev/null &
    jobs+=($!)
    "$KOINON" issue --key "$issuer" --currency "$code" --to "$(pub "$h")" --amount 1000000 \
      --ref "reserve-2026-11-$code" --node "$(api $((n % 4)))" >/dev/null &
    jobs+=($!)
    n=$((n + 1))
  done
  wait_jobs "${jobs[@]}" || fail "granting or issuing $code failed"
done
wait_for 60 "grants and issues to commit" mempools_empty 0 1 2 3
for code in "${CODES[@]}"; do
  r=$(curl -sf "$(api 0)/v1/currencies/$code" |
    jq -r '"\(.supply) \(.stats.issued) \(.stats.outstanding) \(.stats.holders_by_kind.merchant)"')
  want="$((HOLDERS * 1000000)) $((HOLDERS * 1000000)) $((HOLDERS * 1000000)) $HOLDERS"
  [ "$r" = "$want" ] || fail "$code supply, issued, outstanding, merchants with money: $r, wanted $want"
done
for k in $(seq 1 $HOLDERS); do
  r=$(curl -sf "$(api 0)/v1/accounts/$(pub "$k")" |
    jq -c '[.roles[] | select(.roles == ["merchant"]) | .currency] | sort')
  [ "$r" = "$(printf '%s\n' "${CODES[@]}" | sort | jq -Rcs 'split("\n")[:-1]')" ] ||
    fail "holder $k is a merchant in $r, wanted every currency"
done
log "issued ${#CODES[@]} currencies to $HOLDERS merchants"

# ---------------------------------------------------------------- transfers
submit_batch() {
  local from=$1 count=$2 nodes=$3 k
  for k in $(seq 1 "$count"); do
    local s=$(((from + k) % HOLDERS + 1)) r=$(((from + 3 * k) % HOLDERS + 1))
    [ $s = $r ] && r=$((r % HOLDERS + 1))
    local code=${CODES[$(((from + k) % ${#CODES[@]}))]}
    local node=${nodes:$(((from + k) % ${#nodes})):1}
    "$KOINON" transfer --key "$WORK/holder$s.json" --currency "$code" --to "$(pub $r)" \
      --amount $((1 + k % 97)) --node "$(api "$node")" --json >>"$WORK/submitted.jsonl" ||
      echo "submit failed" >>"$WORK/errors"
  done
}
log "submitting $TRANSFERS transfers through all four nodes"
per=$((TRANSFERS / 4))
jobs=()
for w in 0 1 2 3; do
  submit_batch $((w * per)) $per 0123 &
  jobs+=($!)
done
wait_jobs "${jobs[@]}"
[ ! -s "$WORK/errors" ] || fail "$(wc -l <"$WORK/errors") submissions failed"
[ "$(jq -r .id "$WORK/submitted.jsonl" | sort -u | wc -l)" = "$TRANSFERS" ] ||
  fail "expected $TRANSFERS distinct transaction ids"
wait_for 120 "transfers to commit" mempools_empty 0 1 2 3

# Every submitted transaction is committed with an ok result, on every node.
for id in $(jq -r .id "$WORK/submitted.jsonl" | shuf -n 50 --random-source=<(yes)); do
  for i in 0 1 2 3; do
    r=$(curl -sf "$(api "$i")/v1/txs/$id" | jq -r '.status + ":" + .result.code')
    [ "$r" = "committed:ok" ] || fail "tx $id on node $i: $r"
  done
done

# The same block and the same balances everywhere, at one height.
h=$(height_of 0)
wait_for 30 "all nodes at height $h" all_at_least "$h" 0 1 2 3
ref=$(ledger_view 0 "$h")
for i in 1 2 3; do
  [ "$(ledger_view "$i" "$h")" = "$ref" ] || fail "node $i disagrees at height $h"
done
# Supply is conserved: the holders' balances add up to what was issued.
for code in "${CODES[@]}"; do
  total=0
  for k in $(seq 1 $HOLDERS); do
    b=$(curl -sf "$(api 2)/v1/accounts/$(pub "$k")" |
      jq -r --arg c "$code" '[.balances[] | select(.currency == $c) | .balance] | add // 0')
    total=$((total + b))
  done
  [ "$total" = $((HOLDERS * 1000000)) ] || fail "$code holders sum to $total"
done
log "all four agree at height $h after $TRANSFERS transfers; supply conserved"

# ---------------------------------------------------------------- crash and catch-up
kill -9 "${PIDS[3]}"
wait "${PIDS[3]}" 2>/dev/null || true
PIDS[3]=""
log "killed validator 3"
NAME3=$(jq -r '.validators[3].name' "$WORK/net/genesis.json")
online_of() { curl -sf "$(api "$1")/v1/status" | jq -r --arg v "$2" '.validators[] | select(.name == $v) | .online'; }
is_offline() { [ "$(online_of 0 "$NAME3")" = false ]; }
wait_for 10 "node 0 to show $NAME3 offline" is_offline
grep -qx "koinon_validator_online{validator=\"$NAME3\"} 0" <<<"$(curl -sf "$(api 0)/metrics")" ||
  fail "metrics do not show $NAME3 offline"
: >"$WORK/submitted.jsonl"
submit_batch 7 60 012
h0=$(height_of 0)
wait_for 60 "three validators to keep committing" all_at_least $((h0 + 3)) 0 1 2
wait_for 60 "transfers to commit without validator 3" mempools_empty 0 1 2
start_node 3
h=$(height_of 0)
wait_for 90 "validator 3 to catch up" all_at_least "$h" 3
ref=$(ledger_view 0 "$h")
[ "$(ledger_view 3 "$h")" = "$ref" ] || fail "restarted validator disagrees at height $h"
wait_for 60 "validator 3 to rejoin consensus" all_at_least $((h + 3)) 0 1 2 3
log "validator 3 caught up to height $h and rejoined"
is_online() { [ "$(online_of 0 "$NAME3")" = true ]; }
wait_for 10 "node 0 to show $NAME3 online again" is_online
metrics=$(curl -sf "$(api 3)/metrics")
grep -q '^koinon_height [0-9]' <<<"$metrics" || fail "no koinon_height in /metrics"
grep -q '^koinon_block_interval_ms_count [1-9]' <<<"$metrics" || fail "no block intervals in /metrics"
[ "$(curl -sf "$(api 0)/v1/status" | jq '.recent_blocks | length')" -gt 0 ] || fail "no recent blocks in status"

# ---------------------------------------------------------------- everyone crashes
# All four die at once, mid-height, with traffic in flight; from their safety
# state, the votes they cast and the blocks they hold, they resume and go on.
submit_batch 11 20 0123 &
batch=$!
sleep 0.5
for i in 0 1 2 3; do kill -9 "${PIDS[$i]}"; done
for i in 0 1 2 3; do wait "${PIDS[$i]}" 2>/dev/null || true; PIDS[$i]=""; done
wait "$batch" 2>/dev/null || true
log "killed all four validators"
for i in 0 1 2 3; do start_node "$i"; done
wait_for 30 "validators to serve again" all_at_least 0 0 1 2 3
h=$(height_of 0)
wait_for 60 "the consortium to commit again after a full crash" all_at_least $((h + 3)) 0 1 2 3
ref=$(ledger_view 0 $((h + 2)))
for i in 1 2 3; do
  [ "$(ledger_view "$i" $((h + 2)))" = "$ref" ] || fail "node $i disagrees at height $((h + 2)) after a full crash"
done
log "all four resumed after a full crash and agree at height $((h + 2))"
