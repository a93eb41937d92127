#!/usr/bin/env bash
# Exchange between cities and a settlement cycle on four real koinond processes
# on loopback, from the command line only, as README.md's worked example runs it.
#
# 1. The consortium sets rates (each currency to EUR, and pairs between Seville,
#    Turin and Athens at a spread); Seville's issuer registers a cooperative
#    (SSE), Turin's a supplier, Athens' a taverna and Lisbon's a shop, each city
#    issues and funds its clearing account.
# 2. The cooperative pays the Turin supplier (send mode) and has an exact amount
#    delivered within a send-max; every balance on both sides, both clearing
#    accounts and the rounding are checked to the cent. A delivery over its
#    send-max (send_max_exceeded), a pair without a rate (unknown_pair), a rate
#    not yet in force and a payer's currency without a euro rate (missing_rate),
#    a holder without a business role on either side (exchange_not_allowed),
#    more than the receiving float (clearing_below_floor), an amount that
#    converts to nothing (amount_too_small) and a rate past its end
#    (rate_expired) are refused and change nothing.
# 3. Cycle 1: its positions sum to zero and equal those computed here; the
#    consortium closes it with multilateral netting (twice: cycle_closed);
#    later exchanges count in cycle 2; the obligations are those the netting
#    rule gives; a wrong amount (settlement_mismatch), a pair that owes nothing
#    (unknown_obligation), the debtor's issuer (not_authorised) and a second
#    settlement (already_settled) are refused; each creditor's issuer records
#    the payment and the cycle is settled. Cycle 2 closes with bilateral
#    netting.
# 4. Reports: exchanged out and in per currency equal the amounts used here,
#    from the CLI (JSON and CSV) and the API; all four nodes answer the same
#    JSON for the rates, the cycles and the reports; in every currency used all
#    balances still sum to zero.
#
# Usage: test_clearing.sh BIN_DIR
set -euo pipefail

BIN=$(cd "${1:?usage: test_clearing.sh BIN_DIR}" && pwd)
KOINON="$BIN/koinon"
KOINOND="$BIN/koinond"
WORK=$(mktemp -d /tmp/koinon-clearing.XXXXXX)
# Ports 16000-16999: API P..P+3, peers P+100..P+103; runs never overlap.
BASE_PORT=$((16000 + ($$ % 8) * 110))
CHAIN="koinon-clearing-$$" # unique, so a stray node on our ports cannot pass for ours
# How long the short-lived Athens -> Turin rate is in force: long enough for one
# exchange to commit within it.
RATE_WINDOW_MS=${KOINON_CLEARING_RATE_WINDOW_MS:-8000}
PIDS=()

source "$(dirname "$0")/lib.sh"
trap cleanup EXIT
trap 'exit 1' INT TERM

get() { curl -sf --max-time 5 "$(api "$1")$2"; }


# ---------------------------------------------------------------- transactions

# ok_tx WHAT NODE CMD ARGS...: runs a koinon transaction command against NODE,
# waiting for its commit on every node; fails the test unless the rules
# accepted it. TX is its id.
ok_tx() {
  local what=$1 node=$2 out rc=0
  shift 2
  out=$("$KOINON" "$@" --node "$(api "$node")" --wait --json 2>"$WORK/stderr") || rc=$?
  [ "$rc" = 0 ] || fail "$what: exit $rc: $out $(cat "$WORK/stderr")"
  TX=$(jq -r .id <<<"$out")
  wait_for 30 "all nodes to commit $what" all_at_least "$(jq -r .height <<<"$out")" 0 1 2 3
  log "committed: $what"
}

# refused CODE WHAT NODE CMD ARGS...: the rules refuse the transaction with
# CODE, either at admission (an error answer, exit 1) or in its block (exit 3).
# Accepted, it changed the state every later check relies on: the test stops.
refused() {
  local want=$1 what=$2 node=$3 out rc=0 got
  shift 3
  out=$("$KOINON" "$@" --node "$(api "$node")" --wait --json 2>"$WORK/stderr") || rc=$?
  [ "$rc" != 0 ] || fail "$what: accepted, wanted $want"
  got=$(jq -r '.error.code // .result.code // empty' <<<"$out" 2>/dev/null || true)
  if [ "$got" = "$want" ] || grep -qF "($want)" "$WORK/stderr"; then
    ok "$what: refused ($want)"
  else
    bad "$what: wanted $want, got exit $rc: $out $(cat "$WORK/stderr")"
  fi
  [ "$rc" != 3 ] || wait_for 30 "all nodes to record $what" all_at_least "$(jq -r .height <<<"$out")" 0 1 2 3
}

# bg_tx LIST NODE CMD ARGS...: submits without waiting, in the background; the
# node's answer (with the id) goes to the file LIST. await_batch LIST checks them.
BG=()

# await_batch LIST N: waits for the background submissions, for every mempool
# to drain, and checks that the N transactions of LIST committed with result ok.
await_batch() {
  local list=$1 n=$2 pid failed=0
  for pid in "${BG[@]}"; do wait "$pid" || failed=$((failed + 1)); done
  BG=()
  [ "$failed" = 0 ] || fail "$failed submissions of $list failed: $(tail -n 3 "$WORK/bg-errors")"
  [ "$(jq -r '.id // empty' "$list" | sort -u | wc -l)" = "$n" ] ||
    fail "$list: wanted $n distinct ids: $(jq -c 'select(.id == null)' "$list") $(cat "$WORK/bg-errors")"
  wait_for 60 "the transactions of $(basename "$list") to commit" mempools_empty
  sync_nodes
  local id st
  for id in $(jq -r .id "$list"); do
    st=$(get $((RANDOM % 4)) "/v1/txs/$id" | jq -r '.status + ":" + .result.code') ||
      fail "cannot read transaction $id"
    [ "$st" = committed:ok ] || fail "a transaction of $list is $st: $(get 0 "/v1/txs/$id")"
  done
  log "committed: $n transactions of $(basename "$list")"
}

