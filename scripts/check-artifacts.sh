#!/usr/bin/env bash
# Checks that `sam build` left one arm64 ELF `bootstrap` for every function of the template,
# and that none needs a newer glibc than the provided.al2023 runtime has (Amazon Linux 2023
# ships glibc 2.34).
set -euo pipefail
cd "$(dirname "$0")/.."
max_glibc=2.34
functions=$(grep -E '^  [A-Za-z0-9]+Function:$' template.yaml | tr -d ' :')
[ -n "$functions" ] || { echo "no functions found in template.yaml"; exit 1; }

# The highest GLIBC_x.y version an ELF file references, or nothing for a static binary.
# readelf reads an ELF of any architecture; without it, the version names are found in
# the file's bytes (they are plain strings in .dynstr).
highest_glibc() {
  {
    if command -v readelf >/dev/null 2>&1; then
      readelf --version-info --wide "$1"
    else
      cat "$1"
    fi
  } | { grep -aoE 'GLIBC_[0-9]+(\.[0-9]+)+' || true; } | sed 's/^GLIBC_//' | sort -uV | tail -n1
}

# Whether version $1 is newer than version $2.
newer() {
  [ "$1" != "$2" ] && [ "$(printf '%s\n' "$1" "$2" | sort -V | tail -n1)" = "$1" ]
}

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
  glibc=$(highest_glibc "$bin")
  if [ -n "$glibc" ] && newer "$glibc" "$max_glibc"; then
    echo "$fn: $bin needs glibc $glibc, newer than the $max_glibc of Amazon Linux 2023 (provided.al2023); it would not start on Lambda"
    status=1; continue
  fi
  if [ -n "$glibc" ]; then needs="glibc $glibc (AL2023 has $max_glibc)"; else needs="no glibc (static)"; fi
  echo "$fn: arm64 bootstrap, $(stat -c %s "$bin") bytes, needs $needs"
done
exit $status
