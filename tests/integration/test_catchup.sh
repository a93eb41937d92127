#!/usr/bin/env bash
# Catch-up at scale: a validator that was down for 1,000 blocks and more
# fetches them from its peers, verifying every certificate, while the other
# three keep committing.
#
# 1. Four validators with a 10 ms heartbeat (empty blocks as fast as the tick
#    allows, about ten a second) and short consensus timeouts (each of
#    validator 3's turns to propose costs one round while it is down). Make B
#    a merchant, issue to A, pay B.
# 2. Stop validator 3 (SIGTERM, by pid). The other three commit 1,000 blocks
#    and more; transfers and an issue go in at the start, the middle and the
#    end of the outage.
# 3. Restart it on its data dir. It reaches the others' height while theirs
#    keeps rising; block ids and state hashes agree at sampled heights and at
#    the tip, balances agree, the outage's transactions are committed on it at
#    the same heights, its log has the "caught up" summary with as many
#    verified certificates as blocks and no rejected block; it then votes
#    again. The catch-up rate is printed, not asserted.
#
# Usage: test_catchup.sh BIN_DIR
set -euo pipefail

BIN=$(cd "${1:?usage: test_catchup.sh BIN_DIR}" && pwd)
KOINON="$BIN/koinon"
KOINOND="$BIN/koinond"
WORK=$(mktemp -d /tmp/koinon-catchup.XXXXXX)
# API ports BASE_PORT+0..3, peer ports BASE_PORT+100..103: all in 19000-19999.
BASE_PORT=$((19000 + ($$ % 40) * 20))
CHAIN="koinon-catchup-$$"
OUTAGE_BLOCKS=${KOINON_TEST_OUTAGE_BLOCKS:-1000}
# Empty blocks come at the first tick (100 ms) after the heartbeat; the
# proposer's wait must stay below timeout_propose_ms, and the short vote
# timeouts make the heights whose proposer is down cost little.
NODE_JQ='.heartbeat_ms = 10 | .timeout_propose_ms = 150 | .timeout_prevote_ms = 50
  | .timeout_precommit_ms = 50 | .timeout_delta_ms = 20'
PIDS=()

source "$(dirname "$0")/lib.sh"
trap cleanup EXIT
trap 'exit 1' INT TERM

# tx NODE ARGS...: submits a transaction through NODE, waits for its commit
# and prints "id height"; fails the test unless it committed ok.
tx() {
  local node=$1 out
  shift
  out=$("$KOINON" "$@" --node "$(api "$node")" --wait --json) ||
    fail "koinon $1 through node $node failed"
  [ "$(jq -r '.status + ":" + .result.code' <<<"$out")" = committed:ok ] || fail "koinon $1: $out"
  jq -r '"\(.id) \(.height)"' <<<"$out"
}

# Under load a process costs a tenth of a second here, so each read below is
# one curl for many URLs and one jq.
# get NODE PREFIX ITEM...: GET PREFIX/ITEM for every ITEM from NODE in one
# curl; the answers one after another.
get() {
  local base item
  base=$(api "$1")$2
  for item in "${@:3}"; do printf 'url = "%s/%s"\n' "$base" "$item"; done |
    curl -sf --max-time 20 -K -
}
# blocks_of NODE H...: one line "height id state_hash" per height.
blocks_of() { get "$1" /v1/blocks "${@:2}" | jq -r '"\(.height) \(.id) \(.state_hash)"'; }
# txs_of NODE ID...: one line "status height result" per transaction.
txs_of() { get "$1" /v1/txs "${@:2}" | jq -r '"\(.status) \(.height) \(.result.code)"'; }
# balances_of NODE PUBKEY...: one line of [currency, balance] pairs per key.
balances_of() { get "$1" /v1/accounts "${@:2}" | jq -c '[.balances[] | [.currency, .balance]]'; }
# height_in_log MSG: the height of node 3's last log line with msg="MSG".
height_in_log() {
  grep "msg=\"$1\"" "$WORK/node3.log" | tail -n 1 | sed -n 's/.* height=\([0-9]*\).*/\1/p'
}
# Node 3 has reached the height node 0 reports now.
caught_up() {
  local h0 h3
  h0=$(height_of 0) && h3=$(height_of 3 2>/dev/null) && [ -n "$h3" ] && [ "$h3" -ge "$h0" ]
}