# ---------------------------------------------------------------- reads

ZERO=$(printf '0%.0s' $(seq 1 64)) # the all-zero key owns each currency's own accounts
# bal NODE CODE PK [SUB]: balance of PK's account SUB (main: "") in CODE.
bal() {
  get "$1" "/v1/accounts/$3" |
    jq -r --arg c "$2" --arg s "${4:-}" '[.balances[] | select(.currency == $c and .sub == $s) | .balance] | add // 0'
}
clearing() { bal "$1" "$2" "$ZERO" "#clearing"; }
treasury() { bal "$1" "$2" "$ZERO" "#treasury"; }
cycle_json() { get "$1" "/v1/cycles/$2"; }
# positions NODE N: cycle N's positions as {"CODE": position, ...}.
positions() { cycle_json "$1" "$2" | jq -c '[.positions[] | {(.currency): .position}] | add // {}'; }
# obligations NODE N: cycle N's obligations as [[debtor, creditor, amount, settled], ...].
obligations() { cycle_json "$1" "$2" | jq -c '[.obligations[] | [.debtor, .creditor, .amount, .settled]]'; }
report_json() { get "$1" "/v1/reports/$2${3:+?$3}"; }

# What a refused transaction must leave alone: the balances of every party and
# clearing account, and the open cycle.
snapshot() {
  local n
  n=$(get 0 /v1/cycles | jq -r .current)
  echo "coop=$(bal 1 SVQ "$COOP") holder=$(bal 1 SVQ "$HOLDER") supplier=$(bal 2 TRN "$SUPPLIER")" \
    "turin_holder=$(bal 2 TRN "$TURIN_HOLDER") taverna=$(bal 3 ATH "$TAVERNA") shop=$(bal 3 LIS "$SHOP")" \
    "clearing=$(clearing 0 SVQ)/$(clearing 0 TRN)/$(clearing 0 ATH)/$(clearing 0 LIS)" \
    "cycle $n: $(cycle_json 0 "$n" | jq -c '[.exchanges, .value, .positions]')"
}

# ---------------------------------------------------------------- the devnet
start_devnet

KEYS="$NET/keys"
ADMIN="$KEYS/admin.json"
ISSUER_SVQ="$KEYS/issuer-svq.json"
ISSUER_TRN="$KEYS/issuer-trn.json"
ISSUER_ATH="$KEYS/issuer-ath.json"
ISSUER_LIS="$KEYS/issuer-lis.json"
for f in "$ADMIN" "$ISSUER_SVQ" "$ISSUER_TRN" "$ISSUER_ATH" "$ISSUER_LIS"; do
  [ -f "$f" ] || fail "koinon init made no $f"
done
mkdir -p "$WORK/keys"
COOP=$(newkey coop)                 # a Seville cooperative (SSE)
HOLDER=$(newkey holder)             # a Seville resident, no business role
SUPPLIER=$(newkey supplier)         # a Turin supplier (merchant)
TURIN_HOLDER=$(newkey turin-holder) # a Turin resident, no business role
TAVERNA=$(newkey taverna)           # an Athens merchant
SHOP=$(newkey shop)                 # a Lisbon merchant

# ---------------------------------------------------------------- 1. parties, money, rates
COOP_ISSUED=1000000
HOLDER_ISSUED=5000
TAVERNA_ISSUED=200000
SHOP_ISSUED=50000
TREASURY_ISSUED=500000 # into each city's treasury, for its clearing float
FAR_MS=$(($(now_ms) + 3600000))
bg_tx "$WORK/setup" 0 grant sse "$COOP" --currency SVQ --key "$ISSUER_SVQ"
bg_tx "$WORK/setup" 1 grant merchant "$SUPPLIER" --currency TRN --category wholesale --key "$ISSUER_TRN"
bg_tx "$WORK/setup" 2 grant merchant "$TAVERNA" --currency ATH --category food --key "$ISSUER_ATH"
bg_tx "$WORK/setup" 3 grant merchant "$SHOP" --currency LIS --category food --key "$ISSUER_LIS"
bg_tx "$WORK/setup" 0 issue --currency SVQ --amount $COOP_ISSUED --ref bank-svq-2026-11-a --to "$COOP" --key "$ISSUER_SVQ"
bg_tx "$WORK/setup" 1 issue --currency SVQ --amount $HOLDER_ISSUED --ref bank-svq-2026-11-b --to "$HOLDER" --key "$ISSUER_SVQ"
bg_tx "$WORK/setup" 2 issue --currency ATH --amount $TAVERNA_ISSUED --ref bank-ath-2026-11-a --to "$TAVERNA" --key "$ISSUER_ATH"
bg_tx "$WORK/setup" 3 issue --currency LIS --amount $SHOP_ISSUED --ref bank-lis-2026-11-a --to "$SHOP" --key "$ISSUER_LIS"
for c in SVQ TRN ATH LIS; do
  lc=$(tr A-Z a-z <<<$c)
  bg_tx "$WORK/setup" $((RANDOM % 4)) issue --currency $c --amount $TREASURY_ISSUED --ref "bank-$lc-2026-11-float" \
    --key "$KEYS/issuer-$lc.json"
