#!/usr/bin/env bash
# The money views of the client API as docs/API.md promises them, fed and read
# through the koinon CLI: accounts with kinds, flags and roles; the paged
# history of movements; currencies with their figures and admins; programmes
# with theirs; and every route's error paths with their exact statuses.
#
# One validator on loopback (it commits alone; the height moves only with
# transactions). Through the CLI: create a currency; grant a programme manager,
# a food merchant and a beneficiary; issue into the treasury; create, fund and
# disburse a programme; the beneficiary spends aid at the merchant (once with a
# memo, whose commitment is checked by hand); the merchant pays a holder five
# times; freeze and unfreeze the holder; the merchant redeems. Refusals (by the
# CLI or by the ledger) change nothing. The history is paged with a cursor
# until its end and must equal one large page.
#
# Usage: test_money_api.sh BIN_DIR
set -euo pipefail

BIN=$(cd "${1:?usage: test_money_api.sh BIN_DIR}" && pwd)
KOINON="$BIN/koinon"
KOINOND="$BIN/koinond"
WORK=$(mktemp -d /tmp/koinon-money.XXXXXX)
# Ports 12000-12999, on loopback: API P, peers P + 100.
BASE_PORT=$((12000 + ($$ % 90) * 10))
URL="http://127.0.0.1:$BASE_PORT"
CHAIN="koinon-money-$$" # unique, so a stray node on our port cannot pass for ours
CODE=SVQ
PROG=aid1
PIDS=()
NODE_LOG="$WORK/node.log"

