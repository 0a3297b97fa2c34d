# Two commands do all set-up on a fresh machine:
#   make local   runs the chat locally (WebSocket API, Lambdas, DynamoDB), no AWS, no Docker
#   make test    runs every test
.PHONY: local test setup build sam-build invoke

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
