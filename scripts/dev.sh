#!/usr/bin/env bash
# `npm run dev`: bootstrap, make sure .dev.vars has a login key, apply D1 migrations locally,
# run the worker with local KV/D1/DO, and print how to log in.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
bash scripts/dev-vars.sh
# A loopback PUBLIC_BASE_URL on another port (older .dev.vars pinned 8787) would hand carriers
# stream URLs nobody listens on, and calls would stay `ringing`: unset it, so URLs follow the port.
port="${PORT:-8787}"
pinned="$(sed -n 's/^PUBLIC_BASE_URL=["]*\([^"]*\)["]*[[:space:]]*$/\1/p' .dev.vars | tail -n 1)"
if [[ "$pinned" =~ ^(https?|wss?)://(127\.0\.0\.1|localhost|\[::1\])(:([0-9]+))?/?$ ]]; then
  pinned_port="${BASH_REMATCH[4]:-80}"
  if [ "$pinned_port" != "$port" ]; then
    sed -i.bak 's|^PUBLIC_BASE_URL=.*|PUBLIC_BASE_URL=|' .dev.vars && rm -f .dev.vars.bak
    echo "[dev] .dev.vars pinned PUBLIC_BASE_URL=$pinned but the server listens on $port:" \
      "unset it (stream URLs now follow the port)" >&2
  fi
fi
bash scripts/build.sh
CI=true npx wrangler d1 migrations apply DB --local
# Once the worker answers, the dashboard URL, the login key and the next step are printed
# (wrangler keeps this shell's pid, which dev-ready.mjs watches).
node scripts/dev-ready.mjs "$port" "$$" &
exec npx wrangler dev --local --ip 127.0.0.1 --port "$port" --test-scheduled \
  --show-interactive-dev-session=false
