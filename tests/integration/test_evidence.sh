#!/usr/bin/env bash
# Twins: a validator run twice with the same key equivocates, and the honest
# validators put the evidence on the ledger.
#
# 1. A four-city devnet (koinon init) plus a fifth koinond: a copy of the
#    validator with the smallest public key (it dials every other validator,
#    so its twin, dialling too, is heard by all of them) with the same key but
#    its own data directory and ports. The twins run consensus independently:
#    when their validator proposes, each builds its own block and prevotes it;
#    when one is late it votes nil where the other voted a block.
# 2. Two honest validators are frozen (SIGSTOP) just before a height the
#    twinned validator proposes. (With all four up, the three honest ones
#    commit before the second twin's vote arrives over links the twins keep
#    taking from each other.) Each twin proposes its own block and prevotes
#    it; the third honest validator cannot commit alone, and each twin
#    repeats its votes of the height on every new link, so it receives both
#    conflicting prevotes.
# 3. It builds the canonical evidence transaction. The two thaw, the chain
#    moves, the evidence commits: /v1/status counts it, GET
#    /v1/evidence lists it identically on all four nodes (the twinned
#    validator, two different blocks, the height that recorded it), and
#    `koinon evidence` prints it.
# 4. The twin stops; the chain keeps committing.
#
# Usage: test_evidence.sh BIN_DIR
set -euo pipefail

BIN=$(cd "$1" && pwd)
KOINON="$BIN/koinon"
KOINOND="$BIN/koinond"
WORK=$(mktemp -d /tmp/koinon-evidence.XXXXXX)
# Ports 17000-17999: API base+0..3 and the twin's base+10; peers base+100..103
# and the twin's base+110.
BASE_PORT=$((17000 + ($$ % 8) * 120))
CHAIN="koinon-evidence-$$"
PIDS=()
TWIN_PID=

source "$(dirname "$0")/lib.sh"
fail() {
  log "FAIL: $*"
  tail_node_logs 20
  [ -f "$WORK/twin.log" ] && { echo "--- tail of twin.log"; tail -n 20 "$WORK/twin.log"; }
  exit 1
}
trap 'cleanup "$TWIN_PID"' EXIT
trap 'exit 1' INT TERM

for tool in curl jq; do command -v "$tool" >/dev/null || { echo "SKIP: $tool not installed"; exit 0; }; done

evidence_count() { status_of "$1" 2>/dev/null | jq -r '.evidence_recorded // 0'; }
has_evidence() { [ "$(evidence_count "$1")" -ge 1 ] 2>/dev/null; }
evidence_of() { curl -sf --max-time 5 "$(api "$1")/v1/evidence" | jq -cS .; }

# The four honest nodes list the same evidence (read until a moment when no
# block lands between the reads).
same_evidence() {
  local i first
  first=$(evidence_of 0) || return 1
  [ "$(jq '.evidence | length' <<<"$first")" -ge 1 ] || return 1
  for i in 1 2 3; do
    [ "$(evidence_of "$i")" = "$first" ] || return 1
  done
  EVIDENCE=$first
}

# ---------------------------------------------------------------- the network

log "work dir $WORK, base port $BASE_PORT"
NET="$WORK/net"
"$KOINON" init --validators 4 --out "$NET" --base-port "$BASE_PORT" --chain-id "$CHAIN" >/dev/null
# The twinned validator: the smallest key, which dials all the others.
TWINNED=$(jq -r '.validators | sort_by(.public_key) | .[0].name' "$NET/genesis.json")
TWINNED_KEY=$(jq -r '.validators | sort_by(.public_key) | .[0].public_key' "$NET/genesis.json")
log "twinned validator: $TWINNED ($TWINNED_KEY)"

mkdir -p "$WORK/twin"
cp "$NET/$TWINNED/node_key.json" "$WORK/twin/node_key.json"
jq --arg genesis "$NET/genesis.json" \
  --arg peer "127.0.0.1:$((BASE_PORT + 110))" --arg api "127.0.0.1:$((BASE_PORT + 10))" \
  '.genesis = $genesis | .data_dir = "data" | .peer_listen = $peer | .api_listen = $api' \
  "$NET/$TWINNED/node.json" >"$WORK/twin/node.json"

for i in 0 1 2 3; do
  name=$(jq -r ".validators[$i].name" "$NET/genesis.json")
  KOINON_CHECK_INVARIANTS=1 "$KOINOND" --config "$NET/$name/node.json" >>"$WORK/node$i.log" 2>&1 &
  PIDS[$i]=$!
