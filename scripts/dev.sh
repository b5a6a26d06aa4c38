#!/usr/bin/env bash
# `npm run dev`: bootstrap, make sure .dev.vars has a login key, apply D1 migrations locally,
# run the worker with local KV/D1/DO, and print how to log in.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
bash scripts/dev-vars.sh
bash scripts/build.sh
CI=true npx wrangler d1 migrations apply DB --local
# Once the worker answers, the dashboard URL, the login key and the next step are printed
# (wrangler keeps this shell's pid, which dev-ready.mjs watches).
node scripts/dev-ready.mjs "${PORT:-8787}" "$$" &
exec npx wrangler dev --local --ip 127.0.0.1 --port "${PORT:-8787}" --test-scheduled \
  --show-interactive-dev-session=false
