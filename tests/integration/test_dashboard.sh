#!/usr/bin/env bash
# The live dashboard, in a real browser, next to four real koinond processes.
#
# 1. Start four validators on loopback and issue a little money (so the charts and
#    the currencies table have something to show).
# 2. Open the dashboard in headless Chromium (driven by playwright-core, see
#    dashboard_e2e.mjs): all four validators show online, the height advances.
# 3. SIGKILL one validator: the page shows it offline within OFFLINE_BOUND_S
#    (the node marks a peer offline when its link drops or after 3 s of silence).
# 4. Save a screenshot: to $KOINON_SCREENSHOT when set (docs/dashboard.png), else
#    into the temporary directory.
# 5. Check escaping and the unreachable banner against fixture answers.
#
# Needs node (>= 18), Chromium (/usr/bin/chromium; installed with apt-get when run
# as root) and playwright-core from npm (installed into $KOINON_E2E_CACHE, default
# ~/.cache/koinon-e2e). When one of them cannot be had the test prints "SKIP: ..."
# and passes.
#
# Usage: test_dashboard.sh BIN_DIR
set -euo pipefail

BIN=$(cd "$1" && pwd)
KOINON="$BIN/koinon"
KOINOND="$BIN/koinond"
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PAGE="$HERE/../../node/dashboard/index.html"
# Below the kernel's ephemeral range (32768+). API P..P+3, peers P+100..P+103.
BASE_PORT=$((30000 + ($$ % 12) * 200))
OFFLINE_BOUND_S=10
PLAYWRIGHT_VERSION=1.65.1
CACHE=${KOINON_E2E_CACHE:-$HOME/.cache/koinon-e2e}
CHROMIUM=${KOINON_CHROMIUM:-/usr/bin/chromium}
KILL_INDEX=3                              # the validator to SIGKILL (not 0: the page reads node 0)
# Where the browser opens the page: the one koinond embeds and serves. Empty would
# make dashboard_e2e.mjs serve node/dashboard/index.html itself and proxy /v1/ to
# node 0 (for working on the page without rebuilding).
source "$(dirname "$0")/lib.sh"
DASHBOARD_URL="$(api 0)/dashboard"
skip() {
  log "SKIP: $*"
  exit 0
}

# ---------------------------------------------------------------- browser tooling
command -v node >/dev/null || skip "node is not installed (apt-get install nodejs)"
[ "$(node -e 'console.log(process.versions.node.split(".")[0])')" -ge 18 ] ||
  skip "node $(node --version) is older than 18"
if [ ! -x "$CHROMIUM" ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    log "installing chromium with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    { timeout 300 apt-get update -qq && timeout 600 apt-get install -y -qq --no-install-recommends chromium; } ||
      skip "apt-get install chromium failed"
  fi
  [ -x "$CHROMIUM" ] || skip "no Chromium at $CHROMIUM (as root: apt-get install chromium)"
fi
if [ ! -f "$CACHE/node_modules/playwright-core/package.json" ] ||
  [ "$(jq -r .version "$CACHE/node_modules/playwright-core/package.json")" != "$PLAYWRIGHT_VERSION" ]; then
  command -v npm >/dev/null || skip "npm is not installed, cannot fetch playwright-core"
  log "installing playwright-core@$PLAYWRIGHT_VERSION into $CACHE"
  mkdir -p "$CACHE"
  timeout 180 npm install --prefix "$CACHE" --no-audit --no-fund --no-save --loglevel=error \
    "playwright-core@$PLAYWRIGHT_VERSION" >/dev/null 2>&1 ||
    skip "npm install playwright-core@$PLAYWRIGHT_VERSION failed (registry unreachable?)"
fi

# ---------------------------------------------------------------- network
WORK=$(mktemp -d /tmp/koinon-dashboard.XXXXXX)
PIDS=()
E2E_PID=""
trap 'cleanup $E2E_PID' EXIT
trap 'exit 1' INT TERM


log "work dir $WORK, base port $BASE_PORT"
"$KOINON" init --validators 4 --out "$WORK/net" --base-port "$BASE_PORT" >/dev/null
mapfile -t NAMES < <(jq -r '.validators[].name' "$WORK/net/genesis.json")
for i in 0 1 2 3; do
  "$KOINOND" --config "$WORK/net/${NAMES[$i]}/node.json" >>"$WORK/node$i.log" 2>&1 &
  PIDS[$i]=$!
done
T0=$SECONDS
wait_for 60 "four validators committing" all_at_least 2 0 1 2 3
log "network up after $((SECONDS - T0))s"

# A little money in every currency, submitted without waiting: transactions in the
# charts. Each issue lands in the treasury, which pays the holder on in the same
# transaction: three keys hold money in each currency.
HOLDERS=3
for k in $(seq 1 $HOLDERS); do "$KOINON" keygen --out "$WORK/holder$k.json" >/dev/null; done
mapfile -t CODES < <(jq -r '.currencies[].code' "$WORK/net/genesis.json")
for code in "${CODES[@]}"; do
  for k in $(seq 1 $HOLDERS); do
    "$KOINON" issue --key "$WORK/net/keys/issuer-${code,,}.json" --currency "$code" \
      --to "$("$KOINON" pubkey --key "$WORK/holder$k.json")" --amount $((k * 123456)) \
      --ref "reserve-$code-$k" --node "$(api $((k % 4)))" >/dev/null ||
      fail "issuing $code failed"
  done
done
SUPPLY=$((123456 * HOLDERS * (HOLDERS + 1) / 2))
issued_everywhere() {
  local code r
  for code in "${CODES[@]}"; do
    r=$(curl -sf -m 2 "$(api 0)/v1/currencies/$code" | jq -r '"\(.supply) \(.holders)"') || return 1
    [ "$r" = "$SUPPLY $HOLDERS" ] || return 1
  done
}
wait_for 30 "every currency at supply $SUPPLY with $HOLDERS holders" issued_everywhere

# ---------------------------------------------------------------- browser
SCREENSHOT=${KOINON_SCREENSHOT:-$WORK/dashboard.png}
mkdir -p "$WORK/chromium-profile"
log "opening ${DASHBOARD_URL:-the page (served by the test)} in $("$CHROMIUM" --version 2>/dev/null || echo chromium)"
API="$(api 0)" PAGE="$PAGE" DASHBOARD_URL="$DASHBOARD_URL" PLAYWRIGHT_DIR="$CACHE" CHROMIUM="$CHROMIUM" \
  USER_DATA_DIR="$WORK/chromium-profile" KILL_PID="${PIDS[$KILL_INDEX]}" KILL_NAME="${NAMES[$KILL_INDEX]}" \
  EXPECT_VALIDATORS=4 EXPECT_CURRENCIES=${#CODES[@]} EXPECT_HOLDERS=$HOLDERS OFFLINE_BOUND_MS=$((OFFLINE_BOUND_S * 1000)) SCREENSHOT="$SCREENSHOT" \
  timeout 300 node "$HERE/dashboard_e2e.mjs" &
E2E_PID=$!
rc=0
# (stderr of the wait only: bash would report the killed validator job here)
{ wait "$E2E_PID" || rc=$?; } 2>/dev/null
E2E_PID=""
# dashboard_e2e.mjs killed validator $KILL_INDEX; reap it.
{ wait "${PIDS[$KILL_INDEX]}"; } 2>/dev/null || true
PIDS[$KILL_INDEX]=""
[ "$rc" = 0 ] || fail "browser test failed (exit $rc)"
log "dashboard test passed in $((SECONDS - T0))s; screenshot $SCREENSHOT"