source "$(dirname "$0")/lib.sh"
# Nothing sensible can follow: stop here.
fail() {
  log "FAIL: $*"
  [ -f "$NODE_LOG" ] && { echo "--- tail of $NODE_LOG"; tail -n 30 "$NODE_LOG"; }
  exit 1
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# http METHOD PATH: sets $code, $body, $errcode (error.code of a JSON error).
http() {
  code=$(curl -sS --max-time 10 -o "$WORK/body" -D "$WORK/headers" -w '%{http_code}' \
    -X "$1" "$URL$2") || fail "curl $1 $2 failed"
  body=$(cat "$WORK/body")
  errcode=$(jq -r '.error.code // empty' <<<"$body" 2>/dev/null || true)
}
# expect STATUS ERRCODE WHAT: checks the last http call (ERRCODE - for none).
expect() {
  local got="$code ${errcode:--}"
  if [ "$got" = "$1 $2" ]; then ok "$3: $1 $2"; else bad "$3: got $got, wanted $1 $2; body: ${body:0:200}"; fi
}
get() { curl -sf --max-time 10 "$URL$1"; }

# cli ARGS...: runs koinon against the node; sets $out, $err, $rc and $posted:
# the HTTP status of the POST /v1/txs it made, from the node's debug log.
cli() {
  local before lines
  before=$(grep -c 'method=POST path=/v1/txs' "$NODE_LOG" || true)
  rc=0
  timeout 60 "$KOINON" "$@" --node "$URL" >"$WORK/out" 2>"$WORK/err" || rc=$?
  out=$(cat "$WORK/out")
  err=$(cat "$WORK/err")
  mapfile -t lines < <(grep 'method=POST path=/v1/txs' "$NODE_LOG" | tail -n +$((before + 1)))
  posted=none
  [ ${#lines[@]} = 0 ] || posted=${lines[-1]##*status=}
}
# ok_tx WHAT ARGS...: a transaction command that must commit with result ok.
ok_tx() {
  local what=$1
  shift
  cli "$@" --wait --json
  [ "$rc" = 0 ] && [ "$(jq -r .result.code <<<"$out")" = ok ] || fail "$what: exit $rc: $out $err"
  TXID=$(jq -r .id <<<"$out")
  COMMITTED+=("$TXID $1")
  ok "$what: committed $TXID"
}
COMMITTED=() # "id command" of every transaction ok_tx committed
# refused RC POST CODE WHAT ARGS...: the CLI exits RC naming CODE on stderr,
# after the node answered its POST with the HTTP status POST (none: the CLI
# refused it itself). The ledger rules refuse at admission with 422.
refused() {
  local want_rc=$1 want_post=$2 want=$3 what=$4
  shift 4
  cli "$@" --wait
  if [ "$rc $posted" = "$want_rc $want_post" ] && grep -qF -- "$want" <<<"$err"; then
    ok "$what: exit $rc, HTTP $posted, $want"
  else
    bad "$what: exit $rc, HTTP $posted, wanted $want_rc, $want_post with '$want'; stderr: $err"
  fi
}

# Everything a refusal must leave alone.
snapshot() {
  local st cur
  st=$(get /v1/status | jq -r .height)
  cur=$(get "/v1/currencies/$CODE" | jq -c '.stats')
  echo "height=$st $cur $(get "/v1/currencies/$CODE/programmes/$PROG" | jq -c '[.stats, .balance]')"
}

# ---------------------------------------------------------------- the node
log "work dir $WORK, port $BASE_PORT"
NET="$WORK/net"
"$KOINON" init --validators 1 --out "$NET" --chain-id "$CHAIN" --base-port "$BASE_PORT" >/dev/null
NAME=$(jq -r '.validators[0].name' "$NET/genesis.json")
CONF="$NET/$NAME/node.json"
# Debug logs name the status of every request; no heartbeat blocks, so the
# height moves only when a transaction commits.
jq '.log_level = "debug" | .heartbeat_ms = 590000 | .timeout_propose_ms = 600000 | .wait_commit_ms = 20000' \
  "$CONF" >"$CONF.new"
mv "$CONF.new" "$CONF"
KOINON_CHECK_INVARIANTS=1 "$KOINOND" --config "$CONF" >>"$NODE_LOG" 2>&1 &
PIDS+=($!)
serves_chain() { [ "$(curl -s --max-time 2 "$URL/v1/status" | jq -r .chain_id 2>/dev/null)" = "$CHAIN" ]; }
wait_for 20 "the validator to serve $CHAIN on $URL" serves_chain

KEYS="$NET/keys"
ADMIN="$KEYS/admin.json"
ISSUER="$KEYS/issuer-svq.json"
MANAGER="$KEYS/manager-svq.json"
pub() { "$KOINON" pubkey --key "$1"; }
ISSUER_PK=$(pub "$ISSUER")
MANAGER_PK=$(pub "$MANAGER")
for who in shop ben holder; do "$KOINON" keygen --out "$WORK/$who.json" >/dev/null; done
SHOP=$(pub "$WORK/shop.json")
BEN=$(pub "$WORK/ben.json")
HOLDER=$(pub "$WORK/holder.json")
ZERO=$(printf '0%.0s' {1..64})

# ---------------------------------------------------------------- state, through the CLI
ok_tx "currency-create TST" currency-create --code TST --name "Test Thaler" --city Testville --scale 3 \
  --max-supply 5000000 --flags p2p,holder_redeem --issuer-admin "$ISSUER_PK" --threshold 1 \
  --fee-bps 50 --key "$ADMIN"
ok_tx "grant programme_manager" grant programme_manager "$MANAGER_PK" --currency $CODE --key "$ISSUER"
ok_tx "grant merchant (food)" grant merchant "$SHOP" --currency $CODE --category food --key "$ISSUER"
ok_tx "grant beneficiary" grant beneficiary "$BEN" --currency $CODE --key "$MANAGER"
ok_tx "issue 100000" issue --currency $CODE --amount 100000 --ref att-2026-11 --key "$ISSUER"
ok_tx "programme-create $PROG" programme-create --currency $CODE --id $PROG --budget 50000 --start now \
  --days 30 --cap 20000 --category food --key "$MANAGER"
ok_tx "fund 30000" fund --currency $CODE --programme $PROG --amount 30000 --key "$ISSUER"
ok_tx "disburse 10000" disburse --currency $CODE --programme $PROG --batch b1 --to "$BEN:10000" --key "$MANAGER"
DISBURSE_TX=$TXID
MEMO="groceries, week 47"
ok_tx "aid spent at the merchant, with a memo" transfer --currency $CODE --to "$SHOP" --amount 1500 \
  --programme $PROG --memo "$MEMO" --key "$WORK/ben.json"
MEMO_TX=$TXID
SALT=$(sed -n 's/^memo salt //p' <<<"$err")
COMMITMENT=$(sed -n 's/^memo commitment //p' <<<"$err")
ok_tx "aid spent at the merchant" transfer --currency $CODE --to "$SHOP" --amount 500 --programme $PROG \
  --key "$WORK/ben.json"
AID_TX=$TXID
for amount in 100 200 300 400 500; do
  ok_tx "merchant pays the holder $amount" transfer --currency $CODE --to "$HOLDER" --amount $amount \
    --key "$WORK/shop.json"
done
# Balances now: shop 2000 - 1500 = 500, holder 1500, ben's aid 8000, treasury
# 70000, programme account 20000; spent 2000.

# ---------------------------------------------------------------- memo commitment
want=$(python3 -c 'import hashlib,sys; print(hashlib.blake2b(b"koinon/memo/v1\0" + bytes.fromhex(sys.argv[1]) + sys.argv[2].encode(), digest_size=32).hexdigest())' "$SALT" "$MEMO")
check "memo commitment = BLAKE2b-256(domain, salt || memo)" "$COMMITMENT" "$want"
http GET "/v1/txs/$MEMO_TX"
check "GET /v1/txs/{memo tx}: the operation" \
  "$(jq -r '.ops[0] | "\(.kind) \(.currency) \(.programme) \(.to) \(.amount) \(.memo)"' <<<"$body")" \
  "transfer $CODE $PROG $SHOP 1500 $COMMITMENT"
check "GET /v1/txs/{memo tx}: signers" "$(jq -r '.signers | join(",")' <<<"$body")" "$BEN"
cli tx "$MEMO_TX"
grep -q "transfer $CODE .*memo=$COMMITMENT" <<<"$out" && ok "koinon tx shows the operation" ||
  bad "koinon tx: $out"
grep -qF "$MEMO" "$NODE_LOG" "$WORK/body" && bad "the memo text reached the node" || ok "the memo text never left the CLI"

# ---------------------------------------------------------------- accounts
http GET "/v1/accounts/$SHOP"
expect 200 - "GET /v1/accounts/{merchant}"
check "merchant accounts" "$(jq -c '[.accounts[] | [.currency, .sub, .kind, .flags, .balance, .floor, .scale]]' <<<"$body")" \
  "[[\"$CODE\",\"\",\"merchant\",[\"authorised\"],500,0,2]]"
check "merchant roles" "$(jq -c '[.roles[] | [.currency, .roles, .category]]' <<<"$body")" "[[\"$CODE\",[\"merchant\"],\"food\"]]"
check "merchant balances" "$(jq -c '.balances' <<<"$body")" "[{\"currency\":\"$CODE\",\"sub\":\"\",\"balance\":500,\"scale\":2}]"
http GET "/v1/accounts/$BEN"
check "beneficiary's aid sub-account" "$(jq -r '.accounts[] | select(.sub == "'$PROG'") | "\(.kind) \(.balance)"' <<<"$body")" \
  "beneficiary 8000"
check "beneficiary roles" "$(jq -c '[.roles[].roles[]]' <<<"$body")" '["beneficiary"]'
http GET "/v1/accounts/$ZERO"
check "the currency's own accounts" \
  "$(jq -c '[.accounts[] | select(.currency == "'$CODE'") | [.sub, .kind, .balance, .floor]] | sort' <<<"$body")" \
  "$(jq -nc --arg p $PROG '[["#issuing","issuing",-100000,null],["#treasury","treasury",70000,0],
    [$p,"programme",20000,0],["#fees","fees",0,0],["#demurrage","demurrage",0,0],
    ["#clearing","clearing_house",0,0]] | sort')"

ok_tx "freeze the holder" freeze "$HOLDER" --currency $CODE --key "$ISSUER"
check "holder flags when frozen" "$(get "/v1/accounts/$HOLDER" | jq -c '.accounts[0] | [.kind, .flags, .balance]')" \
  '["holder",["frozen"],1500]'
ok_tx "unfreeze the holder" unfreeze "$HOLDER" --currency $CODE --key "$ISSUER"
check "holder flags when unfrozen" "$(get "/v1/accounts/$HOLDER" | jq -c '.accounts[0].flags')" '[]'

cli account "$SHOP"
grep -qE "^  $CODE +merchant +main +5\.00 \(500\)  \[authorised\]$" <<<"$out" && grep -qE "^  $CODE +merchant  category food$" <<<"$out" &&
  ok "koinon account shows the merchant account and role" || bad "koinon account printed: $out"
cli account --key "$WORK/shop.json" --json
check "koinon account --json is the node's JSON" "$(jq -Sc . <<<"$out")" "$(get "/v1/accounts/$SHOP" | jq -Sc .)"

# ---------------------------------------------------------------- history
http GET "/v1/accounts/$SHOP/transfers?limit=500"
expect 200 - "GET /v1/accounts/{merchant}/transfers?limit=500"
FULL=$(jq -c .movements <<<"$body")
check "merchant movements, newest first" "$(jq -c '[.movements[] | [.kind, .sub, .amount]]' <<<"$body")" \
  '[["transfer","",-500],["transfer","",-400],["transfer","",-300],["transfer","",-200],["transfer","",-100],["transfer","",500],["transfer","",1500]]'
check "newest movement's counterparty" "$(jq -r '.movements[0] | "\(.counterparty) \(.counterparty_sub) \(.currency) \(.op) \(.scale)"' <<<"$body")" \
  "$HOLDER  $CODE 0 2"
check "aid payment's counterparty is the aid sub-account" "$(jq -r '.movements[6] | "\(.counterparty) \(.counterparty_sub) \(.tx)"' <<<"$body")" \
  "$BEN $PROG $MEMO_TX"
check "heights never increase" "$(jq '[.movements[].height] | . == (sort | reverse)' <<<"$body")" true
check "no next cursor after the last page" "$(jq -c .next_cursor <<<"$body")" null
# Pages of 3 with the cursor, to the end.
pages=() cursor="" paged="[]"
for i in 1 2 3 4 5; do
  http GET "/v1/accounts/$SHOP/transfers?limit=3${cursor:+&cursor=$cursor}"
  [ "$code" = 200 ] || { bad "page $i: $code $body"; break; }
  pages+=("$(jq '.movements | length' <<<"$body")")
  paged=$(jq -c --argjson p "$paged" '$p + .movements' <<<"$body")
  cursor=$(jq -r '.next_cursor // empty' <<<"$body")
  [ -n "$cursor" ] || break
done
check "page sizes with limit=3" "${pages[*]}" "3 3 1"
[ "$paged" = "$FULL" ] && ok "the pages together equal one large page" ||
  bad "the pages together differ from one large page: $paged"
http GET "/v1/accounts/$BEN/transfers"
check "beneficiary movements" "$(jq -c '[.movements[] | [.kind, .sub, .amount, .counterparty_sub]]' <<<"$body")" \
  "[[\"transfer\",\"$PROG\",-500,\"\"],[\"transfer\",\"$PROG\",-1500,\"\"],[\"disburse\",\"$PROG\",10000,\"$PROG\"]]"

cli history "$SHOP" --limit 3
n_lines=$(grep -cE "^ +[0-9]+ [0-9a-f]{6} transfer " <<<"$out" || true)
next=$(sed -n 's/^more: koinon history [0-9a-f]* --cursor \([0-9a-f]*\)$/\1/p' <<<"$out")
[ "$n_lines" = 3 ] && [ -n "$next" ] && ok "koinon history --limit 3: 3 movements and a cursor" ||
  bad "koinon history --limit 3 printed: $out"
grep -qE " -5\.00 \(-500\)  ${HOLDER:0:16}$" <<<"$out" && ok "koinon history shows amounts in major units" ||
  bad "koinon history: no line for -5.00 to the holder: $out"
cli history "$SHOP" --limit 3 --cursor "$next"
cli history --key "$WORK/shop.json" --limit 3 --cursor "$(sed -n 's/^more: .* --cursor //p' <<<"$out")"
n_lines=$(grep -cE "^ +[0-9]+ [0-9a-f]{6} transfer " <<<"$out" || true)
[ "$n_lines" = 1 ] && ! grep -q '^more:' <<<"$out" && ok "koinon history: the third page ends the history" ||
  bad "koinon history, third page: $out"
cli history "$SHOP" --json --limit 500
[ "$(jq -c .movements <<<"$out")" = "$FULL" ] && ok "koinon history --json is the node's JSON" ||
  bad "koinon history --json printed: $out"

# ---------------------------------------------------------------- currencies
http GET "/v1/currencies/$CODE"
expect 200 - "GET /v1/currencies/$CODE"
check "figures" "$(jq -c '.stats | [.supply, .issued, .retired, .redeemed, .fees, .demurrage, .clawed_back]' <<<"$body")" \
  "[100000,100000,0,0,0,0,0]"
# Outstanding is what keys hold: the supply less every account of the
# currency's own (treasury, fees, demurrage and the programme accounts).
held=0
for pk in "$SHOP" "$BEN" "$HOLDER"; do
  held=$((held + $(get "/v1/accounts/$pk" | jq --arg c $CODE '[.balances[] | select(.currency == $c) | .balance] | add // 0')))
done
check "outstanding = what the keys hold (8000 aid + 500 + 1500)" "$(jq -r .stats.outstanding <<<"$body")" "$held"
check "holders by kind" "$(jq -c '.stats.holders_by_kind | [.merchant, .beneficiary, .holder, .sse]' <<<"$body")" "[1,1,1,0]"
check "flags and fees as in the genesis" "$(jq -c '[.flags, .issuer_threshold, .fee_bps, .early_fee_bps, .early_days]' <<<"$body")" \
  "$(jq -c --arg c $CODE '.currencies[] | select(.code == $c) | [.flags, .issuer_threshold, .fee_bps, .early_fee_bps, .early_days]' "$NET/genesis.json")"
check "admins, managers, auditors, programmes" \
  "$(jq -c '[.issuer_admins, .programme_managers, .auditors, .programmes, .supply, .holders]' <<<"$body")" \
  "[[\"$ISSUER_PK\"],[\"$MANAGER_PK\"],[],[\"$PROG\"],100000,3]"
http GET /v1/currencies/TST
check "the currency made by currency-create" \
  "$(jq -c '[.name, .city, .scale, .max_supply, .flags, .issuer_admins, .fee_bps, .supply]' <<<"$body")" \
  "[\"Test Thaler\",\"Testville\",3,5000000,[\"p2p\",\"holder_redeem\"],[\"$ISSUER_PK\"],50,0]"
http GET /v1/currencies
check "GET /v1/currencies lists both" "$(jq -c '[.currencies[] | select(.code == "'$CODE'" or .code == "TST") | [.code, .supply]]' <<<"$body")" \
  "[[\"$CODE\",100000],[\"TST\",0]]"
cli currency $CODE
grep -qE '^issued +1000\.00 \(100000\)$' <<<"$out" && grep -qE "^managers +$MANAGER_PK$" <<<"$out" &&
  grep -qE "^programmes +$PROG$" <<<"$out" && ok "koinon currency shows figures, managers, programmes" ||
  bad "koinon currency printed: $out"

# ---------------------------------------------------------------- programmes
http GET "/v1/currencies/$CODE/programmes/$PROG"
expect 200 - "GET /v1/currencies/$CODE/programmes/$PROG"
check "programme definition" "$(jq -c '[.currency, .id, .manager, .budget, .cap, .period_ms, .categories, .p2p, .grace_ms, .state, .scale, .end_ms - .start_ms]' <<<"$body")" \
  "[\"$CODE\",\"$PROG\",\"$MANAGER_PK\",50000,20000,0,[\"food\"],false,0,\"active\",2,2592000000]"
check "programme figures" "$(jq -c '[.stats.funded, .stats.disbursed, .stats.spent, .stats.returned, .stats.expired, .stats.beneficiaries, .stats.spent_by_category, .balance]' <<<"$body")" \
  '[30000,10000,2000,0,0,1,{"food":2000},20000]'
http GET "/v1/currencies/$CODE/programmes"
check "programme list" "$(jq -c '[.currency, [.programmes[] | [.id, .balance, .stats.spent]]]' <<<"$body")" "[\"$CODE\",[[\"$PROG\",20000,2000]]]"
http GET /v1/currencies/TST/programmes
check "a currency without programmes" "$code $(jq -c .programmes <<<"$body")" "200 []"
cli programme $CODE $PROG
grep -qE '^spent +20\.00 \(2000\)$' <<<"$out" && grep -qE '^ +food: 20\.00 \(2000\)$' <<<"$out" &&
  grep -qE '^balance +200\.00 \(20000\)$' <<<"$out" && ok "koinon programme shows the figures" ||
  bad "koinon programme printed: $out"
cli programmes $CODE
grep -qE "^$PROG +active +budget 500\.00 \(50000\)" <<<"$out" && ok "koinon programmes lists $PROG" ||
  bad "koinon programmes printed: $out"

# ---------------------------------------------------------------- error paths of the routes
http GET /v1/currencies/NOPE
expect 404 unknown_currency "GET /v1/currencies/NOPE"
http GET /v1/currencies/NOPE/programmes
expect 404 unknown_currency "GET /v1/currencies/NOPE/programmes"
http GET "/v1/currencies/NOPE/programmes/$PROG"
expect 404 unknown_currency "GET /v1/currencies/NOPE/programmes/$PROG"
http GET "/v1/currencies/$CODE/programmes/nope"
expect 404 unknown_programme "GET /v1/currencies/$CODE/programmes/nope"
http GET "/v1/currencies/$CODE/nothing"
expect 404 not_found "GET /v1/currencies/$CODE/nothing"
http GET "/v1/currencies/$CODE/programmes/$PROG/more"
expect 404 not_found "GET a path below a programme"
http GET /v1/accounts/nothex/transfers
expect 400 invalid_argument "GET /v1/accounts/nothex/transfers"
http GET "/v1/accounts/${SHOP:0:62}"
expect 400 invalid_argument "GET /v1/accounts/{62 hex digits}"
http GET "/v1/accounts/$SHOP/nothing"
expect 404 not_found "GET /v1/accounts/{pk}/nothing"
for q in "cursor=zz" "cursor=$(printf '0%.0s' {1..30})" "cursor=" "limit=0" "limit=501" "limit=abc" "limit=" \
  "limit=1&limit=2" "colour=blue"; do
  http GET "/v1/accounts/$SHOP/transfers?$q"
  expect 400 invalid_argument "GET /v1/accounts/{pk}/transfers?$q"
done
http GET "/v1/accounts/$SHOP/transfers?limit=1"
check "limit=1 gives one movement and a cursor" "$code $(jq -c '[(.movements | length), (.next_cursor | length)]' <<<"$body")" "200 [1,32]"
for path in "/v1/accounts/$SHOP/transfers" "/v1/currencies/$CODE/programmes" "/v1/currencies/$CODE/programmes/$PROG"; do
  http POST "$path"
  expect 405 method_not_allowed "POST $path"
  grep -qix 'allow: GET'$'\r' "$WORK/headers" && ok "POST $path: Allow: GET" || bad "POST $path: no 'Allow: GET' header"
done
cli currency NOPE
[ "$rc" = 1 ] && grep -qF '(unknown_currency)' <<<"$err" && ok "koinon currency NOPE: exit 1, unknown_currency" ||
  bad "koinon currency NOPE: exit $rc, $err"
cli programme $CODE nope
[ "$rc" = 1 ] && grep -qF '(unknown_programme)' <<<"$err" && ok "koinon programme $CODE nope: exit 1, unknown_programme" ||
  bad "koinon programme $CODE nope: exit $rc, $err"
cli history "$SHOP" --limit 501
check "koinon history --limit 501: usage error" "$rc" 2

# ---------------------------------------------------------------- refusals change nothing
S0=$(snapshot)
refused 1 422 '(programme_not_ended)' "expire before the end" expire --currency $CODE --programme $PROG --key "$MANAGER"
refused 1 422 '(duplicate_batch)' "the same batch again" disburse --currency $CODE --programme $PROG --batch b1 \
  --to "$BEN:10" --key "$MANAGER"
refused 1 422 '(not_allowed_by_currency)' "a holder redeems without holder_redeem" redeem --currency $CODE \
  --amount 10 --payout-ref sepa-0 --key "$WORK/holder.json"
refused 1 none '(self_transfer)' "a transfer to oneself" transfer --currency $CODE --to "$SHOP" --amount 1 \
  --key "$WORK/shop.json"
for i in $(seq 1 129); do printf '%064x %d\n' "$i" 1; done >"$WORK/batch129"
refused 2 none 'at most 128 beneficiaries' "a batch of 129" disburse --currency $CODE --programme $PROG --batch b2 \
  --file "$WORK/batch129" --key "$MANAGER"
printf '# a comment\n%s,5 extra\n' "$BEN" >"$WORK/batch-bad"
refused 2 none 'line 2' "a batch file with a bad line" disburse --currency $CODE --programme $PROG --batch b2 \
  --file "$WORK/batch-bad" --key "$MANAGER"
refused 2 none "unknown role 'mayor'" "grant of an unknown role" grant mayor "$HOLDER" --currency $CODE --key "$ISSUER"
refused 2 none 'merchant grant takes --category' "merchant grant without a category" grant merchant "$HOLDER" \
  --currency $CODE --key "$ISSUER"
refused 2 none 'an issue has one --to' "issue with two --to" issue --currency $CODE --amount 1 --ref r \
  --to "$HOLDER" --to "$HOLDER" --key "$ISSUER"
refused 2 none "a transfer's --from can only be 'treasury'" "transfer --from a key" transfer --currency $CODE \
  --from "$HOLDER" --to "$HOLDER" --amount 1 --key "$ISSUER"
refused 2 none '--start now or --start-ms' "programme-create without a start" programme-create --currency $CODE \
  --id p2 --budget 1 --days 1 --key "$MANAGER"
refused 2 none '--amount is given twice' "--amount twice" transfer --currency $CODE --to "$HOLDER" --amount 1 \
  --amount 2 --key "$WORK/shop.json"
check "state after the refusals" "$(snapshot)" "$S0"

# ---------------------------------------------------------------- corrections
# A clawback needs the issuer quorum and an auditor: two --key, one transaction.
AUDITOR="$KEYS/auditor-svq.json"
ok_tx "grant auditor" grant auditor "$(pub "$AUDITOR")" --currency $CODE --key "$ISSUER"
refused 1 422 '(not_authorised)' "a clawback without an auditor" clawback --currency $CODE --from "$HOLDER" \
  --amount 100 --case case-1 --key "$ISSUER"
ok_tx "clawback by issuer and auditor" clawback --currency $CODE --from "$HOLDER" --amount 100 --case case-1 \
  --key "$ISSUER" --key "$AUDITOR"
check "the clawback's signers" "$(get "/v1/txs/$TXID" | jq -c '[(.signers | length), .ops[0].kind, .ops[0].case]')" \
  '[2,"clawback","case-1"]'
check "clawed back" "$(get "/v1/currencies/$CODE" | jq -r .stats.clawed_back)" 100
check "the holder's newest movement" \
  "$(get "/v1/accounts/$HOLDER/transfers?limit=1" | jq -c '.movements[0] | [.kind, .amount, .counterparty_sub]')" \
  '["clawback",-100,"#treasury"]'
# The payee sends part of an aid payment back: it returns to the aid.
ok_tx "the merchant reverses 100 of the aid payment" reverse --currency $CODE --tx "$AID_TX" --amount 100 \
  --ref refund-1 --key "$WORK/shop.json"
check "the beneficiary's aid after the reversal" \
  "$(get "/v1/accounts/$BEN" | jq '.accounts[] | select(.sub == "'$PROG'") | .balance')" 8100
check "the reversal in the beneficiary's history" \
  "$(get "/v1/accounts/$BEN/transfers?limit=1" | jq -c '.movements[0] | [.kind, .sub, .amount, .counterparty]')" \
  "[\"reverse\",\"$PROG\",100,\"$SHOP\"]"
refused 1 422 '(reversal_exceeds_original)' "reversing more than the original" reverse --currency $CODE \
  --tx "$AID_TX" --amount 401 --key "$WORK/shop.json"

# ---------------------------------------------------------------- redemption
ok_tx "the merchant redeems 100" redeem --currency $CODE --amount 100 --payout-ref sepa-0001 --key "$WORK/shop.json"
EARLY_FEE_BPS=$(jq -r --arg c $CODE '.currencies[] | select(.code == $c) | .early_fee_bps' "$NET/genesis.json")
FEE=$((100 * EARLY_FEE_BPS / 10000))
check "fees and redeemed after a redemption (early fee)" \
  "$(get "/v1/currencies/$CODE" | jq -c '[.stats.fees, .stats.redeemed, .stats.supply]')" \
  "[$FEE,$((100 - FEE)),$((100000 - 100 + FEE))]"
check "the redemption is the merchant's newest movement" \
  "$(get "/v1/accounts/$SHOP/transfers?limit=500" | jq -r '[.movements[] | select(.tx == "'$TXID'") | .kind] | sort | join(",")')" \
  "$(if [ $FEE -gt 0 ]; then echo fee,redeem; else echo redeem; fi)"

# ---------------------------------------------------------------- every transaction, rendered
declare -A KIND=([currency-create]=currency [programme-create]=programme [freeze]=account
  [unfreeze]=account)
rendered=0
for entry in "${COMMITTED[@]}"; do
  id=${entry% *} cmd=${entry#* }
  want="200 committed ok ${KIND[$cmd]:-$cmd} 1"
  http GET "/v1/txs/$id"
  got="$code $(jq -r '"\(.status) \(.result.code) \(.ops[0].kind) \(.ops | length)"' <<<"$body")"
  if [ "$got" = "$want" ]; then rendered=$((rendered + 1)); else bad "GET /v1/txs/$id ($cmd): $got, wanted $want"; fi
done
check "committed transactions GET /v1/txs/{id} renders with their kind" "$rendered" "${#COMMITTED[@]}"
check "a disbursement's batch" "$(get "/v1/txs/$DISBURSE_TX" | jq -c '.ops[0] | [.programme, .batch, .payees]')" \
  "[\"$PROG\",\"b1\",[{\"beneficiary\":\"$BEN\",\"amount\":10000}]]"
http GET "/v1/currencies/ABCDEFGHIJKLMNOPQRSTUVWXYZ"
expect 404 unknown_currency "GET a currency code longer than 12"
http GET "/v1/currencies/$CODE/programmes/$(printf 'p%.0s' {1..40})"
expect 404 unknown_programme "GET a programme id longer than 16"
http GET "/v1/accounts/$(printf 'a%.0s' {1..100})"
expect 404 not_found "GET an account path segment of 100 bytes"

grep -q 'level=error' "$NODE_LOG" && bad "the node logged errors: $(grep -m3 'level=error' "$NODE_LOG")"
kill -0 "${PIDS[0]}" 2>/dev/null && ok "the node is still running" || bad "the node died"
if [ "$FAILURES" -gt 0 ]; then
  log "$FAILURES check(s) failed"
  exit 1
fi
log "test_money_api: all checks passed"
