#!/usr/bin/env bash
# Installs what the build and tests need and is missing: the libpq headers
# for Diesel, and the pinned Solidity compiler and anvil from npm.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
dpkg -s libpq-dev >/dev/null 2>&1 || missing+=(libpq-dev)
command -v pg_isready >/dev/null 2>&1 || missing+=(postgresql-client)
command -v node >/dev/null 2>&1 || missing+=(nodejs npm)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# npm ci reinstalls from the lockfile only when it changed since the last install.
stamp=contracts/node_modules/.package-lock.json
if [ ! -f "$stamp" ] || [ contracts/package-lock.json -nt "$stamp" ]; then
  npm ci --prefix contracts --no-audit --no-fund --loglevel=error
fi
