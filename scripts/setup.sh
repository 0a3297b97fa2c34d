#!/usr/bin/env bash
# Installs everything the project needs on a fresh machine, and nothing twice:
# a project-local Python venv (SAM CLI, cfn-lint, cargo-lambda with zig), the Node tools
# (dynalite, wscat, playwright-core), Debian's Chromium for the browser tests, qemu-user
# with the arm64 glibc for the arm64 end-to-end test, and the arm64 Rust target. Safe to
# run again; each step is skipped when its inputs have not changed.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  python3 -m venv .venv
fi
if ! cmp -s requirements-dev.txt .venv/.installed-requirements; then
  echo "setup: installing Python tools (SAM CLI, cfn-lint, cargo-lambda)"
  .venv/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
  cp requirements-dev.txt .venv/.installed-requirements
fi

if ! cmp -s package.json node_modules/.installed-package.json; then
  echo "setup: installing Node tools (dynalite, wscat, playwright-core)"
  npm install --no-audit --no-fund --loglevel=error
  cp package.json node_modules/.installed-package.json
fi

# The benchmark's Node.js peer (AWS SDK v3), also run by the benchmark's smoke test.
if ! cmp -s tests/node-peer/package.json tests/node-peer/node_modules/.installed-package.json; then
  echo "setup: installing the Node.js benchmark peer (AWS SDK v3)"
  (cd tests/node-peer && npm install --no-audit --no-fund --loglevel=error)
  cp tests/node-peer/package.json tests/node-peer/node_modules/.installed-package.json
fi

if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing Chromium for the browser tests"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "setup: Chromium is missing; install it (Debian: apt-get install chromium) for the browser tests" >&2
  fi
fi

# qemu-user and Debian's arm64 glibc let the arm64 end-to-end test run the deployed
# (arm64) bootstraps on this machine.
if ! command -v qemu-aarch64 >/dev/null 2>&1 || [ ! -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing qemu-user and the arm64 glibc to run the arm64 bootstraps"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user libc6-arm64-cross >/dev/null
  else
    echo "setup: qemu-aarch64 or the arm64 glibc is missing (Debian: apt-get install qemu-user libc6-arm64-cross); the arm64 end-to-end test will be skipped" >&2
  fi
fi

# make test holds the code to rustfmt and clippy before anything else.
for component in rustfmt clippy; do
  if ! rustup component list --installed | grep -q "^$component"; then
    echo "setup: adding the $component Rust component"
    rustup component add "$component"
  fi
done

if ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
  echo "setup: adding the aarch64-unknown-linux-gnu Rust target"
  rustup target add aarch64-unknown-linux-gnu
fi
