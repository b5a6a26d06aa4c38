#!/usr/bin/env bash
# `npm test`: bootstrap, build the wasm once, run the native core tests (cargo test) and the
# end-to-end suite (node:test against workerd), then print one "N passed, N failed" line.
# Extra arguments select e2e test files (e.g. `npm test -- tests/foundation.test.mjs`).
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
mkdir -p tests/.tmp
passed=0
failed=0
finish() {
  echo
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit $?
}

if ! bash scripts/bootstrap.sh || ! bash scripts/build.sh; then
  echo "[test] bootstrap or build failed" >&2
  failed=1
  finish
fi

echo "[test] core: cargo test" >&2
cargo test -p phone-agent-core 2>&1 | tee tests/.tmp/cargo.log
cargo_status=${PIPESTATUS[0]}
cargo_passed=$(grep -Eo '[0-9]+ passed' tests/.tmp/cargo.log | awk '{s += $1} END {print s + 0}')
cargo_failed=$(grep -Eo '[0-9]+ failed' tests/.tmp/cargo.log | awk '{s += $1} END {print s + 0}')
if [ "$cargo_status" -ne 0 ] && [ "$cargo_failed" -eq 0 ]; then cargo_failed=1; fi
passed=$((passed + cargo_passed))
failed=$((failed + cargo_failed))

echo "[test] end to end: node --test" >&2
if [ "$#" -gt 0 ]; then files=("$@"); else files=(tests/*.test.mjs); fi
node --test --test-reporter=spec --test-timeout=600000 "${files[@]}" 2>&1 | tee tests/.tmp/node.log
node_status=${PIPESTATUS[0]}
node_passed=$(grep -E '^ℹ pass [0-9]+' tests/.tmp/node.log | awk '{print $3}' | tail -1)
node_failed=$(grep -E '^ℹ (fail|cancelled) [0-9]+' tests/.tmp/node.log | awk '{s += $3} END {print s + 0}')
node_passed=${node_passed:-0}
if [ "$node_status" -ne 0 ] && [ "$node_failed" -eq 0 ]; then node_failed=1; fi
passed=$((passed + node_passed))
failed=$((failed + node_failed))
finish