# ---------------------------------------------------------------- setup
start_devnet
CODE=$(jq -r '.currencies[0].code' "$NET/genesis.json")
ISSUER="$NET/keys/issuer-${CODE,,}.json"
mkdir -p "$WORK/keys"
A=$(newkey a)
B=$(newkey b)
tx 1 grant merchant "$B" --currency "$CODE" --category retail --key "$ISSUER" >/dev/null
tx 2 issue --key "$ISSUER" --currency "$CODE" --to "$A" --amount 100000 --ref catchup-reserve \
  >/dev/null
tx 0 transfer --key "$(key a)" --currency "$CODE" --to "$B" --amount 250 >/dev/null
log "A holds $CODE, B is a merchant and was paid"

# ---------------------------------------------------------------- outage
sync_nodes
kill "${PIDS[3]}"
wait "${PIDS[3]}" 2>/dev/null || true
PIDS[3]=""
h3_stop=$(height_in_log "block committed") # it is down: its log says
[ -n "$h3_stop" ] || fail "node 3 logged no commit"
log "stopped validator 3 at height $h3_stop; the others are at $(height_of 0)"

: >"$WORK/outage-txs"
outage_txs() {
  local node
  for node in 0 1 2; do
    tx "$node" transfer --key "$(key a)" --currency "$CODE" --to "$B" --amount $((100 + node)) \
      >>"$WORK/outage-txs"
  done
}
outage_txs
start_s=$SECONDS
wait_for 300 "$((OUTAGE_BLOCKS / 2)) blocks without validator 3" all_at_least \
  $((h3_stop + OUTAGE_BLOCKS / 2)) 0 1 2
tx 1 issue --key "$ISSUER" --currency "$CODE" --to "$B" --amount 7000 --ref catchup-mid \
  >>"$WORK/outage-txs"
wait_for 300 "$OUTAGE_BLOCKS blocks without validator 3" all_at_least \
  $((h3_stop + OUTAGE_BLOCKS)) 0 1 2
outage_txs
h=$(height_of 0)
log "the other three committed $((h - h3_stop)) blocks in $((SECONDS - start_s)) s" \
  "($(wc -l <"$WORK/outage-txs") transactions among them)"

# ---------------------------------------------------------------- catch-up
restart_ms=$(now_ms)
h_restart=$(height_of 0)
start_validator 3
wait_for 120 "validator 3 to reach the others' height" caught_up
caught_ms=$(now_ms)
h_caught=$(height_of 0)
h3_start=$(height_in_log started)
[ -n "$h3_start" ] || fail "node 3 did not log its start height"
check "validator 3 restarted at the height it stopped at" "$h3_start" "$h3_stop"
gap=$((h_restart - h3_start))
[ "$gap" -ge "$OUTAGE_BLOCKS" ] || bad "validator 3 was only $gap blocks behind"
if [ "$h_caught" -gt "$h_restart" ]; then
  ok "the others kept committing during the catch-up: $h_restart -> $h_caught"
else
  bad "the others did not commit during the catch-up (height $h_restart -> $h_caught)"
fi
log "validator 3 went from $h3_start to $h_caught in $((caught_ms - restart_ms)) ms from restart:" \
  "$(((h_caught - h3_start) * 1000 / (caught_ms - restart_ms + 1))) blocks/s"

