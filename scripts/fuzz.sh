#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time and prints executions and crashes per target.
# Usage: bash scripts/fuzz.sh [seconds per target, default 60] [target ...]
# Needs the nightly toolchain (rustup toolchain install nightly) and cargo-fuzz (installed here
# if missing). Crashes land in fuzz/artifacts/<target>/; each one found becomes a regression test
# in the core crate.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
seconds=${1:-60}
shift || true
if ! rustup toolchain list | grep -q '^nightly'; then
  echo "[fuzz] installing the nightly toolchain" >&2
  rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "[fuzz] installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked
fi
if [ "$#" -gt 0 ]; then targets=("$@"); else mapfile -t targets < <(cargo +nightly fuzz list); fi
mkdir -p fuzz/logs
printf '%-18s %12s %10s %8s\n' target executions exec/s crashes
status=0
for target in "${targets[@]}"; do
  log="fuzz/logs/$target.log"
  if cargo +nightly fuzz run "$target" -- -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
    crashes=0
  else
    crashes=$(find "fuzz/artifacts/$target" -type f 2>/dev/null | wc -l)
    [ "$crashes" -gt 0 ] || crashes="error"
    status=1
  fi
  execs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' | tail -1)
  rate=$(grep -Eo 'stat::average_exec_per_sec: *[0-9]+' "$log" | grep -Eo '[0-9]+$' | tail -1)
  printf '%-18s %12s %10s %8s\n' "$target" "${execs:-?}" "${rate:-?}" "$crashes"
done
exit $status
