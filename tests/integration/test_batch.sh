#!/usr/bin/env bash
# POST /v1/txs/batch as docs/API.md promises it, on a four-city devnet.
#
# Transactions are signed by the CLI and written to files (`--out FILE`), then
# packed here into a msgpack array of bin and posted to one node:
#   1. twelve valid issues in one batch: every result pending, all commit, and
#      the holder's balance is their sum, read from another node;
#   2. a batch mixing good and bad: a transfer and an issue that are good, the
#      same transfer again (an exact duplicate inside the batch), an issue of
#      batch 1 (committed before), a forged signature, another chain, a rule
#      error (a transfer over the balance) and bytes that are no transaction:
#      each result's exact code, then only the good ones commit;
#   3. bodies refused whole, each carrying a good transaction that must never
#      be admitted: not an array of bin (400 malformed), 5001 transactions
#      (413 too_large), over api_batch_body_max_bytes (set to 64 KiB here:
#      413 too_large), over the HTTP layer's limit (413).
#
# Usage: test_batch.sh BIN_DIR
set -euo pipefail

BIN=$(cd "${1:?usage: test_batch.sh BIN_DIR}" && pwd)
KOINON="$BIN/koinon"
KOINOND="$BIN/koinond"
WORK=$(mktemp -d /tmp/koinon-batch.XXXXXX)
# Ports 14000-14999 on loopback: API P..P+3, peers P+100..P+103.
BASE_PORT=$((14000 + ($$ % 80) * 10))
CHAIN="koinon-batch-$$" # unique, so a stray node on our port cannot pass for ours
PIDS=()
BATCH_BODY_MAX=65536
NODE_JQ=".api_batch_body_max_bytes = $BATCH_BODY_MAX"

source "$(dirname "$0")/lib.sh"
trap cleanup EXIT
trap 'exit 1' INT TERM

# ---------------------------------------------------------------- msgpack, by hand

