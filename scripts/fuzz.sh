#!/usr/bin/env bash
# Runs every native Go fuzz target for a while (default 60 s each):  scripts/fuzz.sh [SECONDS]
# The seed corpora already run as unit tests in scripts/test.sh; this explores beyond them.
set -euo pipefail
cd "$(dirname "$0")/.."
T=${1:-60}
fail=0
while read -r dir target; do
  echo "== $dir $target (${T}s)"
  if ! go test "./$dir/" -run '^$' -fuzz "^${target}\$" -fuzztime "${T}s" 2>&1 | tail -3; then fail=1; fi
done < <(grep -rn '^func Fuzz' --include='*_test.go' . | sed -E 's|^\./([^:]*)/[^/:]*:[0-9]+:func (Fuzz[A-Za-z0-9_]*).*|\1 \2|' | sort -u)
exit $fail
