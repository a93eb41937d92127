#!/usr/bin/env bash
# A city's aid cycle on four real koinond processes on loopback, from the
# command line only, as README.md's worked example runs it.
#
# 1. Seville's issuer grants a programme manager and an auditor, registers a
#    food and a pharmacy merchant, an off-programme (alcohol) merchant and
#    three SSE entities, issues money into the treasury and retires a little.
# 2. The manager registers 100 beneficiaries and creates a programme (food and
#    pharmacy only, a cap per beneficiary, no payments between beneficiaries)
#    that runs for KOINON_AID_WINDOW_MS; the issuer funds it; the manager
#    disburses to all 100 in one batch. Resubmitting the batch id pays no one
#    twice (duplicate_batch); over the cap (cap_exceeded), over the budget
#    (budget_exceeded) and an early expiry (programme_not_ended) are refused.
# 3. Every beneficiary spends at an allowed merchant; spending at the alcohol
#    merchant (category_not_allowed) and paying another beneficiary
#    (route_not_allowed) are refused and change no balance.
# 4. Merchants and SSE entities pay each other; two merchants redeem, paying the
#    early redemption fee; issuer and auditor claw back some aid (the issuer
#    alone cannot). After the end the aid can no longer be spent; after end +
#    grace the manager expires the programme and the rest returns.
# 5. All four nodes report the same currency and programme figures, and those
#    equal the figures computed here from the amounts used, exactly; every
#    account of the currency, its own ones included, sums to zero.
#
# Usage: test_aid_cycle.sh BIN_DIR
set -euo pipefail

BIN=$(cd "${1:?usage: test_aid_cycle.sh BIN_DIR}" && pwd)
KOINON="$BIN/koinon"
KOINOND="$BIN/koinond"
WORK=$(mktemp -d /tmp/koinon-aid.XXXXXX)
# Ports 13000-13999: API P..P+3, peers P+100..P+103; runs never overlap.
BASE_PORT=$((13000 + ($$ % 8) * 110))
CHAIN="koinon-aid-$$" # unique, so a stray node on our ports cannot pass for ours
BENEFICIARIES=100
WINDOW_MS=${KOINON_AID_WINDOW_MS:-30000} # how long the programme runs
GRACE_MS=4000
PIDS=()

source "$(dirname "$0")/lib.sh"
trap cleanup EXIT
trap 'exit 1' INT TERM


# ---------------------------------------------------------------- transactions

# ok_tx WHAT NODE CMD ARGS...: runs a koinon transaction command against NODE,
# waiting for its commit; fails the test unless the rules accepted it.
ok_tx() {
  local what=$1 node=$2 out rc=0
  shift 2
  out=$("$KOINON" "$@" --node "$(api "$node")" --wait --json 2>"$WORK/stderr") || rc=$?
  [ "$rc" = 0 ] || fail "$what: exit $rc: $out $(cat "$WORK/stderr")"
  wait_for 30 "all nodes to commit $what" all_at_least "$(jq -r .height <<<"$out")" 0 1 2 3
}

# refused CODE WHAT NODE CMD ARGS...: the rules refuse the transaction with
# CODE, either at admission (an error answer) or in its block (exit 3).
refused() {
  local want=$1 what=$2 node=$3 out rc=0 got
  shift 3
  out=$("$KOINON" "$@" --node "$(api "$node")" --wait --json 2>"$WORK/stderr") || rc=$?
  [ "$rc" != 0 ] || fail "$what: accepted, wanted $want"
  got=$(jq -r '.error.code // .result.code // empty' <<<"$out" 2>/dev/null || true)
  [ "$got" = "$want" ] || grep -qF "($want)" "$WORK/stderr" ||
    fail "$what: wanted $want, got exit $rc: $out $(cat "$WORK/stderr")"
  log "refused as expected: $what ($want)"
}

# bg_tx LIST NODE CMD ARGS...: submits without waiting, in the background; the
# node's answer (with the id) goes to the file LIST. settle LIST checks them.
BG=()
BG_FAILED=0

# Waits for the background submissions so far, counting failures in BG_FAILED.
bg_wait() {
  local pid
  for pid in "${BG[@]}"; do wait "$pid" || BG_FAILED=$((BG_FAILED + 1)); done
  BG=()
}