done
# Each currency is worth a euro cent a cent; between cities the clearing
# union keeps a spread. TRN -> ATH only starts in an hour; LIS has no euro rate.
bg_tx "$WORK/setup" 0 rate-set --currency SVQ --quote EUR --rate 1/1 --days 365 --key "$ADMIN"
bg_tx "$WORK/setup" 1 rate-set --currency TRN --quote EUR --rate 1/1 --days 365 --key "$ADMIN"
bg_tx "$WORK/setup" 2 rate-set --currency ATH --quote EUR --rate 1/1 --days 365 --key "$ADMIN"
bg_tx "$WORK/setup" 3 rate-set --currency SVQ --quote TRN --rate 99/100 --days 365 --key "$ADMIN"
bg_tx "$WORK/setup" 0 rate-set --currency TRN --quote SVQ --rate 49/50 --days 365 --key "$ADMIN"
bg_tx "$WORK/setup" 1 rate-set --currency SVQ --quote ATH --rate 199/200 --days 365 --key "$ADMIN"
bg_tx "$WORK/setup" 2 rate-set --currency ATH --quote SVQ --rate 199/200 --days 365 --key "$ADMIN"
bg_tx "$WORK/setup" 3 rate-set --currency LIS --quote SVQ --rate 1/1 --days 365 --key "$ADMIN"
bg_tx "$WORK/setup" 0 rate-set --currency TRN --quote ATH --rate 99/100 --start-ms $FAR_MS --days 1 --key "$ADMIN"
await_batch "$WORK/setup" 21

FLOAT_TRN=100000
FLOAT_ATH=100000
FLOAT_LIS=50000
FUND_SVQ=100000
RETURN_SVQ=20000
FLOAT_SVQ=$((FUND_SVQ - RETURN_SVQ))
bg_tx "$WORK/fund" 0 clearing-fund --currency SVQ --amount $FUND_SVQ --key "$ISSUER_SVQ"
bg_tx "$WORK/fund" 1 clearing-fund --currency TRN --amount $FLOAT_TRN --key "$ISSUER_TRN"
bg_tx "$WORK/fund" 2 clearing-fund --currency ATH --amount $FLOAT_ATH --key "$ISSUER_ATH"
bg_tx "$WORK/fund" 3 clearing-fund --currency LIS --amount $FLOAT_LIS --key "$ISSUER_LIS"
await_batch "$WORK/fund" 4
ok_tx "Seville returns part of its float" 1 clearing-return --currency SVQ --amount $RETURN_SVQ --key "$ISSUER_SVQ"
refused insufficient_funds "a clearing return beyond the float" 2 clearing-return --currency SVQ \
  --amount $((FLOAT_SVQ + 1)) --key "$ISSUER_SVQ"
refused insufficient_funds "a clearing fund beyond the treasury" 3 clearing-fund --currency TRN \
  --amount $((TREASURY_ISSUED - FLOAT_TRN + 1)) --key "$ISSUER_TRN"
check "SVQ clearing account" "$(clearing 0 SVQ)" $FLOAT_SVQ
check "SVQ treasury" "$(treasury 0 SVQ)" $((TREASURY_ISSUED - FLOAT_SVQ))
check "TRN clearing account" "$(clearing 1 TRN)" $FLOAT_TRN
check "TRN treasury" "$(treasury 1 TRN)" $((TREASURY_ISSUED - FLOAT_TRN))
check "ATH clearing account" "$(clearing 2 ATH)" $FLOAT_ATH
check "LIS clearing account" "$(clearing 3 LIS)" $FLOAT_LIS
check "the clearing accounts' kind and floor" \
  "$(get 3 "/v1/accounts/$ZERO" | jq -c '[.accounts[] | select(.sub == "#clearing") | [.currency, .kind, .floor]] | sort')" \
  '[["ATH","clearing_house",0],["LIS","clearing_house",0],["SVQ","clearing_house",0],["TRN","clearing_house",0]]'
check "the rate SVQ -> TRN" \
  "$(get 2 /v1/rates | jq -c '[.rates[] | select(.base == "SVQ" and .quote == "TRN") | [.num, .den]]')" '[[99,100]]'
check "rates set" "$(get 1 /v1/rates | jq -c '[.rates[] | .base + ">" + .quote] | sort')" \
  '["ATH>EUR","ATH>SVQ","LIS>SVQ","SVQ>ATH","SVQ>EUR","SVQ>TRN","TRN>ATH","TRN>EUR","TRN>SVQ"]'
check "the future rate TRN -> ATH starts later" \
  "$(get 0 /v1/rates | jq -c '[.rates[] | select(.base == "TRN" and .quote == "ATH") | .start_ms]')" "[$FAR_MS]"
check "cycle 1 is open and empty" "$(cycle_json 1 1 | jq -c '[.number, .closed, .settled, .exchanges, .value, .positions]')" \
  '[1,false,false,0,0,[]]'

# Every amount below is computed here from the rates above, rounded in favour
# of the clearing accounts; VALUE is each exchange's worth in euro cents (every
# payer's currency is at 1/1 to EUR, so what the payer paid).
COOP_BAL=$COOP_ISSUED
SUPPLIER_BAL=0
TAVERNA_BAL=$TAVERNA_ISSUED
CL_SVQ=$FLOAT_SVQ
CL_TRN=$FLOAT_TRN
CL_ATH=$FLOAT_ATH
SVQ_OUT=0 SVQ_IN=0 TRN_OUT=0 TRN_IN=0 ATH_OUT=0 ATH_IN=0
# owe CYCLE DEBTOR CREDITOR VALUE: adds to what DEBTOR owes CREDITOR in CYCLE.
declare -A OWES=()
owe() { OWES[$1,$2,$3]=$((${OWES[$1,$2,$3]:-0} + $4)); }