# be_bytes N WIDTH: N as WIDTH big-endian bytes, as printf escapes.
be_bytes() {
  local i
  for ((i = $2 - 1; i >= 0; i--)); do printf '\\x%02x' $((($1 >> (8 * i)) & 255)); done
}
# mp_array_header N: the shortest msgpack array header for N elements.
mp_array_header() {
  if [ "$1" -lt 16 ]; then printf "$(printf '\\x%02x' $((0x90 + $1)))"
  elif [ "$1" -lt 65536 ]; then printf "\\xdc$(be_bytes "$1" 2)"
  else printf "\\xdd$(be_bytes "$1" 4)"; fi
}
# mp_bin_file FILE: FILE's bytes as the shortest msgpack bin.
mp_bin_file() {
  local len
  len=$(stat -c %s "$1")
  if [ "$len" -lt 256 ]; then printf "\\xc4$(be_bytes "$len" 1)"
  elif [ "$len" -lt 65536 ]; then printf "\\xc5$(be_bytes "$len" 2)"
  else printf "\\xc6$(be_bytes "$len" 4)"; fi
  cat "$1"
}
# pack OUT FILE...: a batch body of the files' transactions.
pack() {
  local out=$1 f
  shift
  { mp_array_header $#; for f in "$@"; do mp_bin_file "$f"; done; } >"$out"
}

# ---------------------------------------------------------------- HTTP

URL=""
# post_batch FILE: posts it to node 0; sets $code, $body, $errcode.
post_batch() {
  code=$(curl -sS --max-time 20 -o "$WORK/reply" -w '%{http_code}' -X POST \
    -H 'Content-Type: application/msgpack' --data-binary @"$1" "$URL/v1/txs/batch") ||
    fail "curl POST /v1/txs/batch failed"
  body=$(cat "$WORK/reply")
  errcode=$(jq -r '.error.code // empty' <<<"$body" 2>/dev/null || true)
}
expect() {
  local got="$code ${errcode:--}"
  if [ "$got" = "$1 $2" ]; then ok "$3: $1 $2"; else bad "$3: got $got, wanted $1 $2; body: ${body:0:300}"; fi
}
# result I FILTER: jq FILTER applied to results[I] of the last reply.
result() { jq -r ".results[$1] | $2" <<<"$body"; }
# tx_status NODE ID: "committed/<result code>", "pending" or the error code.
tx_status() {
  curl -s --max-time 5 "$(api "$1")/v1/txs/$2" |
    jq -r 'if .status == "committed" then "committed/\(.result.code)" else (.status // .error.code) end'
}
all_committed() {
  local id
  for id in "$@"; do [ "$(tx_status 0 "$id")" = committed/ok ] || return 1; done
}
svq_balance() {
  curl -sf --max-time 5 "$(api "$1")/v1/accounts/$2" |
    jq -r '[.balances[] | select(.currency == "SVQ" and .sub == "") | .balance] | add // 0'
}

# ---------------------------------------------------------------- signed transactions

ISSUER=""
# sign NAME ARGS...: `koinon ARGS... --out WORK/tx/NAME.bin` against node 0;
# prints the transaction id.
sign() {
  local name=$1
  shift
  "$KOINON" "$@" --node "$URL" --out "$WORK/tx/$name.bin" --json | jq -r .id ||
    fail "cannot sign $name: koinon $*"
}

# ================================================================ setup
mkdir -p "$WORK/keys" "$WORK/tx"
start_devnet
URL=$(api 0)
ISSUER="$NET/keys/issuer-svq.json"
PK_A=$(newkey holder-a)
PK_B=$(newkey holder-b)
PK_M=$(newkey merchant)
"$KOINON" grant merchant "$PK_M" --currency SVQ --category retail --key "$ISSUER" \
  --node "$URL" --wait >/dev/null || fail "granting the merchant role failed"

# ================================================================ 1. valid issues
FILES=()
IDS=()
for i in $(seq 1 12); do
  IDS+=("$(sign "issue$i" issue --currency SVQ --amount $((1000 * i)) --ref "reserve-$i" \
    --to "$PK_A" --key "$ISSUER")")
  FILES+=("$WORK/tx/issue$i.bin")
done
pack "$WORK/batch1.bin" "${FILES[@]}"
post_batch "$WORK/batch1.bin"
expect 200 - "POST a batch of 12 signed issues"
check "batch 1 accepted, refused" "$(jq -r '"\(.accepted) \(.refused)"' <<<"$body")" "12 0"
check "batch 1 results in input order" "$(jq -r '[.results[].id] | join(" ")' <<<"$body")" "${IDS[*]}"
check "batch 1 statuses" "$(jq -r '[.results[].status] | unique | join(" ")' <<<"$body")" "pending"
wait_for 30 "the 12 issues to commit" all_committed "${IDS[@]}"
sync_nodes
check "holder A's balance on another node" "$(svq_balance 2 "$PK_A")" "78000" # 1000 * (1 + ... + 12)

# ================================================================ 2. good and bad together
ID_TRANSFER=$(sign transfer transfer --currency SVQ --to "$PK_M" --amount 100 --key "$WORK/keys/holder-a.json")
ID_ISSUE=$(sign issue-b issue --currency SVQ --amount 500 --ref reserve-b --to "$PK_B" --key "$ISSUER")
# A valid issue whose last signature byte (the encoding ends with it) is flipped.
ID_FORGED=$(sign forged issue --currency SVQ --amount 700 --ref reserve-forged --to "$PK_B" --key "$ISSUER")
size=$(stat -c %s "$WORK/tx/forged.bin")
last=$(od -An -tu1 -j $((size - 1)) "$WORK/tx/forged.bin" | tr -d ' ')
{ head -c $((size - 1)) "$WORK/tx/forged.bin"; printf "$(printf '\\x%02x' $((last ^ 1)))"; } >"$WORK/tx/forged2.bin"
ID_OTHER=$(sign other-chain issue --currency SVQ --amount 900 --ref reserve-other --to "$PK_B" \
  --key "$ISSUER" --chain-id "other-chain-$$")
ID_OVERDRAFT=$(sign overdraft transfer --currency SVQ --to "$PK_M" --amount 10000000 \
  --key "$WORK/keys/holder-a.json")
printf 'no transaction here' >"$WORK/tx/garbage.bin"
pack "$WORK/batch2.bin" "$WORK/tx/transfer.bin" "$WORK/tx/forged2.bin" "$WORK/tx/issue-b.bin" \
  "$WORK/tx/other-chain.bin" "$WORK/tx/transfer.bin" "$WORK/tx/overdraft.bin" \
  "$WORK/tx/garbage.bin" "$WORK/tx/issue3.bin"
post_batch "$WORK/batch2.bin"
expect 200 - "POST a batch of 8, four of them bad"
check "batch 2 accepted, refused" "$(jq -r '"\(.accepted) \(.refused)"' <<<"$body")" "4 4"
check "[0] a good transfer" "$(result 0 '"\(.id) \(.status)"')" "$ID_TRANSFER pending"
check "[1] a forged signature" "$(result 1 '"\(.index) \(.id) \(.error.code)"')" "1 $ID_FORGED bad_signature"
check "[2] a good issue" "$(result 2 '"\(.id) \(.status)"')" "$ID_ISSUE pending"
check "[3] another chain" "$(result 3 '"\(.index) \(.id) \(.error.code)"')" "3 $ID_OTHER wrong_chain"
check "[4] the transfer again, in the same batch" "$(result 4 '"\(.id) \(.status)"')" "$ID_TRANSFER pending"
check "[5] a transfer over the balance" "$(result 5 '"\(.index) \(.id) \(.error.code)"')" \
  "5 $ID_OVERDRAFT insufficient_funds"
check "[6] bytes that are no transaction" "$(result 6 '"\(.index) \(.id // "no id") \(.error.code)"')" \
  "6 no id malformed"
check "[7] an issue committed before" "$(result 7 '"\(.id) \(.status) \(.result.code)"')" \
  "${IDS[2]} committed ok"
wait_for 30 "the good transfer and issue to commit" all_committed "$ID_TRANSFER" "$ID_ISSUE"
sync_nodes
check "the forged issue was never admitted" "$(tx_status 1 "$ID_FORGED")" "not_found"
check "the other chain's issue was never admitted" "$(tx_status 1 "$ID_OTHER")" "not_found"
check "the overdraft was never admitted" "$(tx_status 1 "$ID_OVERDRAFT")" "not_found"
check "balances of A, B, M on another node (the transfer applied once)" \
  "$(svq_balance 3 "$PK_A") $(svq_balance 3 "$PK_B") $(svq_balance 3 "$PK_M")" "77900 500 100"

# ================================================================ 3. bodies refused whole
ID_HELD=$(sign held issue --currency SVQ --amount 300 --ref reserve-held --to "$PK_B" --key "$ISSUER")
# Not an array of bin: a good transaction, then a string.
{ mp_array_header 2; mp_bin_file "$WORK/tx/held.bin"; printf '\xa1x'; } >"$WORK/bad.bin"
post_batch "$WORK/bad.bin"
expect 400 malformed "POST an array holding a string"
{ mp_array_header 1; mp_bin_file "$WORK/tx/held.bin"; printf '\xc0'; } >"$WORK/bad.bin"
post_batch "$WORK/bad.bin"
expect 400 malformed "POST a batch with a trailing byte"
mp_bin_file "$WORK/tx/held.bin" >"$WORK/bad.bin"
post_batch "$WORK/bad.bin"
expect 400 malformed "POST one transaction's bin, not in an array"
# 5001 transactions: the good one, then 5000 empty bins (c4 00).
{ mp_array_header 5001; mp_bin_file "$WORK/tx/held.bin"; printf '\xc4\x00%.0s' $(seq 5000); } >"$WORK/bad.bin"
post_batch "$WORK/bad.bin"
expect 413 too_large "POST a batch of 5001 transactions (limit 5000)"
# Over api_batch_body_max_bytes (64 KiB here) but well within the HTTP layer's 1 MiB.
{ mp_array_header 2; mp_bin_file "$WORK/tx/held.bin"; printf '\xc6\x00\x01\x00\x00';
  head -c 65536 /dev/zero; } >"$WORK/bad.bin"
post_batch "$WORK/bad.bin"
expect 413 too_large "POST a batch of $(stat -c %s "$WORK/bad.bin") bytes (limit $BATCH_BODY_MAX)"
head -c $((1048576 + 1)) /dev/zero >"$WORK/bad.bin"
post_batch "$WORK/bad.bin"
expect 413 - "POST 1 MiB + 1 byte (the HTTP layer's limit)"
code=$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' "$URL/v1/txs/batch")
check "GET /v1/txs/batch" "$code" "405"
# A block or two later, on every node: nothing of the refused bodies arrived.
h=$(height_of 0)
wait_for 20 "two more blocks" all_at_least $((h + 2)) 0 1 2 3
for i in 0 1 2 3; do
  check "node $i never saw the transaction of the refused bodies" "$(tx_status "$i" "$ID_HELD")" "not_found"
done
check "the batch route is counted in /metrics" \
  "$(curl -sf --max-time 5 "$URL/metrics" | grep -c '^koinon_api_requests_total{route="txs_batch"} [1-9]')" "1"

[ "$FAILURES" = 0 ] || { tail_node_logs 20; log "FAILED: $FAILURES check(s)"; exit 1; }
log "PASS"
