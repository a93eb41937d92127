#!/usr/bin/env bash
# The koinon command-line tool without a running node: key files, devnet layout,
# argument errors and an unreachable node. Usage: test_cli.sh BIN_DIR
set -euo pipefail

bin=${1:?usage: test_cli.sh BIN_DIR}
koinon="$bin/koinon"
[ -x "$koinon" ] || { echo "FAIL: $koinon is not an executable" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
pass() { echo "ok: $*"; }

# run CMD...: runs it, keeping stdout, stderr and the exit code in $out, $err, $rc.
run() {
  rc=0
  "$@" >"$work/stdout" 2>"$work/stderr" || rc=$?
  out=$(cat "$work/stdout")
  err=$(cat "$work/stderr")
}

# expect_rc WANT WHAT: checks the exit code of the last run.
expect_rc() {
  if [ "$rc" -eq "$1" ]; then pass "$2 (exit $rc)"; else fail "$2: exit $rc, wanted $1; stderr: $err"; fi
}

# expect_err TEXT WHAT: checks that the last run's stderr contains TEXT.
expect_err() {
  if grep -qF -- "$1" <<<"$err"; then pass "$2"; else fail "$2: stderr lacks '$1': $err"; fi
}

mode_of() { stat -c %a "$1"; }
is_hex64() { [[ "$1" =~ ^[0-9a-f]{64}$ ]]; }

# ---------------------------------------------------------------- top level
run "$koinon" --help
expect_rc 0 "koinon --help"
for cmd in keygen pubkey init devnet issue transfer account tx block status currencies; do
  grep -qE "^  $cmd " <<<"$out" || fail "--help does not list $cmd"
done
run "$koinon" --version
expect_rc 0 "koinon --version"
grep -qE '^koinon [0-9]+\.[0-9]+\.[0-9]+' <<<"$out" || fail "--version printed '$out'"
run "$koinon" frobnicate
expect_rc 2 "unknown command"

# ---------------------------------------------------------------- keygen, pubkey
key="$work/alice.json"
run "$koinon" keygen --out "$key"
expect_rc 0 "keygen"
alice=$out
is_hex64 "$alice" || fail "keygen printed '$alice', not a hex public key"
[ -f "$key" ] || fail "keygen wrote no file"
[ "$(mode_of "$key")" = 600 ] || fail "key file mode is $(mode_of "$key"), not 600"
before=$(cksum <"$key")

run "$koinon" keygen --out "$key"
expect_rc 1 "keygen refuses to overwrite"
expect_err "refusing to overwrite" "keygen says why"
[ "$(cksum <"$key")" = "$before" ] || fail "keygen changed the existing key file"

run "$koinon" pubkey --key "$key"
expect_rc 0 "pubkey"
[ "$out" = "$alice" ] || fail "pubkey printed '$out', keygen printed '$alice'"

run "$koinon" pubkey --key "$work/missing.json"
expect_rc 1 "pubkey of a missing file"
expect_err "koinon: cannot read key file" "pubkey reports the missing file"

# ---------------------------------------------------------------- init
net="$work/net"
run "$koinon" init --validators 4 --out "$net"
expect_rc 0 "init --validators 4"
genesis="$net/genesis.json"
[ -f "$genesis" ] || fail "init wrote no genesis.json"
n_validators=$(grep -c '"power": 10' "$genesis" || true)
[ "$n_validators" = 4 ] || fail "genesis has $n_validators validators, wanted 4"
n_currencies=$(grep -c '"max_supply": 100000000000' "$genesis" || true)
[ "$n_currencies" = 4 ] || fail "genesis has $n_currencies currencies, wanted 4"
grep -q '"chain_id": "koinon-devnet"' "$genesis" || fail "genesis lacks the default chain id"
for code in SVQ ATH LIS TRN; do
  grep -q "\"code\": \"$code\"" "$genesis" || fail "genesis lacks currency $code"
done
grep -q '"code": "TUN"' "$genesis" && fail "genesis has a fifth city's currency"

admin=$("$koinon" pubkey --key "$net/keys/admin.json") || fail "cannot read the admin key"
grep -q "\"$admin\"" "$genesis" || fail "genesis does not list the admin key"
# Each city's currency has its one issuer admin (keys/issuer-<code>.json) signing
# alone; the programme manager and auditor keys are made for later grants and
# are not in the genesis.
for code in SVQ ATH LIS TRN; do
  lc=${code,,}
  issuer=$("$koinon" pubkey --key "$net/keys/issuer-$lc.json") || { fail "cannot read the $code issuer key"; continue; }
  got=$(jq -c --arg c "$code" '.currencies[] | select(.code == $c) | [.issuer_admins, .issuer_threshold]' "$genesis")
  [ "$got" = "[[\"$issuer\"],1]" ] || fail "genesis $code issuer admins and threshold are $got, wanted [[\"$issuer\"],1]"
  for role in manager auditor; do
    pk=$("$koinon" pubkey --key "$net/keys/$role-$lc.json") || { fail "cannot read the $code $role key"; continue; }
    [ "$(mode_of "$net/keys/$role-$lc.json")" = 600 ] || fail "$role-$lc.json mode is $(mode_of "$net/keys/$role-$lc.json")"
    grep -q "\"$pk\"" "$genesis" && fail "genesis lists the $code $role key, which is granted later"
  done
done
[ "$(mode_of "$net/keys")" = 700 ] || fail "keys directory mode is $(mode_of "$net/keys")"

port=8700
for name in seville athens lisbon turin; do
  dir="$net/$name"
  [ -f "$dir/node.json" ] || { fail "$name has no node.json"; continue; }
  [ -f "$dir/node_key.json" ] || { fail "$name has no node_key.json"; continue; }
  [ "$(mode_of "$dir/node_key.json")" = 600 ] || fail "$name node key mode is $(mode_of "$dir/node_key.json")"
  grep -q "\"api_listen\": \"127.0.0.1:$port\"" "$dir/node.json" || fail "$name does not listen on $port"
  grep -q "\"peer_listen\": \"127.0.0.1:$((port + 100))\"" "$dir/node.json" ||
    fail "$name does not take peers on $((port + 100))"
  node_pk=$("$koinon" pubkey --key "$dir/node_key.json") || fail "cannot read $name node key"
  grep -q "\"public_key\": \"$node_pk\"" "$genesis" || fail "genesis lacks $name's node key"
  port=$((port + 1))
done
[ -e "$net/tunis" ] && fail "init made a fifth node directory"

before=$(cksum <"$genesis")
run "$koinon" init --validators 4 --out "$net"
expect_rc 1 "second init into the same directory"
expect_err "already exists" "second init says why"
[ "$(cksum <"$genesis")" = "$before" ] || fail "second init changed genesis.json"

run "$koinon" init --validators 8 --out "$work/net8"
expect_rc 2 "init --validators 8"
[ -e "$work/net8" ] && fail "init --validators 8 created its directory"

# ---------------------------------------------------------------- usage errors
run "$koinon" keygen --out "$work/bob.json" --colour blue
expect_rc 2 "unknown flag"
expect_err "unknown option '--colour'" "unknown flag is named"
[ -e "$work/bob.json" ] && fail "keygen with a bad flag wrote a key"
run "$koinon" transfer --key "$key" --currency SVQ --to "$admin"
expect_rc 2 "transfer without --amount"
run "$koinon" transfer --key "$key" --currency SVQ --to "$admin" --amount 1 --ref x
expect_rc 2 "transfer does not take --ref"
run "$koinon" issue --key "$key" --currency SVQ --amount 1
expect_rc 2 "issue without --ref (the reserve attestation reference)"
expect_err "--ref" "issue without --ref names the missing option"
run "$koinon" issue --key "$key" --currency SVQ --amount 1 --ref ""
expect_rc 2 "issue with an empty --ref"
expect_err "--ref must be 1 to 64 bytes" "issue with an empty --ref says why"
run "$koinon" transfer --key "$key" --currency SVQ --from "$admin" --to "$alice" --amount 1
expect_rc 2 "transfer --from takes only 'treasury'"
expect_err "a transfer's --from can only be 'treasury'" "transfer --from PUBKEY says why"
run "$koinon" transfer --key "$key" --currency SVQ --from treasury --to "$alice" --amount 1 --programme aid1
expect_rc 2 "transfer --from treasury with --programme"
expect_err "the treasury pays from no programme" "transfer --from treasury --programme says why"
run "$koinon" block yesterday
expect_rc 2 "block with a bad height"

# ---------------------------------------------------------------- unreachable node
# A loopback port nobody listens on: probe a few until a connection is refused.
closed=""
for p in 1 9 47 4 39999 41234; do
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then closed=$p; break; fi
done
if [ -z "$closed" ]; then
  fail "found no closed loopback port to test against"
else
  url="http://127.0.0.1:$closed"
  run "$koinon" transfer --key "$key" --currency SVQ --to "$admin" --amount 100 --node "$url"
  expect_rc 1 "transfer to a closed port"
  expect_err "koinon: cannot reach node at $url" "transfer reports the unreachable node"
  # The treasury pays (signed by the issuer quorum): the CLI builds it and only
  # then finds no node.
  run "$koinon" transfer --key "$key" --currency SVQ --from treasury --to "$admin" --amount 100 --node "$url"
  expect_rc 1 "transfer --from treasury to a closed port"
  expect_err "koinon: cannot reach node at $url" "transfer --from treasury reports the unreachable node"
  run "$koinon" issue --key "$key" --currency SVQ --to "$admin" --amount 100 --ref reserve-1 --node "$url"
  expect_rc 1 "issue --ref --to to a closed port"
  expect_err "koinon: cannot reach node at $url" "issue reports the unreachable node"
  run "$koinon" status --node "$url"
  expect_rc 1 "status from a closed port"
  expect_err "cannot reach node" "status reports the unreachable node"
fi

if [ "$failures" -ne 0 ]; then
  echo "test_cli: $failures check(s) failed" >&2
  exit 1
fi
echo "test_cli: all checks passed"