# ---------------------------------------------------------------- 2. cross-border payments
# E1: the cooperative pays the Turin supplier 123.45 SVQ; the supplier gets
# floor(12345 * 99 / 100) = 12221 (122.21 TRN).
E1=12345
E1_GET=$((E1 * 99 / 100))
check "E1 rounds down" $E1_GET 12221
ok_tx "E1: the cooperative pays the Turin supplier" 0 exchange --currency SVQ --to-currency TRN --to "$SUPPLIER" \
  --amount $E1 --memo "invoice TO-2026-311" --key "$(key coop)"
COOP_BAL=$((COOP_BAL - E1)) CL_SVQ=$((CL_SVQ + E1)) CL_TRN=$((CL_TRN - E1_GET)) SUPPLIER_BAL=$((SUPPLIER_BAL + E1_GET))
SVQ_OUT=$((SVQ_OUT + E1)) TRN_IN=$((TRN_IN + E1_GET))
owe 1 SVQ TRN $E1
check "E1: the cooperative's SVQ" "$(bal 1 SVQ "$COOP")" $COOP_BAL
check "E1: the supplier's TRN" "$(bal 2 TRN "$SUPPLIER")" $SUPPLIER_BAL
check "E1: SVQ clearing account" "$(clearing 3 SVQ)" $CL_SVQ
check "E1: TRN clearing account" "$(clearing 0 TRN)" $CL_TRN
check "E1: the cooperative holds no TRN" "$(get 1 "/v1/accounts/$COOP" | jq -c '[.balances[].currency] | unique')" '["SVQ"]'
check "E1: the operation" "$(get 2 "/v1/txs/$TX" | jq -c '.ops[0] | [.kind, .currency, .to_currency, .amount]')" \
  "[\"exchange\",\"SVQ\",\"TRN\",$E1]"
check "E1: cycle 1 positions" "$(positions 1 1)" "{\"SVQ\":-$E1,\"TRN\":$E1}"

# E2: exactly 50.00 TRN delivered costs ceil(5000 * 100 / 99) = 5051 SVQ; a
# send-max of exactly that passes, one cent less is refused.
E2_GET=5000
E2=$(((E2_GET * 100 + 98) / 99))
check "E2 rounds up" $E2 5051
before=$(snapshot)
refused send_max_exceeded "a delivery over its send-max" 1 exchange --currency SVQ --to-currency TRN --to "$SUPPLIER" \
  --amount $E2_GET --deliver --send-max $((E2 - 1)) --key "$(key coop)"
check "state after send_max_exceeded" "$(snapshot)" "$before"
ok_tx "E2: the cooperative has 50.00 TRN delivered" 2 exchange --currency SVQ --to-currency TRN --to "$SUPPLIER" \
  --amount $E2_GET --deliver --send-max $E2 --key "$(key coop)"
COOP_BAL=$((COOP_BAL - E2)) CL_SVQ=$((CL_SVQ + E2)) CL_TRN=$((CL_TRN - E2_GET)) SUPPLIER_BAL=$((SUPPLIER_BAL + E2_GET))
SVQ_OUT=$((SVQ_OUT + E2)) TRN_IN=$((TRN_IN + E2_GET))
owe 1 SVQ TRN $E2
check "E2: the cooperative's SVQ" "$(bal 3 SVQ "$COOP")" $COOP_BAL
check "E2: the supplier's TRN" "$(bal 0 TRN "$SUPPLIER")" $SUPPLIER_BAL
check "E2: SVQ clearing account" "$(clearing 1 SVQ)" $CL_SVQ
check "E2: TRN clearing account" "$(clearing 2 TRN)" $CL_TRN

# E3: a rate Athens -> Turin in force for a few seconds only; the taverna pays
# the supplier within it (30.00 ATH -> 29.70 TRN).
RATE_END_MS=$(($(now_ms) + RATE_WINDOW_MS))
ok_tx "a short-lived rate ATH -> TRN" 3 rate-set --currency ATH --quote TRN --rate 99/100 --end-ms $RATE_END_MS --key "$ADMIN"
E3=3000
E3_GET=$((E3 * 99 / 100))
ok_tx "E3: the Athens taverna pays the Turin supplier" 0 exchange --currency ATH --to-currency TRN --to "$SUPPLIER" \
  --amount $E3 --key "$(key taverna)"
TAVERNA_BAL=$((TAVERNA_BAL - E3)) CL_ATH=$((CL_ATH + E3)) CL_TRN=$((CL_TRN - E3_GET)) SUPPLIER_BAL=$((SUPPLIER_BAL + E3_GET))
ATH_OUT=$((ATH_OUT + E3)) TRN_IN=$((TRN_IN + E3_GET))
owe 1 ATH TRN $E3
check "E3: the taverna's ATH" "$(bal 1 ATH "$TAVERNA")" $TAVERNA_BAL
check "E3: the supplier's TRN" "$(bal 2 TRN "$SUPPLIER")" $SUPPLIER_BAL
check "E3: ATH clearing account" "$(clearing 3 ATH)" $CL_ATH
check "E3: TRN clearing account" "$(clearing 0 TRN)" $CL_TRN

# Refusals: each changes nothing.
before=$(snapshot)
refused unknown_pair "SVQ -> LIS, a pair without a rate" 1 exchange --currency SVQ --to-currency LIS --to "$SHOP" \
  --amount 1000 --key "$(key coop)"
refused missing_rate "TRN -> ATH before its rate starts" 2 exchange --currency TRN --to-currency ATH --to "$TAVERNA" \
  --amount 1000 --key "$(key supplier)"
refused missing_rate "LIS -> SVQ without a LIS -> EUR rate" 3 exchange --currency LIS --to-currency SVQ --to "$COOP" \
  --amount 1000 --key "$(key shop)"
