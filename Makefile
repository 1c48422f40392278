# The two commands of README.md:
#   make serve   build and start Brikk on 127.0.0.1:5487 (data in ./brikk-data)
#   make test    build and run every test
# Both install missing system packages first (scripts/install-deps.sh).

CARGO_TARGET_DIR ?= $(HOME)/.cache/brikk-target
export CARGO_TARGET_DIR
BIN := $(CARGO_TARGET_DIR)/debug/brikk
ARGS ?=
# Driver programs of tests/clients run by `make test` (all of them; pick
# some with `make clients CLIENTS=...`).
CLIENTS ?= psycopg3 psycopg2 asyncpg sqlalchemy sqlalchemy-reflect node-pg pgjdbc

.PHONY: serve test clients deps build check bench groups-bench notify-bench table-bench market-bench archive-bench fmt

deps:
	@scripts/install-deps.sh

build: deps
	cargo build --workspace --all-targets

serve: deps
	cargo build --bin brikk
	$(BIN) serve $(ARGS)

test: build
	BRIKK_BIN=$(BIN) cargo test --workspace
	BRIKK_BIN=$(BIN) scripts/run-clients.sh $(CLIENTS)

clients: deps
	cargo build --bin brikk
	BRIKK_BIN=$(BIN) scripts/run-clients.sh $(CLIENTS)

check: build
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	BRIKK_BIN=$(BIN) cargo test --workspace

bench:
	@scripts/install-deps.sh --bench
	cargo build --release --bin brikk --bin bench
	BRIKK_BIN=$(CARGO_TARGET_DIR)/release/brikk $(CARGO_TARGET_DIR)/release/bench $(ARGS)

groups-bench:
	@scripts/install-deps.sh --bench
	cargo build --release --bin brikk --bin groups-bench
	BRIKK_BIN=$(CARGO_TARGET_DIR)/release/brikk $(CARGO_TARGET_DIR)/release/groups-bench $(ARGS)

notify-bench:
	@scripts/install-deps.sh --bench
	cargo build --release --bin brikk --bin notify-bench
	BRIKK_BIN=$(CARGO_TARGET_DIR)/release/brikk $(CARGO_TARGET_DIR)/release/notify-bench $(ARGS)

table-bench:
	@scripts/install-deps.sh --bench
	cargo build --release --bin brikk --bin table-bench
	BRIKK_BIN=$(CARGO_TARGET_DIR)/release/brikk $(CARGO_TARGET_DIR)/release/table-bench $(ARGS)
archive-bench:
	@scripts/install-deps.sh
	@scripts/install-clients.sh --python
	cargo build --release --bin brikk --bin archive-bench
	BRIKK_BIN=$(CARGO_TARGET_DIR)/release/brikk $(CARGO_TARGET_DIR)/release/archive-bench $(ARGS)

market-bench:
	@scripts/install-deps.sh --bench
	cargo build --release --bin brikk --bin market-bench
	BRIKK_BIN=$(CARGO_TARGET_DIR)/release/brikk $(CARGO_TARGET_DIR)/release/market-bench $(ARGS)

fmt:
	cargo fmt --all
