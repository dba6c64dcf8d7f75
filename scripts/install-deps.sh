#!/usr/bin/env bash
# Installs what the appliance and its tests need on Debian 12, then the npm dependencies
# and the OpenSearch node's Maven jars. Safe to run again: each step skips what is present.
set -euo pipefail

repo_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo_dir"

# Debian package per command it provides; libsqlite3-dev and libssl-dev have no command, so they
# are checked by file.
declare -A packages=(
  [softhsm2-util]=softhsm2
  [pkcs11-tool]=opensc
  [chromium]=chromium
  [oathtool]=oathtool
  [slapd]=slapd [ldapsearch]=ldap-utils
  [openssl]=openssl
  [java]=openjdk-17-jdk-headless
  [mvn]=maven
  [g++]=build-essential
  [python3]=python3
  [jq]=jq
  [sqlite3]=sqlite3
  [curl]=curl
)

missing=()
for command in "${!packages[@]}"; do
  command -v "$command" >/dev/null 2>&1 || missing+=("${packages[$command]}")
done
[[ -f /usr/include/sqlite3.h ]] || missing+=(libsqlite3-dev)
# @journeyapps/sqlcipher compiles its bundled SQLCipher against OpenSSL's libcrypto.
[[ -f /usr/include/openssl/evp.h ]] || missing+=(libssl-dev)

if ((${#missing[@]} > 0)); then
  echo "install-deps: installing ${missing[*]}" >&2
  sudo_cmd=()
  ((EUID == 0)) || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

node_major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)"
if ((node_major < 20)); then
  echo "install-deps: Node.js 20 or later is required (found ${node_major}); install it from nodejs.org or NodeSource" >&2
  exit 1
fi

# Native modules (argon2, sqlite3, pkcs11js) build against the local Node headers when a
# prebuilt binary is not available, so the build never needs to download them.
# @journeyapps/sqlcipher has no prebuilt step: it always compiles (node-gyp rebuild), which
# package.json allowScripts permits under npm 11.
# npm ci deletes node_modules first, so two runs at once would break each other's install.
lock_file="${TMPDIR:-/tmp}/appliance-install-$(printf '%s' "$repo_dir" | sha256sum | cut -c1-16).lock"
exec 9>"$lock_file"
flock 9

lock_hash="$(sha256sum package-lock.json | cut -d' ' -f1)"
stamp="node_modules/.install-stamp"
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$lock_hash" ]]; then
  if [[ -d /usr/include/node ]]; then
    export npm_config_nodedir=/usr
  fi
  echo "install-deps: installing npm packages; native modules are compiled on the first run, which takes a few minutes" >&2
  npm ci --no-audit --no-fund
  echo "$lock_hash" >"$stamp"
fi

bash scripts/search-node.sh classpath >/dev/null
