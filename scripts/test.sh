#!/usr/bin/env bash
# `npm test`: bootstrap, build the wasm once, check formatting and lints (rustfmt, clippy on the
# core natively and on the worker for wasm32, warnings are errors), run the native core tests
# (cargo test) and the end-to-end suite (node:test against workerd), then print one
# "N passed, N failed, N skipped" line; each formatting or lint check counts as one test.
# With CI set (.ci/run sets it), a skipped browser suite (tests/dashboard.test.mjs without
# Chromium) is a failure: CI must not go green without it.
# Extra arguments select e2e test files (e.g. `npm test -- tests/foundation.test.mjs`).
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
mkdir -p tests/.tmp
passed=0
failed=0
skipped=0
finish() {
  echo
  echo "$passed passed, $failed failed, $skipped skipped"
  [ "$failed" -eq 0 ]
  exit $?
}

if ! bash scripts/bootstrap.sh || ! bash scripts/build.sh; then
  echo "[test] bootstrap or build failed" >&2
  failed=1
  finish
fi

# One summary entry per check: its name, then the command; the output goes to the terminal.
check() {
  local name=$1 started status
  shift
  started=$SECONDS
  echo "[test] $name: $*" >&2
  "$@" 2>&1 | tee tests/.tmp/check.log
  status=${PIPESTATUS[0]}
  if [ "$status" -eq 0 ]; then
    passed=$((passed + 1))
    echo "[test] $name: ok ($((SECONDS - started)) s)" >&2
  else
    failed=$((failed + 1))
    echo "[test] $name: FAILED ($((SECONDS - started)) s)" >&2
  fi
}

check "rustfmt" cargo fmt --all -- --check
check "clippy (core, native)" cargo clippy -p phone-agent-core --all-targets -- -D warnings
check "clippy (worker, wasm32)" \
  cargo clippy --target wasm32-unknown-unknown -p phone-agent -- -D warnings

echo "[test] core: cargo test" >&2
cargo test -p phone-agent-core 2>&1 | tee tests/.tmp/cargo.log
cargo_status=${PIPESTATUS[0]}
sum() { grep -Eo "[0-9]+ $1" "$2" | awk '{s += $1} END {print s + 0}'; }
cargo_passed=$(sum passed tests/.tmp/cargo.log)
cargo_failed=$(sum failed tests/.tmp/cargo.log)
cargo_ignored=$(sum ignored tests/.tmp/cargo.log)
if [ "$cargo_status" -ne 0 ] && [ "$cargo_failed" -eq 0 ]; then cargo_failed=1; fi
passed=$((passed + cargo_passed))
failed=$((failed + cargo_failed))
skipped=$((skipped + cargo_ignored))

echo "[test] end to end: node --test" >&2
if [ "$#" -gt 0 ]; then files=("$@"); else files=(tests/*.test.mjs); fi
node --test --test-reporter=spec --test-timeout=600000 "${files[@]}" 2>&1 | tee tests/.tmp/node.log
node_status=${PIPESTATUS[0]}
# The reporter's closing summary: "ℹ pass N", "ℹ fail N", "ℹ cancelled N", "ℹ skipped N",
# "ℹ todo N" (a todo neither passes nor fails, so it counts as skipped here).
node_count() { grep -E "^ℹ ($1) [0-9]+" tests/.tmp/node.log | awk '{s += $3} END {print s + 0}'; }
node_passed=$(node_count pass)
node_failed=$(node_count 'fail|cancelled')
node_skipped=$(node_count 'skipped|todo')
if [ "$node_status" -ne 0 ] && [ "$node_failed" -eq 0 ]; then node_failed=1; fi
passed=$((passed + node_passed))
failed=$((failed + node_failed))
skipped=$((skipped + node_skipped))

# tests/dashboard.test.mjs skips its tests with this reason when Chromium is missing.
if [ -n "${CI:-}" ] && [ "${CI}" != "false" ] && [ "${CI}" != "0" ] \
  && grep -q '# browser suite skipped' tests/.tmp/node.log; then
  echo "[test] the browser suite (tests/dashboard.test.mjs) was skipped, which CI does not allow" >&2
  failed=$((failed + 1))
fi
finish
