# Helpers shared by the integration tests (sourced, not run). A script sets
# WORK (its temporary directory) and PIDS (the processes it started), and
# defines fail() before it calls wait_for.

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*"; }

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