# Its log: one catch-up summary, every fetched block's certificate verified,
# no block refused. since_restart: node 3's log lines from its last start on.
since_restart() {
  awk '/msg="started"/ { n = NR } { line[NR] = $0 }
       END { for (i = n; i <= NR; i++) print line[i] }' "$WORK/node3.log"
}
summary_logged() { since_restart | grep -q 'msg="caught up"'; }
wait_for 10 "validator 3 to log its catch-up summary" summary_logged
since_restart | grep -E 'msg="(started|catching up|caught up)"' | head -n 3
summary=$(since_restart | grep -m 1 'msg="caught up"')
field() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<<"$summary"; }
blocks=$(field blocks)
certs=$(field certs_verified)
[ -n "$blocks" ] && [ "$blocks" -ge "$gap" ] ||
  bad "the catch-up applied '$blocks' blocks, wanted at least $gap"
check "certificates verified, one per applied block" "$certs" "$blocks"
log "catch-up rate (node 3's own measure): $(field blocks_per_s) blocks/s over $(field ms) ms"
check "fetched blocks refused" "$(grep -c 'rejected fetched block' "$WORK/node3.log" || true)" 0

# ---------------------------------------------------------------- agreement
log "comparing blocks, transactions and balances"
# Sampled heights: the start, around the stop, through the outage, the
# restart, the outage's transactions, node 3's tip.
tip=$(height_of 3)
samples=(1 "$h3_stop" $((h3_stop + 1)) $((h3_stop + 2)))
for k in 1 2 3 4 5 6 7; do samples+=($((h3_stop + k * (h_restart - h3_stop) / 8))); done
samples+=($((h_restart - 1)) "$h_restart" "$tip")
mapfile -t outage_ids < <(cut -d' ' -f1 "$WORK/outage-txs")
mapfile -t outage_heights < <(cut -d' ' -f2 "$WORK/outage-txs")
samples+=("${outage_heights[@]}")
wait_for 30 "nodes 0-2 to reach node 3's tip $tip" all_at_least "$tip" 0 1 2
ref=$(blocks_of 0 "${samples[@]}")
[ "$(wc -l <<<"$ref")" = ${#samples[@]} ] || fail "node 0 does not serve every sampled block"
for i in 1 2 3; do
  got=$(blocks_of "$i" "${samples[@]}") || true
  if [ "$got" = "$ref" ]; then
    ok "node $i: the same block ids and state hashes at ${#samples[@]} heights up to $tip"
  else
    bad "node $i disagrees with node 0:" \
      "$(diff <(echo "$ref") <(echo "$got") | grep '^>' | head -n 3)"
  fi
done

# Every transaction of the outage is committed on node 3, at the height the
# others committed it, ok.
want=$(for h in "${outage_heights[@]}"; do echo "committed $h ok"; done | paste -sd,)
check "the outage's ${#outage_ids[@]} transactions on node 3" \
  "$(txs_of 3 "${outage_ids[@]}" | paste -sd,)" "$want"

# The state at the tip: the same balances everywhere (nothing is in flight).
ref=$(balances_of 0 "$A" "$B")
ref=$(paste -sd' ' <<<"$ref")
for i in 1 2 3; do
  check "balances of A and B on node $i" "$(balances_of "$i" "$A" "$B" | paste -sd' ')" "$ref"
done

# ---------------------------------------------------------------- rejoined
# Back in consensus: it commits with the others, and blocks it decided itself
# carry its own precommit in their certificates.
h=$(height_of 0)
wait_for 60 "validator 3 to commit with the others" all_at_least $((h + 10)) 0 1 2 3
voted=$(get 3 /v1/blocks $(seq $((h + 1)) $((h + 10))) |
  jq -s '[.[] | select([.certificate.signatures[].validator] | index(3))] | length')
if [ "$voted" -gt 0 ]; then
  ok "validator 3 precommitted $voted of the 10 blocks after height $h"
else
  bad "validator 3 signed none of the 10 blocks after height $h"
fi

if [ "$FAILURES" -ne 0 ]; then
  tail_node_logs 20
  log "FAIL: $FAILURES checks failed"
  exit 1
fi
log "catch-up of $gap blocks verified and agreed"
