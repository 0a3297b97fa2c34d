# Two commands do all set-up on a fresh machine:
#   make local   runs the chat locally (WebSocket API, Lambdas, DynamoDB), no AWS, no Docker
#   make test    runs every test
.PHONY: local test setup sam-build bench

ARGS ?=

local: setup
	cargo build --workspace --bins
	cargo run -q -p chat-local -- start --bin-dir target/debug $(ARGS)

test:
	scripts/test.sh

setup:
	scripts/setup.sh

sam-build: setup
	PATH="$(CURDIR)/.venv/bin:$$PATH" SAM_CLI_TELEMETRY=0 sam build

# Benchmarks against the real local stack, in release builds; writes BENCHMARKS.md.
bench: setup sam-build
	cargo build --release --workspace --bins
	target/release/chat-bench
