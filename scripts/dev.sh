#!/usr/bin/env bash
# `npm run dev`: bootstrap, apply D1 migrations locally, run the worker with local KV/D1/DO.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
if [ ! -f .dev.vars ]; then
  cp .dev.vars.example .dev.vars
  echo "[dev] created .dev.vars from .dev.vars.example (edit it for your secrets)" >&2
fi
bash scripts/build.sh
CI=true npx wrangler d1 migrations apply DB --local
exec npx wrangler dev --local --ip 127.0.0.1 --port "${PORT:-8787}" --test-scheduled \
  --show-interactive-dev-session=false
