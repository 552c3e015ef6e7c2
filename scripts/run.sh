#!/usr/bin/env bash
# `make run`: starts anvil unless a chain RPC URL is configured, migrates the
# database, deploys the contracts when the manifest does not match the chain,
# and serves the API on 127.0.0.1:8080.
set -euo pipefail
cd "$(dirname "$0")/.."

data_dir="${MEDITRUSTAL__DATA_DIR:-data}"
mkdir -p "$data_dir/anvil"
bin=target/debug/meditrustal
anvil=contracts/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil
anvil_pid=""

stop_anvil() {
  if [ -n "$anvil_pid" ]; then
    kill "$anvil_pid" 2>/dev/null || true
    wait "$anvil_pid" 2>/dev/null || true
  fi
}
trap stop_anvil EXIT

rpc_answers() {
  curl -sf -m 2 -H 'content-type: application/json' \
    -d '{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}' "$1" >/dev/null
}

deploy_flags=()
if [ -z "${MEDITRUSTAL__CHAIN__RPC_URL:-}" ]; then
  port="${ANVIL_PORT:-8545}"
  export MEDITRUSTAL__CHAIN__RPC_URL="http://127.0.0.1:$port"
  if rpc_answers "$MEDITRUSTAL__CHAIN__RPC_URL"; then
    echo "using the node already responding at $MEDITRUSTAL__CHAIN__RPC_URL" >&2
  else
    echo "starting anvil on 127.0.0.1:$port with state in $data_dir/anvil/state.json" >&2
    "$anvil" --host 127.0.0.1 --port "$port" --state "$data_dir/anvil/state.json" \
      --state-interval 1 >"$data_dir/anvil/anvil.log" 2>&1 &
    anvil_pid=$!
    for _ in $(seq 1 100); do
      rpc_answers "$MEDITRUSTAL__CHAIN__RPC_URL" && break
      sleep 0.1
    done
    rpc_answers "$MEDITRUSTAL__CHAIN__RPC_URL" || { echo "anvil did not start; see $data_dir/anvil/anvil.log" >&2; exit 1; }
  fi
  # A local development node: the registrar account gets test ether from anvil.
  deploy_flags+=(--fund-registrar)
fi

cargo build -p meditrustal
"$bin" migrate
"$bin" deploy-contracts --if-needed "${deploy_flags[@]}"
"$bin" serve