refused exchange_not_allowed "a Seville holder without a business role pays Turin" 0 exchange --currency SVQ \
  --to-currency TRN --to "$SUPPLIER" --amount 1000 --key "$(key holder)"
refused exchange_not_allowed "the cooperative pays a Turin holder without a business role" 1 exchange --currency SVQ \
  --to-currency TRN --to "$TURIN_HOLDER" --amount 1000 --key "$(key coop)"
# The smallest payment that would take one cent more than the TRN float.
OVER=$((((CL_TRN + 1) * 100 + 98) / 99))
refused clearing_below_floor "more than Turin's float ($((OVER * 99 / 100)) > $CL_TRN)" 2 exchange --currency SVQ \
  --to-currency TRN --to "$SUPPLIER" --amount $OVER --key "$(key coop)"
refused amount_too_small "1 cent SVQ, 0.99 cent TRN" 3 exchange --currency SVQ --to-currency TRN --to "$SUPPLIER" \
  --amount 1 --key "$(key coop)"
refused rate_expired "a rate whose end is past" 0 rate-set --currency LIS --quote EUR --rate 1/1 \
  --start-ms $(($(now_ms) - 7200000)) --end-ms $(($(now_ms) - 3600000)) --key "$ADMIN"
check "state after the refused exchanges" "$(snapshot)" "$before"
check "rates after the refused rate" "$(get 1 /v1/rates | jq -c '[.rates[] | select(.base == "LIS")] | length')" 1

# E4: the supplier pays the cooperative back 20.00 TRN -> 19.60 SVQ (49/50).
E4=2000
E4_GET=$((E4 * 49 / 50))
ok_tx "E4: the Turin supplier pays the cooperative" 1 exchange --currency TRN --to-currency SVQ --to "$COOP" \
  --amount $E4 --key "$(key supplier)"
SUPPLIER_BAL=$((SUPPLIER_BAL - E4)) CL_TRN=$((CL_TRN + E4)) CL_SVQ=$((CL_SVQ - E4_GET)) COOP_BAL=$((COOP_BAL + E4_GET))
TRN_OUT=$((TRN_OUT + E4)) SVQ_IN=$((SVQ_IN + E4_GET))
owe 1 TRN SVQ $E4
# E5: the taverna pays the cooperative 7.77 ATH -> floor(777 * 199 / 200) = 773.
E5=777
E5_GET=$((E5 * 199 / 200))
check "E5 rounds down" $E5_GET 773
ok_tx "E5: the Athens taverna pays the cooperative" 2 exchange --currency ATH --to-currency SVQ --to "$COOP" \
  --amount $E5 --key "$(key taverna)"
TAVERNA_BAL=$((TAVERNA_BAL - E5)) CL_ATH=$((CL_ATH + E5)) CL_SVQ=$((CL_SVQ - E5_GET)) COOP_BAL=$((COOP_BAL + E5_GET))
ATH_OUT=$((ATH_OUT + E5)) SVQ_IN=$((SVQ_IN + E5_GET))
owe 1 ATH SVQ $E5
# E6: the cooperative pays the taverna 90.00 SVQ -> 89.55 ATH.
E6=9000
E6_GET=$((E6 * 199 / 200))
ok_tx "E6: the cooperative pays the Athens taverna" 3 exchange --currency SVQ --to-currency ATH --to "$TAVERNA" \
  --amount $E6 --key "$(key coop)"
COOP_BAL=$((COOP_BAL - E6)) CL_SVQ=$((CL_SVQ + E6)) CL_ATH=$((CL_ATH - E6_GET)) TAVERNA_BAL=$((TAVERNA_BAL + E6_GET))
SVQ_OUT=$((SVQ_OUT + E6)) ATH_IN=$((ATH_IN + E6_GET))
owe 1 SVQ ATH $E6
check "the cooperative's SVQ" "$(bal 0 SVQ "$COOP")" $COOP_BAL
check "the supplier's TRN" "$(bal 1 TRN "$SUPPLIER")" $SUPPLIER_BAL
check "the taverna's ATH" "$(bal 2 ATH "$TAVERNA")" $TAVERNA_BAL
check "the clearing accounts SVQ/TRN/ATH" "$(clearing 3 SVQ)/$(clearing 3 TRN)/$(clearing 3 ATH)" "$CL_SVQ/$CL_TRN/$CL_ATH"

# After the short-lived rate's end (by block time), Athens -> Turin is refused.
wait_for $((RATE_WINDOW_MS / 1000 + 30)) "a block after the ATH -> TRN rate's end" after_ms "$RATE_END_MS"
before=$(snapshot)
refused rate_expired "ATH -> TRN after its rate's end" 0 exchange --currency ATH --to-currency TRN --to "$SUPPLIER" \
  --amount 1000 --key "$(key taverna)"
check "state after rate_expired" "$(snapshot)" "$before"
check "rates in force: ATH -> TRN ended, TRN -> ATH not started, SVQ -> TRN running" \
  "$(get 2 /v1/rates | jq -c '[.rates[] | select(.base + ">" + .quote | IN("ATH>TRN", "TRN>ATH", "SVQ>TRN")) | [.base, .quote, .in_force]] | sort')" \
  '[["ATH","TRN",false],["SVQ","TRN",true],["TRN","ATH",false]]'

# ---------------------------------------------------------------- 3. the settlement cycle
# A position is what the others owe the city less what it owes them.
declare -A POS=()
for k in "${!OWES[@]}"; do
  IFS=, read -r cyc debtor creditor <<<"$k"
  [ "$cyc" = 1 ] || continue
  POS[$debtor]=$((${POS[$debtor]:-0} - OWES[$k]))
  POS[$creditor]=$((${POS[$creditor]:-0} + OWES[$k]))
