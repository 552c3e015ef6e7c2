#!/usr/bin/env bash
# Fuzzes the API with schemathesis against its own OpenAPI description: a
# server started as `make run` starts it, on free ports with its own
# database, data directory and anvil. Three bounded runs: without a token,
# as a patient and as a doctor. A run fails on any 5xx answer and on any
# answer whose status, content type, headers or body the description does
# not allow. Sends requests to 127.0.0.1 only.
#
# FUZZ_MAX_EXAMPLES (default 25) bounds the cases per operation and run;
# FUZZ_SEED (default 1) makes a run repeatable. Reports (JUnit and a HAR
# file of every request) and the server log are kept in data/fuzz/.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/ensure-fuzz-tools.sh
st=data/tools/schemathesis/bin/st
max_examples="${FUZZ_MAX_EXAMPLES:-25}"
seed="${FUZZ_SEED:-1}"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
admin_url="postgres://postgres@127.0.0.1:5432/postgres"
export PGOPTIONS="-c client_min_messages=warning"

data_dir="$(mktemp -d /tmp/meditrustal-fuzz.XXXXXX)"
export MEDITRUSTAL__DATA_DIR="$data_dir"
export MEDITRUSTAL_DB_NAME="meditrustal_fuzz_$$"
export MEDITRUSTAL__DATABASE__URL="postgres://postgres@127.0.0.1:5432/$MEDITRUSTAL_DB_NAME"
export MEDITRUSTAL__SERVER__PORT="$(free_port)"
export ANVIL_PORT="$(free_port)"
# Cheap hashes: the fuzzer registers and logs in many times.
export MEDITRUSTAL__AUTH__BCRYPT_COST=4
export MEDITRUSTAL__LOG__LEVEL=info
unset MEDITRUSTAL__CHAIN__RPC_URL

psql "$admin_url" -qc "DROP DATABASE IF EXISTS $MEDITRUSTAL_DB_NAME WITH (FORCE)"
scripts/ensure-postgres.sh
rm -rf data/fuzz
mkdir -p data/fuzz

run_pid=""
cleanup() {
  if [ -n "$run_pid" ]; then
    kill -TERM -- "-$run_pid" 2>/dev/null || true
    wait "$run_pid" 2>/dev/null || true
  fi
  cp "$data_dir/run.log" data/fuzz/server.log 2>/dev/null || true
  psql "$admin_url" -qc "DROP DATABASE IF EXISTS $MEDITRUSTAL_DB_NAME WITH (FORCE)" || true
  rm -rf "$data_dir"
}
trap cleanup EXIT

setsid scripts/run.sh >"$data_dir/run.log" 2>&1 &
run_pid=$!

base="http://127.0.0.1:$MEDITRUSTAL__SERVER__PORT"
for _ in $(seq 1 600); do
  curl -sf -m 2 "$base/health/ready" >/dev/null && break
  kill -0 "$run_pid" 2>/dev/null || { cat "$data_dir/run.log"; echo "make run's script exited early" >&2; exit 1; }
  sleep 0.5
done
curl -sf -m 2 "$base/health/ready" >/dev/null || { cat "$data_dir/run.log"; echo "the server did not become ready" >&2; exit 1; }

# Registers a user with role $2 and prints an access token.
token_of() {
  curl -sf -X POST "$base/api/v1/auth/register" -H 'content-type: application/json' \
    -d "{\"username\":\"$1\",\"email\":\"$1@example.org\",\"password\":\"correct horse battery\",\"role\":\"$2\"}" >/dev/null
  curl -sf -X POST "$base/api/v1/auth/login/json" -H 'content-type: application/json' \
    -d "{\"username_or_email\":\"$1\",\"password\":\"correct horse battery\"}" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}
patient_token="$(token_of fuzzpatient PATIENT)"
doctor_token="$(token_of fuzzdoctor DOCTOR)"

checks=not_a_server_error,unsupported_method,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance
fuzz() {
  local name="$1"
  shift
  echo "schemathesis: $name" >&2
  "$@" run "$base/api/v1/openapi.json" --url "$base" \
    --checks "$checks" --phases examples,coverage,fuzzing \
    --max-examples "$max_examples" --seed "$seed" --workers 1 \
    --request-timeout 10 --no-shrink --generation-database none \
    --report junit,har --report-dir "data/fuzz/$name" \
    "${exclusions[@]}" \
    || { echo "schemathesis found failures in the $name run; see data/fuzz/" >&2; exit 1; }
}

exclusions=()
fuzz anonymous "$st"
# Authenticated runs leave out the operations that end the run's session
# (schemathesis reuses the session id that GET /auth/sessions returns).
exclusions=(--exclude-operation-id logout --exclude-operation-id logout_all
  --exclude-operation-id revoke_session)
MEDITRUSTAL_FUZZ_TOKEN="$patient_token" fuzz patient "$st" --config-file scripts/schemathesis.toml
MEDITRUSTAL_FUZZ_TOKEN="$doctor_token" fuzz doctor "$st" --config-file scripts/schemathesis.toml