# settle LIST N: waits for the background submissions, for every mempool to
# drain, and checks that the N transactions of LIST committed with result ok.
settle() {
  local list=$1 n=$2
  bg_wait
  [ "$BG_FAILED" = 0 ] || fail "$BG_FAILED submissions of $list failed: $(tail -n 3 "$WORK/bg-errors")"
  [ "$(jq -r .id "$list" | sort -u | wc -l)" = "$n" ] || fail "$list: wanted $n distinct ids"
  wait_for 60 "the transactions of $(basename "$list") to commit" mempools_empty
  sync_nodes
  mkdir -p "$list.d"
  jq -r .id "$list" | xargs -P 8 -I{} curl -sf -o "$list.d/{}" "$(api $((RANDOM % 4)))/v1/txs/{}" ||
    fail "cannot read the transactions of $list"
  jq -r '.id + " " + .status + ":" + .result.code' "$list.d"/* >"$list.results"
  [ "$(grep -c ' committed:ok$' "$list.results")" = "$n" ] ||
    fail "not all of $list committed ok: $(grep -v ' committed:ok$' "$list.results" | head -n 3)"
}

# ---------------------------------------------------------------- reads

# bal NODE PK [SUB]: balance of PK's account SUB (main: "") in $CODE.
bal() {
  curl -sf "$(api "$1")/v1/accounts/$2" |
    jq -r --arg c "$CODE" --arg s "${3:-}" \
      '[.balances[] | select(.currency == $c and .sub == $s) | .balance] | add // 0'
}
# fetch_accounts NODE DIR PK...: each key's account JSON into DIR/PK, 8 at a time.
fetch_accounts() {
  local node=$1 dir=$2
  shift 2
  rm -rf "$dir" && mkdir -p "$dir"
  printf '%s\n' "$@" | xargs -P 8 -I{} curl -sf -o "$dir/{}" "$(api "$node")/v1/accounts/{}" ||
    fail "cannot read the accounts into $dir"
}
# sum_balances DIR [SUB]: the balances in $CODE of the accounts fetched into DIR,
# all of them or only those of sub-account SUB.
sum_balances() {
  jq -s -r --arg c "$CODE" --arg s "${2-}" --argjson all "$([ $# -ge 2 ] && echo false || echo true)" \
    '[.[].balances[] | select(.currency == $c and ($all or .sub == $s)) | .balance] | add // 0' "$1"/*
}
currency_json() { curl -sf "$(api "$1")/v1/currencies/$CODE"; }
programme_json() { curl -sf "$(api "$1")/v1/currencies/$CODE/programmes/$PROG"; }
# A figure of the currency (under "stats") or of the programme.
cstat() { currency_json "$1" | jq -r --arg f "$2" '.stats[$f] // .[$f]'; }
pstat() { programme_json "$1" | jq -r --arg f "$2" '.stats[$f] // .[$f]'; }

# expect WHAT GOT WANT
expect() { [ "$2" = "$3" ] || fail "$1 is $2, expected $3"; }

# ---------------------------------------------------------------- the devnet
start_devnet

CODE=SVQ
PROG=winter-aid
KEYS="$NET/keys"
ISSUER="$KEYS/issuer-svq.json"
MANAGER="$KEYS/manager-svq.json"
AUDITOR="$KEYS/auditor-svq.json"
for f in "$ISSUER" "$MANAGER" "$AUDITOR"; do [ -f "$f" ] || fail "koinon init made no $f"; done
EARLY_FEE_BPS=$(jq -r --arg c "$CODE" '.currencies[] | select(.code == $c) | .early_fee_bps' "$NET/genesis.json")
[ "$EARLY_FEE_BPS" -gt 0 ] || fail "the devnet currency has no early redemption fee"
pub() { "$KOINON" pubkey --key "$1"; }
MANAGER_PK=$(pub "$MANAGER")
AUDITOR_PK=$(pub "$AUDITOR")
mkdir -p "$WORK/keys"
FOOD=$(newkey food)
PHARMACY=$(newkey pharmacy)
BAR=$(newkey bar)
SSE1=$(newkey sse1)
SSE2=$(newkey sse2)
SSE3=$(newkey sse3)
B=("") # B[i]: beneficiary i's public key, 1..100
for i in $(seq 1 $BENEFICIARIES); do B[$i]=$(newkey "b$i"); done

# ---------------------------------------------------------------- 1. the city's parties
# A programme manager and an auditor need the issuer quorum (one key here).
bg_tx "$WORK/roles" 0 grant programme_manager "$MANAGER_PK" --currency $CODE --key "$ISSUER"
bg_tx "$WORK/roles" 1 grant auditor "$AUDITOR_PK" --currency $CODE --key "$ISSUER"
bg_tx "$WORK/roles" 2 grant merchant "$FOOD" --currency $CODE --category food --key "$ISSUER"
bg_tx "$WORK/roles" 3 grant merchant "$PHARMACY" --currency $CODE --category pharmacy --key "$ISSUER"
bg_tx "$WORK/roles" 0 grant merchant "$BAR" --currency $CODE --category alcohol --key "$ISSUER"
bg_tx "$WORK/roles" 1 grant sse "$SSE1" --currency $CODE --key "$ISSUER"
bg_tx "$WORK/roles" 2 grant sse "$SSE2" --currency $CODE --key "$ISSUER"
bg_tx "$WORK/roles" 3 grant sse "$SSE3" --currency $CODE --key "$ISSUER"
settle "$WORK/roles" 8
log "granted manager, auditor, 3 merchants, 3 SSE entities"

ISSUED=1000000
RETIRED=20000
ok_tx "issue into the treasury" 0 issue --currency $CODE --amount $ISSUED --ref "bank-attestation-2026-11" --key "$ISSUER"
ok_tx "retire from the treasury" 1 retire --currency $CODE --amount $RETIRED --ref "reserve-release-2026-11" --key "$ISSUER"
expect "issued" "$(cstat 2 issued)" $ISSUED
expect "retired" "$(cstat 2 retired)" $RETIRED
expect "supply after issue and retire" "$(cstat 3 supply)" $((ISSUED - RETIRED))

# The manager registers the beneficiaries, 25 submissions at a time.
for i in $(seq 1 $BENEFICIARIES); do
  bg_tx "$WORK/beneficiaries" $((i % 4)) grant beneficiary "${B[$i]}" --currency $CODE --key "$MANAGER"
  [ $((i % 25)) != 0 ] || bg_wait
done
settle "$WORK/beneficiaries" $BENEFICIARIES
log "registered $BENEFICIARIES beneficiaries"

# ---------------------------------------------------------------- 2. the programme
BUDGET=500000
FUNDED=450000
CAP=5000
END_MS=$(($(now_ms) + WINDOW_MS))
ok_tx "programme-create" 1 programme-create --currency $CODE --id $PROG --budget $BUDGET --start now \
  --end-ms $END_MS --cap $CAP --category food --category pharmacy --grace-ms $GRACE_MS --key "$MANAGER"
refused programme_not_ended "expiry before the end" 1 expire --currency $CODE --programme $PROG --key "$MANAGER"
ok_tx "fund" 0 fund --currency $CODE --programme $PROG --amount $FUNDED --key "$ISSUER"
refused budget_exceeded "funding beyond the budget" 0 fund --currency $CODE --programme $PROG \
  --amount $((BUDGET - FUNDED + 1)) --key "$ISSUER"
expect "funded" "$(pstat 3 funded)" $FUNDED

# Batch 1: 4000 to each of the 100, from a file.
: >"$WORK/batch1"
for i in $(seq 1 $BENEFICIARIES); do echo "${B[$i]} 4000" >>"$WORK/batch1"; done
ok_tx "disburse batch 1 to $BENEFICIARIES" 1 disburse --currency $CODE --programme $PROG --batch 2026-11-a \
  --file "$WORK/batch1" --key "$MANAGER"
refused duplicate_batch "the same batch again" 2 disburse --currency $CODE --programme $PROG \
  --batch 2026-11-a --file "$WORK/batch1" --key "$MANAGER"
# Batch 2: 1000 more to beneficiaries 1..10, up to the cap; one more unit is too many.
args=()
for i in $(seq 1 10); do args+=(--to "${B[$i]}:1000"); done
ok_tx "disburse batch 2" 2 disburse --currency $CODE --programme $PROG --batch 2026-11-b "${args[@]}" --key "$MANAGER"
refused cap_exceeded "a beneficiary beyond the cap" 3 disburse --currency $CODE --programme $PROG \
  --batch 2026-11-c --to "${B[1]}:1" --key "$MANAGER"
DISBURSED=$((BENEFICIARIES * 4000 + 10 * 1000))
expect "disbursed" "$(pstat 0 disbursed)" $DISBURSED
expect "beneficiary 1's aid" "$(bal 1 "${B[1]}" $PROG)" 5000
expect "beneficiary 50's aid" "$(bal 2 "${B[50]}" $PROG)" 4000
expect "beneficiaries" "$(pstat 3 beneficiaries)" $BENEFICIARIES
# Before expiry the programme's money is either disbursed or still in its account.
expect "programme balance before expiry" "$(pstat 1 balance)" $((FUNDED - DISBURSED))
log "disbursed $DISBURSED to $BENEFICIARIES beneficiaries; a repeated batch paid nobody twice"

# ---------------------------------------------------------------- 3. spending the aid
# Beneficiary i pays 1000 + 10 i: odd ones at the food shop, even ones at the pharmacy.
log "$BENEFICIARIES beneficiaries spend, $(((END_MS - $(now_ms)) / 1000)) s before the end"
SPENT_FOOD=0
SPENT_PHARMACY=0
for i in $(seq 1 $BENEFICIARIES); do
  amount=$((1000 + 10 * i))
  if [ $((i % 2)) = 1 ]; then to=$FOOD; SPENT_FOOD=$((SPENT_FOOD + amount))
  else to=$PHARMACY; SPENT_PHARMACY=$((SPENT_PHARMACY + amount)); fi
  bg_tx "$WORK/spends" $((i % 4)) transfer --currency $CODE --to "$to" --amount $amount \
    --programme $PROG --key "$(key "b$i")"
  [ $((i % 25)) != 0 ] || bg_wait
done
settle "$WORK/spends" $BENEFICIARIES
SPENT=$((SPENT_FOOD + SPENT_PHARMACY))
# The refusals below must still meet a running programme.
[ $((END_MS - $(now_ms))) -gt 3000 ] ||
  fail "the programme is about to end before the spending checks; raise KOINON_AID_WINDOW_MS"
expect "food shop balance" "$(bal 3 "$FOOD")" $SPENT_FOOD
expect "pharmacy balance" "$(bal 0 "$PHARMACY")" $SPENT_PHARMACY
expect "spent" "$(pstat 1 spent)" $SPENT
expect "spent on food" "$(programme_json 2 | jq -r '(.stats // .).spent_by_category.food')" $SPENT_FOOD
expect "spent on pharmacy" "$(programme_json 2 | jq -r '(.stats // .).spent_by_category.pharmacy')" $SPENT_PHARMACY

before="$(bal 0 "${B[3]}" $PROG) $(bal 0 "$BAR") $(bal 0 "${B[4]}") $(bal 0 "${B[4]}" $PROG)"
refused category_not_allowed "aid spent at the alcohol merchant" 1 transfer --currency $CODE --to "$BAR" \
  --amount 100 --programme $PROG --key "$(key b3)"
refused route_not_allowed "aid paid to another beneficiary" 2 transfer --currency $CODE --to "${B[4]}" \
  --amount 100 --programme $PROG --key "$(key b3)"
after="$(bal 0 "${B[3]}" $PROG) $(bal 0 "$BAR") $(bal 0 "${B[4]}") $(bal 0 "${B[4]}" $PROG)"
expect "balances of beneficiaries 3, 4 and the bar after refused payments" "$after" "$before"
expect "spent after refused payments" "$(pstat 3 spent)" $SPENT

# ---------------------------------------------------------------- 4. the local economy
ok_tx "food shop pays the pharmacy" 0 transfer --currency $CODE --to "$PHARMACY" --amount 2000 --key "$(key food)"
ok_tx "pharmacy pays SSE 1" 1 transfer --currency $CODE --to "$SSE1" --amount 3000 --key "$(key pharmacy)"
ok_tx "SSE 1 pays SSE 2" 2 transfer --currency $CODE --to "$SSE2" --amount 1000 --key "$(key sse1)"
ok_tx "SSE 2 pays the food shop" 3 transfer --currency $CODE --to "$FOOD" --amount 500 --key "$(key sse2)"
ok_tx "SSE 1 pays the bar" 0 transfer --currency $CODE --to "$BAR" --amount 700 --key "$(key sse1)"
ok_tx "SSE 2 pays SSE 3" 1 transfer --currency $CODE --to "$SSE3" --amount 200 --key "$(key sse2)"

# Redemptions: the merchants received money within early_days, so the early fee
# applies, rounded down.
REDEEM_FOOD=10001
REDEEM_PHARMACY=20000
FEE_FOOD=$((REDEEM_FOOD * EARLY_FEE_BPS / 10000))
FEE_PHARMACY=$((REDEEM_PHARMACY * EARLY_FEE_BPS / 10000))
ok_tx "food shop redeems" 2 redeem --currency $CODE --amount $REDEEM_FOOD --payout-ref "sepa-0001" --key "$(key food)"
ok_tx "pharmacy redeems" 3 redeem --currency $CODE --amount $REDEEM_PHARMACY --payout-ref "sepa-0002" --key "$(key pharmacy)"
FEES=$((FEE_FOOD + FEE_PHARMACY))
REDEEMED=$((REDEEM_FOOD + REDEEM_PHARMACY - FEES))
expect "fees" "$(cstat 0 fees)" $FEES
expect "redeemed" "$(cstat 1 redeemed)" $REDEEMED

# A clawback of aid needs the issuer quorum and an auditor.
CLAWED=500
refused not_authorised "clawback without an auditor" 0 clawback --currency $CODE --from "${B[100]}" \
  --programme $PROG --amount $CLAWED --case "case-17" --key "$ISSUER"
ok_tx "clawback" 0 clawback --currency $CODE --from "${B[100]}" --programme $PROG --amount $CLAWED \
  --case "case-17" --key "$ISSUER" --key "$AUDITOR"
expect "clawed back" "$(cstat 2 clawed_back)" $CLAWED
expect "beneficiary 100's aid after the clawback" "$(bal 2 "${B[100]}" $PROG)" $((4000 - (1000 + 10 * 100) - CLAWED))

# Before expiry: what was disbursed is spent, clawed back or still with the beneficiaries.
fetch_accounts 1 "$WORK/acc-before" "${B[@]:1}"
expect "aid still unspent" "$(sum_balances "$WORK/acc-before" $PROG)" $((DISBURSED - SPENT - CLAWED))
expect "programme balance before expiry" "$(pstat 0 balance)" $((FUNDED - DISBURSED))

# ---------------------------------------------------------------- expiry
wait_for $((WINDOW_MS / 1000 + 30)) "a block after the programme's end" after_ms "$END_MS"
refused programme_not_active "aid spent after the end" 1 transfer --currency $CODE --to "$FOOD" \
  --amount 10 --programme $PROG --key "$(key b5)"
wait_for $((GRACE_MS / 1000 + 30)) "a block after end + grace" after_ms $((END_MS + GRACE_MS))
ok_tx "expire" 1 expire --currency $CODE --programme $PROG --key "$MANAGER"
refused programme_expired "a second expiry" 2 expire --currency $CODE --programme $PROG --key "$MANAGER"
refused programme_expired "aid spent after expiry" 3 transfer --currency $CODE --to "$FOOD" \
  --amount 10 --programme $PROG --key "$(key b5)"
log "programme expired"

# ---------------------------------------------------------------- 5. four nodes, one set of figures
wait_for 60 "mempools to drain" mempools_empty
sync_nodes
h=$(for i in 0 1 2 3; do height_of "$i"; done | sort -n | head -n 1)
ref_cur=$(currency_json 0 | jq -S -c .)
ref_prog=$(programme_json 0 | jq -S -c .)
ref_block=$(curl -sf "$(api 0)/v1/blocks/$h" | jq -r '.id + " " + .state_hash')
for i in 1 2 3; do
  [ "$(currency_json "$i" | jq -S -c .)" = "$ref_cur" ] || fail "node $i reports other currency figures: $(currency_json "$i")"
  [ "$(programme_json "$i" | jq -S -c .)" = "$ref_prog" ] || fail "node $i reports other programme figures: $(programme_json "$i")"
  [ "$(curl -sf "$(api "$i")/v1/blocks/$h" | jq -r '.id + " " + .state_hash')" = "$ref_block" ] ||
    fail "node $i has another block at height $h"
done
log "all four nodes agree at height $h"

# The figures, computed from the amounts used above.
UNSPENT=$((DISBURSED - SPENT - CLAWED)) # swept from the beneficiaries at expiry
LEFT=$((FUNDED - DISBURSED))            # swept from the programme account
SUPPLY=$((ISSUED - RETIRED - REDEEMED))
OUTSTANDING=$((SPENT - REDEEM_FOOD - REDEEM_PHARMACY))
TREASURY=$((ISSUED - RETIRED - FUNDED + CLAWED + UNSPENT + LEFT))
expect "supply" "$(cstat 0 supply)" $SUPPLY
expect "issued" "$(cstat 1 issued)" $ISSUED
expect "retired" "$(cstat 2 retired)" $RETIRED
expect "redeemed" "$(cstat 3 redeemed)" $REDEEMED
expect "fees" "$(cstat 0 fees)" $FEES
expect "demurrage" "$(cstat 1 demurrage)" 0
expect "clawed back" "$(cstat 2 clawed_back)" $CLAWED
expect "outstanding" "$(cstat 3 outstanding)" $OUTSTANDING
expect "budget" "$(pstat 0 budget)" $BUDGET
expect "funded" "$(pstat 1 funded)" $FUNDED
expect "disbursed" "$(pstat 2 disbursed)" $DISBURSED
expect "spent" "$(pstat 3 spent)" $SPENT
expect "returned" "$(pstat 0 returned)" $((CLAWED + UNSPENT + LEFT))
expect "expired" "$(pstat 1 expired)" $((UNSPENT + LEFT))
expect "programme balance after expiry" "$(pstat 2 balance)" 0
expect "accounts with money by kind" \
  "$(currency_json 1 | jq -c '.stats.holders_by_kind | [.treasury, .programme, .beneficiary, .merchant, .sse, .fees]')" \
  "[1,0,0,3,3,1]"
# Everything funded is spent or back in the treasury.
expect "funded = spent + returned" $(($(pstat 3 spent) + $(pstat 3 returned))) "$(pstat 3 funded)"

# The balances themselves: every key's, then the currency's own accounts.
FINAL_FOOD=$((SPENT_FOOD - 2000 + 500 - REDEEM_FOOD))
FINAL_PHARMACY=$((SPENT_PHARMACY + 2000 - 3000 - REDEEM_PHARMACY))
expect "food shop" "$(bal 0 "$FOOD")" $FINAL_FOOD
expect "pharmacy" "$(bal 1 "$PHARMACY")" $FINAL_PHARMACY
expect "bar" "$(bal 2 "$BAR")" 700
expect "SSE 1" "$(bal 3 "$SSE1")" $((3000 - 1000 - 700))
expect "SSE 2" "$(bal 0 "$SSE2")" $((1000 - 500 - 200))
expect "SSE 3" "$(bal 1 "$SSE3")" 200
fetch_accounts 2 "$WORK/acc-after" "$FOOD" "$PHARMACY" "$BAR" "$SSE1" "$SSE2" "$SSE3" "${B[@]:1}"
keys_total=$(sum_balances "$WORK/acc-after")
expect "sum of the keys' balances" "$keys_total" $OUTSTANDING
expect "aid left with the beneficiaries after expiry" "$(sum_balances "$WORK/acc-after" $PROG)" 0
expect "beneficiaries' aid accounts" "$(jq -s --arg p $PROG '[.[].balances[] | select(.sub == $p)] | length' "$WORK/acc-after"/*)" $BENEFICIARIES
ZERO=$(printf '0%.0s' $(seq 1 64))
own=$(curl -sf "$(api 3)/v1/accounts/$ZERO") || fail "no listing of the currency's own accounts"
own_total=$(jq -r --arg c "$CODE" '[.balances[] | select(.currency == $c) | .balance] | add // 0' <<<"$own")
expect "all balances of $CODE, the issuing account included" $((own_total + keys_total)) 0
expect "treasury" "$(bal 3 "$ZERO" "#treasury")" $TREASURY
expect "fees account" "$(bal 3 "$ZERO" "#fees")" $FEES
expect "issuing account" "$(bal 3 "$ZERO" "#issuing")" $((-SUPPLY))
log "the figures add up: supply $SUPPLY, treasury $TREASURY, outstanding $OUTSTANDING, fees $FEES"
log "test_aid_cycle: all checks passed"
