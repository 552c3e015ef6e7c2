# MediTrustAl: `make run` serves the API, `make test` runs every check.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Domain crates must never depend on an adapter library or the web framework.
DOMAIN_CRATES := meditrustal-identity meditrustal-records meditrustal-crypto meditrustal-ledger meditrustal-audit
FORBIDDEN_IN_DOMAIN := diesel actix-web ethers pasetors deadpool-diesel

.PHONY: help tools db run test lint fmt check-artifacts check-layers build smoke bench fuzz clean-data

help:
	@echo "make run    install what is missing, start anvil and PostgreSQL, migrate, deploy, serve on 127.0.0.1:8080"
	@echo "make test   formatting, clippy, layer check, contract artifacts, all tests (PostgreSQL + anvil)"
	@echo "make lint   formatting and clippy only"
	@echo "make bench  load benchmark (about 5 minutes after the release build); writes docs/benchmarks.md"
	@echo "make fuzz   schemathesis against the OpenAPI description (installs it into data/tools)"
	@echo "make clean-data   delete data/ and the meditrustal database (stop the server first)"

tools:
	@scripts/ensure-tools.sh

db:
	@scripts/ensure-postgres.sh

build: tools
	cargo build --workspace --all-targets

run: tools db
	@scripts/run.sh

# Deletes the local state of `make run` and its database, which belong together.
clean-data:
	rm -rf data
	psql postgres://postgres@127.0.0.1:5432/postgres -qc 'DROP DATABASE IF EXISTS meditrustal WITH (FORCE)'

fmt:
	cargo fmt --all

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

check-artifacts: tools
	node contracts/compile.js --check

check-layers:
	@for crate in $(DOMAIN_CRATES); do \
	  for dep in $(FORBIDDEN_IN_DOMAIN); do \
	    if [ -n "$$(cargo tree -q -p $$crate -e normal -i $$dep 2>/dev/null)" ]; then \
	      echo "layer violation: $$crate depends on $$dep"; exit 1; \
	    fi; \
	  done; \
	done; echo "domain crates depend on no adapter library"

# Starts the server the way `make run` does and runs the README walkthrough.
smoke: tools db
	@scripts/smoke.sh

# Release build, wrk and pgbench against its own server, database and anvil.
bench: tools db
	@scripts/bench.sh

# Bounded schemathesis runs against a server started like `make run`.
fuzz: tools db
	@scripts/fuzz.sh

test: tools db lint check-artifacts check-layers
	cargo test --workspace --no-fail-fast
	@scripts/smoke.sh
	@scripts/bench.sh --smoke
	@scripts/fuzz.sh
