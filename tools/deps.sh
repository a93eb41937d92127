#!/usr/bin/env bash
# Installs the Debian packages Koinon builds on, when they are missing. As root it
# runs apt-get; otherwise it prints the exact command to run and stops.
set -euo pipefail

packages=(cmake make gcc pkg-config libuv1-dev libsodium-dev liblmdb-dev libmsgpack-dev
          libjansson-dev libh2o-dev libssl-dev libcurl4-openssl-dev libcmocka-dev lmdb-utils
          curl jq)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "koinon: missing packages. Run as root:" >&2
  echo "  apt-get update && apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "koinon: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
