#!/usr/bin/env bash
# Installs the pinned schemathesis from PyPI into a virtual environment in
# data/tools (ignored by git), unless that version is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

version="4.32.5"
venv=data/tools/schemathesis
if [ -x "$venv/bin/st" ] && [ "$("$venv/bin/st" --version 2>/dev/null)" = "st, version $version" ]; then
  exit 0
fi
echo "installing schemathesis $version into $venv" >&2
rm -rf "$venv"
mkdir -p data/tools
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$version"
