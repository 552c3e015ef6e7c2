#!/usr/bin/env bash
# Makes sure a PostgreSQL server accepts connections at the configured address and that
# the application database exists. Starts the local cluster if it is down.
set -euo pipefail

admin_url="${MEDITRUSTAL_PG_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
app_db="${MEDITRUSTAL_DB_NAME:-meditrustal}"

if ! command -v psql >/dev/null 2>&1; then
  echo "psql not found; installing postgresql-client" >&2
  apt-get update -qq && apt-get install -y -qq postgresql-client >/dev/null
fi

if ! pg_isready -q -d "$admin_url"; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    version="$(ls /etc/postgresql | sort -V | tail -n 1)"
    echo "PostgreSQL is not accepting connections; starting cluster $version/main" >&2
    pg_ctlcluster --skip-systemctl-redirect "$version" main start
  fi
  for _ in $(seq 1 50); do
    pg_isready -q -d "$admin_url" && break
    sleep 0.2
  done
  pg_isready -q -d "$admin_url" || { echo "PostgreSQL did not start; check its log under /var/log/postgresql" >&2; exit 1; }
fi

exists="$(psql "$admin_url" -tAc "SELECT 1 FROM pg_database WHERE datname = '$app_db'")"
if [ "$exists" != "1" ]; then
  psql "$admin_url" -qc "CREATE DATABASE \"$app_db\""
  echo "created database $app_db" >&2
fi