done
want_pos=$(for c in "${!POS[@]}"; do echo "$c ${POS[$c]}"; done | jq -Rsc 'split("\n") | map(select(. != "") | split(" ") | {(.[0]): (.[1] | tonumber)}) | add')
VALUE1=$((E1 + E2 + E3 + E4 + E5 + E6))
check "cycle 1 positions" "$(positions 2 1 | jq -Sc .)" "$(jq -Sc . <<<"$want_pos")"
check "cycle 1 positions sum to zero" "$(cycle_json 3 1 | jq '[.positions[].position] | add')" 0
check "cycle 1 exchanges and value" "$(cycle_json 0 1 | jq -c '[.exchanges, .value]')" "[6,$VALUE1]"
check "cycle 1 cities" "$(cycle_json 1 1 | jq -c '[.positions[] | [.currency, .city]] | sort')" \
  "$(jq -c '[.currencies[] | select(.code == "SVQ" or .code == "TRN" or .code == "ATH") | [.code, .city]] | sort' "$NET/genesis.json")"
# Multilateral netting: debtors and creditors in currency order, each payment
# the smaller of what the debtor still owes and the creditor is still owed.
WANT_OBL=$(jq -c '
  to_entries | sort_by(.key) as $p
  | {d: [$p[] | select(.value < 0) | [.key, -.value]], c: [$p[] | select(.value > 0) | [.key, .value]], out: []}
  | until((.d | length) == 0 or (.c | length) == 0;
      ([.d[0][1], .c[0][1]] | min) as $m
      | .out += [[.d[0][0], .c[0][0], $m, false]]
      | .d[0][1] -= $m | .c[0][1] -= $m
      | (if .d[0][1] == 0 then .d |= .[1:] else . end)
      | (if .c[0][1] == 0 then .c |= .[1:] else . end))
  | .out' <<<"$want_pos")
log "cycle 1: positions $want_pos; multilateral obligations $WANT_OBL"

refused cycle_open "settling the open cycle" 1 settle --cycle 1 --debtor SVQ --creditor TRN --amount 1 \
  --ref sepa-early --key "$ISSUER_TRN"
refused unknown_cycle "closing a cycle not open yet" 2 cycle-close --cycle 2 --netting multilateral --key "$ADMIN"
ok_tx "close cycle 1 (multilateral)" 3 cycle-close --cycle 1 --netting multilateral --key "$ADMIN"
refused cycle_closed "closing cycle 1 again" 0 cycle-close --cycle 1 --netting bilateral --key "$ADMIN"
check "cycle 1 closed" "$(cycle_json 1 1 | jq -c '[.closed, .settled, .netting, (.obligations | length)]')" \
  "[true,false,\"multilateral\",$(jq length <<<"$WANT_OBL")]"
check "cycle 1 obligations" "$(obligations 2 1)" "$WANT_OBL"
check "cycle 1 obligations add up to its positions" \
  "$(cycle_json 3 1 | jq -c '. as $c | [$c.positions[] | .currency as $k
      | .position + ([$c.obligations[] | select(.debtor == $k) | .amount] | add // 0)
                 - ([$c.obligations[] | select(.creditor == $k) | .amount] | add // 0)] | unique')" '[0]'
check "cycle 2 is open" "$(get 0 /v1/cycles | jq -c '[.cycles[] | [.number, .closed]] | sort')" '[[1,true],[2,false]]'

# E7 and E8, after the close, count in cycle 2.
E7=1000
E7_GET=$((E7 * 99 / 100))
ok_tx "E7: the cooperative pays the supplier in cycle 2" 1 exchange --currency SVQ --to-currency TRN --to "$SUPPLIER" \
  --amount $E7 --key "$(key coop)"
COOP_BAL=$((COOP_BAL - E7)) CL_SVQ=$((CL_SVQ + E7)) CL_TRN=$((CL_TRN - E7_GET)) SUPPLIER_BAL=$((SUPPLIER_BAL + E7_GET))
SVQ_OUT=$((SVQ_OUT + E7)) TRN_IN=$((TRN_IN + E7_GET))
E8=400
E8_GET=$((E8 * 49 / 50))
ok_tx "E8: the supplier pays the cooperative in cycle 2" 2 exchange --currency TRN --to-currency SVQ --to "$COOP" \
  --amount $E8 --key "$(key supplier)"
SUPPLIER_BAL=$((SUPPLIER_BAL - E8)) CL_TRN=$((CL_TRN + E8)) CL_SVQ=$((CL_SVQ - E8_GET)) COOP_BAL=$((COOP_BAL + E8_GET))
TRN_OUT=$((TRN_OUT + E8)) SVQ_IN=$((SVQ_IN + E8_GET))
check "cycle 2 positions" "$(positions 3 2 | jq -Sc .)" "{\"SVQ\":-$((E7 - E8)),\"TRN\":$((E7 - E8))}"
check "cycle 2 exchanges and value" "$(cycle_json 0 2 | jq -c '[.exchanges, .value]')" "[2,$((E7 + E8))]"
check "cycle 1 positions after the close" "$(positions 1 1 | jq -Sc .)" "$(jq -Sc . <<<"$want_pos")"
check "cycle 1 exchanges after the close" "$(cycle_json 1 1 | jq -c '[.exchanges, .value]')" "[6,$VALUE1]"

# Settlement: each creditor city's issuer records the euro payment it received.
first=$(jq -c '.[0]' <<<"$WANT_OBL")
D=$(jq -r '.[0]' <<<"$first") C=$(jq -r '.[1]' <<<"$first") A=$(jq -r '.[2]' <<<"$first")
issuer_of() { echo "$KEYS/issuer-$(tr A-Z a-z <<<"$1").json"; }
before=$(cycle_json 0 1 | jq -S -c .)
refused settlement_mismatch "settling $D -> $C with one cent less" 0 settle --cycle 1 --debtor "$D" --creditor "$C" \
  --amount $((A - 1)) --ref sepa-2026-12-x --key "$(issuer_of "$C")"
refused unknown_obligation "settling $C -> $D, which owes nothing" 1 settle --cycle 1 --debtor "$C" --creditor "$D" \
  --amount "$A" --ref sepa-2026-12-x --key "$(issuer_of "$D")"
refused not_authorised "the debtor's issuer settling $D -> $C" 2 settle --cycle 1 --debtor "$D" --creditor "$C" \
  --amount "$A" --ref sepa-2026-12-x --key "$(issuer_of "$D")"
refused unknown_cycle "settling a cycle not opened yet" 3 settle --cycle 9 --debtor "$D" --creditor "$C" \
  --amount "$A" --ref sepa-2026-12-x --key "$(issuer_of "$C")"
check "cycle 1 after the refused settlements" "$(cycle_json 0 1 | jq -S -c .)" "$before"
n=0
for o in $(jq -c '.[]' <<<"$WANT_OBL"); do
  n=$((n + 1))
  D=$(jq -r '.[0]' <<<"$o") C=$(jq -r '.[1]' <<<"$o") A=$(jq -r '.[2]' <<<"$o")
  ok_tx "settle $D -> $C $A" $((n % 4)) settle --cycle 1 --debtor "$D" --creditor "$C" --amount "$A" \
    --ref "sepa-2026-12-000$n" --key "$(issuer_of "$C")"
  check "obligation $D -> $C after its settlement" \
    "$(cycle_json $((n % 4)) 1 | jq -c --arg d "$D" --arg c "$C" '[.obligations[] | select(.debtor == $d and .creditor == $c)
      | [.settled, .ref, .settled_height > 0]]')" "[[true,\"sepa-2026-12-000$n\",true]]"
done
refused already_settled "settling $D -> $C twice" 0 settle --cycle 1 --debtor "$D" --creditor "$C" --amount "$A" \
  --ref sepa-2026-12-again --key "$(issuer_of "$C")"
check "cycle 1 settled" "$(cycle_json 1 1 | jq -c '[.closed, .settled, ([.obligations[] | select(.settled | not)] | length)]')" \
  '[true,true,0]'
check "cycle 1 obligations once settled" "$(obligations 2 1)" "$(jq -c 'map(.[3] = true)' <<<"$WANT_OBL")"

# Cycle 2, bilateral: SVQ and TRN net to one payment.
ok_tx "close cycle 2 (bilateral)" 3 cycle-close --cycle 2 --netting bilateral --key "$ADMIN"
check "cycle 2 obligations" "$(obligations 0 2)" "[[\"SVQ\",\"TRN\",$((E7 - E8)),false]]"
check "cycle 2 netting" "$(cycle_json 1 2 | jq -c '[.closed, .settled, .netting]')" '[true,false,"bilateral"]'

# The CLI shows the node's JSON.
check "koinon cycle 1 --json" "$("$KOINON" cycle 1 --json --node "$(api 2)" | jq -S -c .)" "$(cycle_json 2 1 | jq -S -c .)"
check "koinon cycles --json" "$("$KOINON" cycles --json --node "$(api 3)" | jq -S -c .)" "$(get 3 /v1/cycles | jq -S -c .)"
check "koinon rates --json" "$("$KOINON" rates --json --node "$(api 0)" | jq -S -c .)" "$(get 0 /v1/rates | jq -S -c .)"

# ---------------------------------------------------------------- balances, again
check "the cooperative's SVQ" "$(bal 0 SVQ "$COOP")" $COOP_BAL
check "the supplier's TRN" "$(bal 1 TRN "$SUPPLIER")" $SUPPLIER_BAL
check "the taverna's ATH" "$(bal 2 ATH "$TAVERNA")" $TAVERNA_BAL
check "the clearing accounts SVQ/TRN/ATH/LIS" "$(clearing 3 SVQ)/$(clearing 3 TRN)/$(clearing 3 ATH)/$(clearing 3 LIS)" \
  "$CL_SVQ/$CL_TRN/$CL_ATH/$FLOAT_LIS"
# Exchange moves money between keys and a city's own accounts: no currency's
# supply changes, and every currency still sums to zero.
for c in SVQ TRN ATH; do
  total=0
  for pk in "$ZERO" "$COOP" "$HOLDER" "$SUPPLIER" "$TURIN_HOLDER" "$TAVERNA" "$SHOP"; do
    total=$((total + $(get 1 "/v1/accounts/$pk" | jq -r --arg c $c '[.balances[] | select(.currency == $c) | .balance] | add // 0')))
  done
  check "all balances of $c sum to zero" $total 0
done
check "the supplies" "$(for c in SVQ TRN ATH; do get 2 "/v1/currencies/$c" | jq -r .stats.supply; done | paste -sd/)" \
  "$((COOP_ISSUED + HOLDER_ISSUED + TREASURY_ISSUED))/$TREASURY_ISSUED/$((TAVERNA_ISSUED + TREASURY_ISSUED))"

# ---------------------------------------------------------------- 4. reports
wait_for 60 "mempools to drain" mempools_empty
sync_nodes
# The period: from the genesis day to the day after the last block's (to is
# excluded), both in block time.
FROM=$(date -u -d "@$(($(jq -r .genesis_time_ms "$NET/genesis.json") / 1000))" +%F)
TO=$(date -u -d "$(date -u -d "@$(($(block_time_ms) / 1000))" +%F) + 1 day" +%F)
PERIOD="from=$FROM&to=$TO"
for c in SVQ TRN ATH; do
  case $c in
    SVQ) want="[$SVQ_OUT,$SVQ_IN]" ;;
    TRN) want="[$TRN_OUT,$TRN_IN]" ;;
    ATH) want="[$ATH_OUT,$ATH_IN]" ;;
  esac
  check "report $c: exchanged out and in" "$(report_json 1 $c "$PERIOD" | jq -c '[.exchanged_out, .exchanged_in]')" "$want"