done
KOINON_CHECK_INVARIANTS=1 "$KOINOND" --config "$WORK/twin/node.json" >>"$WORK/twin.log" 2>&1 &
TWIN_PID=$!
for i in 0 1 2 3; do wait_for 30 "node $i to serve chain $CHAIN" serves_chain "$i"; done
twin_serves() { [ "$(curl -sf --max-time 5 "http://127.0.0.1:$((BASE_PORT + 10))/v1/status" | jq -r .chain_id)" = "$CHAIN" ]; }
wait_for 30 "the twin to serve chain $CHAIN" twin_serves
wait_for 30 "four validators committing" all_at_least 2 0 1 2 3
log "four cities and a twin up"

# ---------------------------------------------------------------- evidence

# Two honest validators are frozen (SIGSTOP, by pid) just before a height the
# twinned validator proposes. The twins each build their own block for it and
# prevote it; the third honest validator cannot commit without the frozen two,
# so the height stays open while the twins keep taking its link to their
# validator from each other, and each twin repeats its votes of the height to
# it on every new link: it holds both conflicting prevotes. (Equal powers: a
# validator proposes round 0 of every fourth height.)
FROZEN=()
for i in 0 1 2 3; do
  name=$(jq -r ".validators[$i].name" "$NET/genesis.json")
  if [ "$name" = "$TWINNED" ]; then continue; fi
  if [ ${#FROZEN[@]} -lt 2 ]; then FROZEN+=("$i"); else HONEST=$i; fi
done
thaw() { local i; for i in "${FROZEN[@]}"; do kill -CONT "${PIDS[$i]}" 2>/dev/null || true; done; }
trap 'thaw; cleanup "$TWIN_PID"' EXIT
proposed_by_twins() {
  local h top
  top=$(height_of "$HONEST") || return 1
  for h in $(seq "$top" -1 1); do
    if [ "$(curl -sf --max-time 5 "$(api "$HONEST")/v1/blocks/$h" | jq -r .proposer)" = "$TWINNED" ]; then
      TURN=$h
      return 0
    fi
  done
  return 1
}
wait_for 30 "a block proposed by $TWINNED" proposed_by_twins
seen_live() { [ "$(status_of "$HONEST" | jq '.evidence | length')" -ge 1 ] 2>/dev/null; }
# With committed height h, the next one is the twins' when h + 1 = TURN mod 4.
twins_next() {
  local h
  h=$(height_of "$HONEST") || return 1
  [ $(((h + 1 - TURN) % 4)) = 0 ]
}
for attempt in 1 2 3 4 5; do
  wait_for 30 "the height before the twins' turn" twins_next
  for i in "${FROZEN[@]}"; do kill -STOP "${PIDS[$i]}"; done
  log "froze nodes ${FROZEN[*]} at height $(height_of "$HONEST") (attempt $attempt)"
  deadline=$((SECONDS + 10))
  until seen_live || [ $SECONDS -ge $deadline ]; do sleep 0.2; done
  seen_live && break
  [ "$attempt" -lt 5 ] || fail "node $HONEST saw no equivocation in $attempt attempts"
  thaw # the height went by before the freeze: try at the twins' next turn
done
log "equivocation seen by node $HONEST at height $(height_of "$HONEST")"

# The two thaw: the evidence transaction, waiting in the mempool of the node
# that saw it, commits with the next blocks and reaches every ledger.
thaw
wait_for 60 "the evidence recorded on node $HONEST" has_evidence "$HONEST"
log "evidence recorded at height $(height_of "$HONEST")"
wait_for 60 "all four at node $HONEST's height" all_at_least "$(height_of "$HONEST")" 0 1 2 3
wait_for 20 "the same evidence on all four nodes" same_evidence

for i in 0 1 2 3; do
  got=$(evidence_count "$i")
  [ "$got" -ge 1 ] && ok "node $i: /v1/status evidence_recorded $got" || bad "node $i: evidence_recorded $got"
done
# The in-memory list of what this node saw itself.
seen=0
for i in 0 1 2 3; do
  n=$(status_of "$i" | jq '.evidence | length')
  seen=$((seen + n))
done
[ "$seen" -ge 1 ] && ok "equivocations seen live: $seen" || bad "no node lists an equivocation in /v1/status .evidence"

first=$(jq -c '.evidence[0]' <<<"$EVIDENCE")
check "validator" "$(jq -r .validator <<<"$first")" "$TWINNED"
check "validator key" "$(jq -r .validator_key <<<"$first")" "$TWINNED_KEY"
# Every record is against the twinned validator and has two different votes.
check "all records against the twin" \
  "$(jq --arg k "$TWINNED_KEY" '[.evidence[] | select(.validator_key != $k)] | length' <<<"$EVIDENCE")" 0
check "conflicting votes" "$(jq '[.evidence[] | select(.block_a == .block_b)] | length' <<<"$EVIDENCE")" 0
type=$(jq -r .type <<<"$first")
case "$type" in prevote | precommit) ok "type $type" ;; *) bad "type '$type'" ;; esac
rec=$(jq -r .recorded_height <<<"$first")
h=$(jq -r .height <<<"$first")
# A later round of the votes' own height may already record them.
[ "$rec" -ge "$h" ] && ok "recorded at $rec, at or after the votes' height $h" || bad "recorded at $rec for votes at $h"

# The CLI: the table names the validator, --json is the node's answer.
out=$("$KOINON" evidence --node "$(api 1)")
echo "$out"
grep -q "^$TWINNED " <<<"$out" && ok "koinon evidence lists $TWINNED" || bad "koinon evidence: $out"
cli_json=$("$KOINON" evidence --node "$(api 1)" --json | jq -cS '.evidence[0]')
check "koinon evidence --json" "$cli_json" "$(jq -cS . <<<"$first")"

# ---------------------------------------------------------------- without the twin

log "stopping the twin"
kill "$TWIN_PID" 2>/dev/null || true
wait "$TWIN_PID" 2>/dev/null || true
TWIN_PID=
top=$(height_of 0)
wait_for 30 "the chain to commit past $((top + 3))" all_at_least $((top + 3)) 0 1 2 3
ok "chain committing without the twin: height $(height_of 0)"
wait_for 20 "the same evidence on all four nodes" same_evidence

[ "$FAILURES" -eq 0 ] || fail "$FAILURES check(s) failed"
log "PASS"
