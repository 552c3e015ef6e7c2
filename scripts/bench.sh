#!/usr/bin/env bash
# `make bench`: builds the server and the benchmark harness in release
# mode and runs it. The harness starts its own database, anvil and server
# on free 127.0.0.1 ports, loads them with wrk and pgbench, stops what it
# started and writes docs/benchmarks.md with charts in docs/benchmarks/.
# The measured runs take about 5 minutes on 2 cores, plus the release build.
#
#   scripts/bench.sh              the real run; BENCH_NOTE adds a line to the page
#   scripts/bench.sh --smoke      one-second runs on the debug build, output to a
#                                 temporary directory: checks the harness only
#
# Other arguments go to the harness (`target/release/meditrustal-bench --help`).
set -euo pipefail
cd "$(dirname "$0")/.."

smoke=false
args=()
for arg in "$@"; do
  case "$arg" in
    --smoke) smoke=true ;;
    *) args+=("$arg") ;;
  esac
done

missing=()
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v pgbench >/dev/null 2>&1 || missing+=(postgresql-contrib)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# Checks that PostgreSQL answers; the harness creates its own database.
MEDITRUSTAL_DB_NAME=postgres scripts/ensure-postgres.sh

out_dir=""
if $smoke; then
  cargo build -q -p meditrustal -p meditrustal-bench
  profile=debug
  out_dir="$(mktemp -d /tmp/meditrustal-bench-smoke.XXXXXX)"
  work_dir="$out_dir/work"
  args=(--smoke --database "meditrustal_bench_smoke_$$" "${args[@]}")
else
  cargo build --release -p meditrustal -p meditrustal-bench
  profile=release
  work_dir=target/bench
  rm -rf "$work_dir"
  args=(--out-dir docs "${args[@]}")
  if [ -n "${BENCH_NOTE:-}" ]; then
    args+=(--note "$BENCH_NOTE")
  fi
fi

bench_pid=""
cleanup() {
  if [ -n "$bench_pid" ]; then
    # The harness's process group holds the server, anvil, wrk and pgbench.
    kill -TERM -- "-$bench_pid" 2>/dev/null || true
    wait "$bench_pid" 2>/dev/null || true
  fi
  if $smoke; then
    rm -rf "$out_dir"
  fi
}
trap cleanup EXIT

if $smoke; then
  args+=(--out-dir "$out_dir")
fi
setsid "target/$profile/meditrustal-bench" \
  --server-bin "target/$profile/meditrustal" --work-dir "$work_dir" "${args[@]}" &
bench_pid=$!
status=0
wait "$bench_pid" || status=$?
bench_pid=""
if [ "$status" -ne 0 ]; then
  if $smoke; then
    tail -n 40 "$work_dir"/stack-*/server.log >&2 2>/dev/null || true
  fi
  echo "the benchmark failed (exit $status); logs are in $work_dir" >&2
  exit "$status"
fi

if $smoke; then
  for file in benchmarks.md benchmarks/throughput.svg benchmarks/p99.svg benchmarks/gas.svg \
    benchmarks/results.json; do
    [ -s "$out_dir/$file" ] || { echo "the bench smoke run wrote no $file" >&2; exit 1; }
  done
  echo "bench smoke run passed: the harness measured every scenario without errors"
fi
