#!/usr/bin/env bash
# Checks that `sam build` left one arm64 ELF `bootstrap` for every function of the template.
set -euo pipefail
cd "$(dirname "$0")/.."
functions=$(grep -E '^  [A-Za-z0-9]+Function:$' template.yaml | tr -d ' :')
[ -n "$functions" ] || { echo "no functions found in template.yaml"; exit 1; }
status=0
for fn in $functions; do
  bin=.aws-sam/build/$fn/bootstrap
  if [ ! -x "$bin" ]; then
    echo "$fn: no executable $bin"; status=1; continue
  fi
  # ELF e_machine (offset 18, little-endian) is 0xB7 for AArch64.
  machine=$(od -An -tx1 -j18 -N2 "$bin" | tr -d ' ')
  if [ "$(head -c4 "$bin" | od -An -c | tr -d ' ')" != '177ELF' ] || [ "$machine" != "b700" ]; then
    echo "$fn: $bin is not an arm64 ELF (e_machine $machine)"; status=1; continue
  fi
  echo "$fn: arm64 bootstrap, $(stat -c %s "$bin") bytes"
done
exit $status