done
# The other figures of Seville and Turin, from the amounts used: money put into
# keys' hands only by issue --to (treasury_paid), no local spending, so LM3 is
# 1 in Seville (0 in Turin: nothing injected) and retention and velocity 0.
FIGURES='[.currency, .issued, .retired, .treasury_paid, .injected, .spent, .respent, .other_payments, .returned,
  .redeemed, .fees, .outstanding_start, .outstanding_end, .lm3, .retention, .velocity]'
SVQ_ISSUED=$((COOP_ISSUED + HOLDER_ISSUED + TREASURY_ISSUED))
check "report SVQ: the other figures" "$(report_json 2 SVQ "$PERIOD" | jq -c "$FIGURES")" \
  "[\"SVQ\",$SVQ_ISSUED,0,$((COOP_ISSUED + HOLDER_ISSUED)),$((COOP_ISSUED + HOLDER_ISSUED)),0,0,0,0,0,0,0,$((COOP_BAL + HOLDER_ISSUED)),\"1.0000\",\"0.0000\",\"0.0000\"]"
check "report TRN: the other figures" "$(report_json 3 TRN "$PERIOD" | jq -c "$FIGURES")" \
  "[\"TRN\",$TREASURY_ISSUED,0,0,0,0,0,0,0,0,0,0,$SUPPLIER_BAL,\"0.0000\",\"0.0000\",\"0.0000\"]"
