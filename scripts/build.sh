#!/usr/bin/env bash
# Builds the release wasm once; a no-op when no Rust source changed since the last build, so
# `wrangler dev` restarts and test runs do not pay for it again. Prints the bundle size.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
wasm=build/index_bg.wasm

if [ -f "$wasm" ] && [ -f build/worker/shim.mjs ] \
  && [ -z "$(find src crates Cargo.toml Cargo.lock -newer "$wasm" -type f -print -quit)" ]; then
  echo "[build] wasm is up to date" >&2
else
  echo "[build] building the release wasm" >&2
  # worker-build's documented overrides: use the installed CLI and npm's wasm-opt instead of
  # downloading them (downloads outside the registries fail here).
  WASM_BINDGEN_BIN=wasm-bindgen WASM_OPT_BIN=./node_modules/.bin/wasm-opt worker-build --release
  touch "$wasm"
fi

raw=$(stat -c %s "$wasm")
gz=$(gzip -9 -c "$wasm" | wc -c)
echo "[build] wasm size: raw $raw bytes ($((raw / 1024)) KiB), gzip $gz bytes ($((gz / 1024)) KiB)" >&2
