#!/usr/bin/env bash
# Runs `make run`'s script on free ports with its own database and data
# directory, then the README walkthrough and `meditrustal audit verify`
# against it, then stops it. Proves that the commands in the README still
# work as written.
set -euo pipefail
cd "$(dirname "$0")/.."

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
admin_url="postgres://postgres@127.0.0.1:5432/postgres"
export PGOPTIONS="-c client_min_messages=warning"

data_dir="$(mktemp -d /tmp/meditrustal-smoke.XXXXXX)"
export MEDITRUSTAL__DATA_DIR="$data_dir"
export MEDITRUSTAL_DB_NAME="meditrustal_smoke_$$"
export MEDITRUSTAL__DATABASE__URL="postgres://postgres@127.0.0.1:5432/$MEDITRUSTAL_DB_NAME"
export MEDITRUSTAL__SERVER__PORT="$(free_port)"
export ANVIL_PORT="$(free_port)"
export MEDITRUSTAL__AUDIT__ANCHOR_INTERVAL_MS=200
unset MEDITRUSTAL__CHAIN__RPC_URL

psql "$admin_url" -qc "DROP DATABASE IF EXISTS $MEDITRUSTAL_DB_NAME WITH (FORCE)"
scripts/ensure-postgres.sh

run_pid=""
cleanup() {
  if [ -n "$run_pid" ]; then
    kill -TERM -- "-$run_pid" 2>/dev/null || true
    wait "$run_pid" 2>/dev/null || true
  fi
  psql "$admin_url" -qc "DROP DATABASE IF EXISTS $MEDITRUSTAL_DB_NAME WITH (FORCE)" || true
  rm -rf "$data_dir"
}
trap cleanup EXIT

# setsid gives run.sh its own process group, so one signal stops it,
# the server and anvil together.
setsid scripts/run.sh >"$data_dir/run.log" 2>&1 &
run_pid=$!

base="http://127.0.0.1:$MEDITRUSTAL__SERVER__PORT"
for _ in $(seq 1 600); do
  curl -sf -m 2 "$base/health/ready" >/dev/null && break
  kill -0 "$run_pid" 2>/dev/null || { cat "$data_dir/run.log"; echo "make run's script exited early" >&2; exit 1; }
  sleep 0.5
done
curl -sf -m 2 "$base/health/ready" >/dev/null || { cat "$data_dir/run.log"; echo "the server did not become ready" >&2; exit 1; }

scripts/walkthrough.sh "$base"

# The README's `audit verify`, once a head is anchored.
verified=""
for _ in $(seq 1 50); do
  verified="$(MEDITRUSTAL__CHAIN__RPC_URL="http://127.0.0.1:$ANVIL_PORT" \
    target/debug/meditrustal audit verify 2>>"$data_dir/verify.log")" \
    || { cat "$data_dir/verify.log"; echo "audit verify failed" >&2; exit 1; }
  case "$verified" in *"anchored heads checked"*) break ;; esac
  sleep 0.2
done
case "$verified" in
  *"anchored heads checked"*) echo "$verified" ;;
  *) echo "no audit head was anchored within 10 s: $verified" >&2; exit 1 ;;
esac

if grep -q -e "correct horse battery" -e "v4.public." -e "mtr_rt_" -e "mtr_reset_" -e "mtr_mfa_" "$data_dir/run.log"; then
  echo "the server log contains a password or token" >&2
  exit 1
fi
