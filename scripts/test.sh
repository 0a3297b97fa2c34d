#!/usr/bin/env bash
# Runs every test of the project on a fresh machine: installs the tools, holds the code to
# rustfmt and clippy (-D warnings), starts dynalite,
# checks the template with cfn-lint and `sam validate --lint`, builds the arm64 Lambdas
# with `sam build`, and runs the Rust tests (unit, mocked SDK, real dynalite, end-to-end
# through the local stack, the arm64 artifacts among them) and the browser tests. Stops
# what it started, whatever happens.
set -uo pipefail
cd "$(dirname "$0")/.."
export SAM_CLI_TELEMETRY=0 CARGO_TERM_COLOR=never
# sam build runs cargo-lambda (and its zig) from the project venv.
export PATH="$PWD/.venv/bin:$PATH"

scripts/setup.sh || exit 1

passed=0
failed=0
failures=()
check() {
  local name=$1
  shift
  echo "==> $name"
  local started=$SECONDS
  if "$@"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    failures+=("$name")
  fi
  echo "<== $name: $((SECONDS - started)) s"
}

pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
  wait 2>/dev/null
}
trap cleanup EXIT INT TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# One dynalite for the tests that talk to DynamoDB directly; the local stack starts its own.
port=$(free_port)
node node_modules/dynalite/cli.js --host 127.0.0.1 --port "$port" >/dev/null 2>&1 &
pids+=($!)
export DYNAMODB_ENDPOINT="http://127.0.0.1:$port"
for _ in $(seq 50); do
  (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.1
done

check "cargo fmt --check" cargo fmt --all --check
check "cargo clippy --all-targets -- -D warnings" cargo clippy --workspace --all-targets -- -D warnings
check "cfn-lint and sam validate --lint (AuthMode open, jwt and cognito)" scripts/lint-template.sh
# The arm64 artifacts come first: an end-to-end test runs them (under qemu) as the
# local stack's functions, and requires them to be there.
check "sam build (arm64, cargo-lambda)" .venv/bin/sam build
check "sam build made an arm64 bootstrap per function, glibc <= 2.34" scripts/check-artifacts.sh
export E2E_REQUIRE_ARTIFACTS=1
check "cargo build (host, debug)" cargo build --workspace --all-targets
check "cargo test" cargo test --workspace --no-fail-fast
check "browser client (node --test, headless Chromium)" node --test --test-concurrency=1 tests/web/

echo
for name in "${failures[@]}"; do echo "FAILED: $name"; done
echo "checks: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