check "report SVQ: the period" "$(report_json 0 SVQ "$PERIOD" | jq -c '[.from, .to]')" "[\"$FROM\",\"$TO\"]"
out=$("$KOINON" report SVQ --from "$FROM" --to "$TO" --json --node "$(api 3)") || bad "koinon report SVQ --json failed"
check "koinon report SVQ --json is the node's JSON" "$(jq -S -c . <<<"$out")" "$(report_json 3 SVQ "$PERIOD" | jq -S -c .)"
check "koinon report SVQ --json: exchanged out and in" "$(jq -c '[.exchanged_out, .exchanged_in]' <<<"$out")" "[$SVQ_OUT,$SVQ_IN]"
"$KOINON" report SVQ --from "$FROM" --to "$TO" --csv --node "$(api 0)" >"$WORK/report.csv" || bad "koinon report SVQ --csv failed"
check "CSV header" "$(head -n 1 "$WORK/report.csv")" "currency,from,to,figure,value"
check "CSV exchanged_out" "$(grep -c "^SVQ,$FROM,$TO,exchanged_out,$SVQ_OUT$" "$WORK/report.csv")" 1
check "CSV exchanged_in" "$(grep -c "^SVQ,$FROM,$TO,exchanged_in,$SVQ_IN$" "$WORK/report.csv")" 1
get 1 "/v1/reports/SVQ?$PERIOD&format=csv" >"$WORK/report-api.csv" || bad "GET /v1/reports/SVQ?format=csv failed"
check "koinon report --csv is the node's CSV" "$(cmp "$WORK/report-api.csv" "$WORK/report.csv" && echo same)" same
# Every plain figure of the JSON report is a row of the CSV with its value.
report_json 0 SVQ "$PERIOD" | jq -r --arg f "$FROM" --arg t "$TO" 'to_entries[]
  | select(.value | type == "number" or type == "string") | select(.key | IN("currency", "from", "to") | not)
  | "SVQ,\($f),\($t),\(.key),\(.value)"' | sort >"$WORK/report-rows"
check "the JSON report has exchanged_out" "$(grep -c ",exchanged_out,$SVQ_OUT$" "$WORK/report-rows")" 1
# No spending by category here, so the CSV is its header and those rows.
check "CSV rows other than the JSON figures" \
  "$(tail -n +2 "$WORK/report.csv" | sort | comm -3 - "$WORK/report-rows" | paste -sd' ')" ""
"$KOINON" report SVQ --json --node "$(api 1)" >"$WORK/report-default.json" || bad "koinon report SVQ without a period failed"
check "the default period covers the exchanges" "$(jq -c '[.exchanged_out, .exchanged_in]' "$WORK/report-default.json")" \
  "[$SVQ_OUT,$SVQ_IN]"

# ---------------------------------------------------------------- four nodes, one answer
wait_for 60 "mempools to drain" mempools_empty
sync_nodes
for path in /v1/rates /v1/cycles /v1/cycles/1 /v1/cycles/2 "/v1/reports/SVQ?$PERIOD" "/v1/reports/TRN?$PERIOD" \
  "/v1/reports/ATH?$PERIOD" "/v1/reports/SVQ?$PERIOD&format=csv"; do
  ref=$(get 0 "$path" | jq -S -c . 2>/dev/null || get 0 "$path")
  same=0
  for i in 1 2 3; do
    got=$(get "$i" "$path" | jq -S -c . 2>/dev/null || get "$i" "$path")
    [ "$got" = "$ref" ] && same=$((same + 1)) || bad "node $i answers otherwise for $path: $got (node 0: $ref)"
  done
  [ -n "$ref" ] && [ "$same" = 3 ] && ok "all four nodes answer the same for $path"
  [ -n "$ref" ] || bad "node 0 gives no answer for $path"
done

[ "$FAILURES" = 0 ] || fail "$FAILURES checks failed"
log "test_clearing: all checks passed"
