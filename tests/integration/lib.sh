# Helpers shared by the integration tests (sourced, not run). A script sets
# WORK (its temporary directory) and PIDS (the processes it started); it may
# define its own fail() after sourcing this file.

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*"; }

# A failure nothing sensible can follow: the node logs' last lines, then out.
fail() {
  log "FAIL: $*"
  tail_node_logs 20
  exit 1
}

# Ends the processes this test started (PIDS, plus any pids given), by pid
# only, waits for them, and removes WORK.
cleanup() {
  local pid
  for pid in "${PIDS[@]}" "$@"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}" "$@"; do
    [ -n "$pid" ] && wait "$pid" 2>/dev/null || true
  done
  rm -rf "$WORK"
}

# Polls "$@" every 0.2 s until it succeeds; fail()s after $1 seconds.
wait_for() {
  local secs=$1 what=$2
  shift 2
  local deadline=$((SECONDS + secs))
  until "$@"; do
    [ $SECONDS -lt $deadline ] || fail "timed out after ${secs}s waiting for: $what"
    sleep 0.2
  done
}

# Prints the last lines of the node logs WORK/node0.log ... node3.log.
tail_node_logs() {
  local i
  for i in 0 1 2 3; do
    [ -f "$WORK/node$i.log" ] && { echo "--- tail of node$i.log"; tail -n "${1:-30}" "$WORK/node$i.log"; }
  done
  return 0
}

# Checks that report and go on, so one bug does not hide the others; a test
# ends with a failure when FAILURES is not 0.
FAILURES=0
ok() { echo "ok: $*"; }
bad() {
  echo "FAIL: $*"
  FAILURES=$((FAILURES + 1))
}

# check WHAT GOT WANT: reports and goes on.
check() { if [ "$2" = "$3" ]; then ok "$1: $2"; else bad "$1: got '$2', wanted '$3'"; fi; }

# ---------------------------------------------------------------- a local network
# For tests that run validators with API ports BASE_PORT+0, +1, ...

api() { echo "http://127.0.0.1:$((BASE_PORT + $1))"; }
status_of() { curl -sf --max-time 5 "$(api "$1")/v1/status"; }
height_of() { status_of "$1" | jq -r .height; }
now_ms() { date +%s%3N; }
block_time_ms() { status_of 0 | jq -r .last_block_time_ms; }
after_ms() { [ "$(block_time_ms)" -ge "$1" ]; }

# all_at_least H NODE...: every node listed has committed height H.
all_at_least() {
  local h=$1 i got
  for i in "${@:2}"; do
    got=$(height_of "$i" 2>/dev/null) || return 1
    [ -n "$got" ] && [ "$got" -ge "$h" ] || return 1
  done
}

# mempools_empty [NODE...] (default 0 1 2 3)
mempools_empty() {
  local i nodes=("$@")
  [ $# -gt 0 ] || nodes=(0 1 2 3)
  for i in "${nodes[@]}"; do
    [ "$(status_of "$i" | jq -r .mempool.size)" = 0 ] || return 1
  done
}

# Waits until nodes 0-3 have reached the highest height any of them reports,
# so that a read from any node sees what was committed before.
sync_nodes() {
  local i h top=0
  for i in 0 1 2 3; do
    h=$(height_of "$i") || fail "node $i does not answer"
    [ "$h" -le "$top" ] || top=$h
  done
  wait_for 30 "all nodes at height $top" all_at_least "$top" 0 1 2 3
}

# Key files in WORK/keys: newkey NAME creates one and prints its public key.
newkey() { "$KOINON" keygen --out "$WORK/keys/$1.json"; }
key() { echo "$WORK/keys/$1.json"; }

# bg_tx LIST NODE ARGS...: submits a transaction in the background, its JSON
# answer appended to LIST; the pid goes to BG.
bg_tx() {
  local list=$1 node=$2
  shift 2
  { "$KOINON" "$@" --node "$(api "$node")" --json | jq -c . >>"$list"; } 2>>"$WORK/bg-errors" &
  BG+=($!)
}

# start_devnet: a four-city network in WORK/net for chain CHAIN on BASE_PORT
# (koinon init), every node auditing the ledger after each block; returns once
# all four commit. With NODE_JQ set, each node.json is first rewritten by that
# jq filter (e.g. '.heartbeat_ms = 50'). Sets NET and PIDS[0..3].
start_devnet() {
  local i name
  log "work dir $WORK, base port $BASE_PORT"
  NET="$WORK/net"
  "$KOINON" init --validators 4 --out "$NET" --base-port "$BASE_PORT" --chain-id "$CHAIN" >/dev/null
  if [ -n "${NODE_JQ:-}" ]; then
    for i in 0 1 2 3; do
      name=$(jq -r ".validators[$i].name" "$NET/genesis.json")
      jq "$NODE_JQ" "$NET/$name/node.json" >"$NET/$name/node.json.new" ||
        fail "NODE_JQ does not apply to $name/node.json"
      mv "$NET/$name/node.json.new" "$NET/$name/node.json"
    done
  fi
  for i in 0 1 2 3; do start_validator "$i"; done
  for i in 0 1 2 3; do wait_for 30 "node $i to serve chain $CHAIN" serves_chain "$i"; done
  wait_for 60 "four validators committing" all_at_least 2 0 1 2 3
  log "four cities up"
}
serves_chain() { [ "$(status_of "$1" 2>/dev/null | jq -r .chain_id)" = "$CHAIN" ]; }

# start_validator I: starts validator I of the devnet in NET on its own data
# dir (again, after a stop), logging to WORK/nodeI.log; its pid goes to PIDS[I].
start_validator() {
  local name
  name=$(jq -r ".validators[$1].name" "$NET/genesis.json")
  KOINON_CHECK_INVARIANTS=1 "$KOINOND" --config "$NET/$name/node.json" >>"$WORK/node$1.log" 2>&1 &
  PIDS[$1]=$!
}
