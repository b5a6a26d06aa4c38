#!/usr/bin/env bash
# Installs whatever this machine is missing to build and run the worker; skips what is there.
# Every step is a registry install (crates.io / npm, rustup components): docs/operations.md
# ("Toolchain") says why.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
say() { echo "[bootstrap] $*" >&2; }

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "adding the wasm32-unknown-unknown target"
  rustup target add wasm32-unknown-unknown
fi

# `npm test` fails on rustfmt and clippy findings, so both components must be there.
for component in rustfmt clippy; do
  if ! rustup component list --installed | grep -q "^$component-"; then
    say "adding the $component component"
    rustup component add "$component"
  fi
done

WORKER_BUILD_VERSION=0.8.7
if [ "$(worker-build --version 2>/dev/null || true)" != "$WORKER_BUILD_VERSION" ]; then
  say "installing worker-build $WORKER_BUILD_VERSION (about 3 minutes)"
  cargo install worker-build --version "$WORKER_BUILD_VERSION" --locked
fi

# The CLI must match the wasm-bindgen library in Cargo.lock exactly. No --locked: the registry
# mirror here lacks one of its locked dependencies.
WASM_BINDGEN_VERSION=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
if [ "$(wasm-bindgen --version 2>/dev/null || true)" != "wasm-bindgen $WASM_BINDGEN_VERSION" ]; then
  say "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (about 4 minutes)"
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --force
fi

# Headless Chromium for the dashboard's browser tests (tests/dashboard.test.mjs drives it with
# playwright-core, which downloads no browser): Debian's package, when it is not there yet.
if [ ! -x /usr/bin/chromium ]; then
  say "installing chromium (Debian package) for the dashboard browser tests"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
fi

# Schemathesis for tests/schemathesis.test.mjs (the OpenAPI document against the running
# worker): PyPI's pinned release in its own venv, tests/.venv-schemathesis (gitignored; the
# bench's Pipecat has bench/.venv). Debian's python3 needs python3-venv for `-m venv`.
SCHEMATHESIS_VERSION=4.32.5
SCHEMATHESIS_VENV=tests/.venv-schemathesis
if [ "$("$SCHEMATHESIS_VENV/bin/schemathesis" --version 2>/dev/null || true)" \
  != "schemathesis, version $SCHEMATHESIS_VERSION" ]; then
  if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    say "installing python3-venv (Debian package) for the Schemathesis venv"
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y python3-venv
  fi
  say "installing schemathesis $SCHEMATHESIS_VERSION from PyPI into $SCHEMATHESIS_VENV (about 20 s)"
  python3 -m venv "$SCHEMATHESIS_VENV"
  "$SCHEMATHESIS_VENV/bin/python" -m pip install --quiet "schemathesis==$SCHEMATHESIS_VERSION"
fi

# npm: wrangler (ships workerd), binaryen (wasm-opt), test dependencies.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ] \
  || [ package.json -nt node_modules/.package-lock.json ]; then
  say "installing npm dependencies"
  npm ci --no-audit --no-fund --loglevel=error
fi
