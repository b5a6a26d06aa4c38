#!/usr/bin/env bash
# `npm run dev`: bootstrap, apply D1 migrations locally, run the worker with local KV/D1/DO.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
if [ ! -f .dev.vars ]; then
  # A fresh random bootstrap key (256 bits) for this checkout; a published or short one is
  # refused outside local development, so none is shipped.
  admin_key="$(node -e 'process.stdout.write(require("node:crypto").randomBytes(32).toString("base64url"))')"
  sed "s|^ADMIN_API_KEY=.*|ADMIN_API_KEY=${admin_key}|" .dev.vars.example > .dev.vars
  chmod 600 .dev.vars
  echo "[dev] created .dev.vars from .dev.vars.example (edit it for your secrets)" >&2
  echo "[dev] generated a random ADMIN_API_KEY: see the ADMIN_API_KEY line of $(pwd)/.dev.vars" >&2
  echo "[dev] (log in to the dashboard at http://127.0.0.1:${PORT:-8787}/ with it)" >&2
elif grep -Eq '^ADMIN_API_KEY=("?dev-admin-key-change-me"?)?[[:space:]]*$' .dev.vars; then
  echo "[dev] warning: .dev.vars has an empty or example ADMIN_API_KEY; delete .dev.vars to" \
    "have a random one generated (a weak key is refused outside local development)" >&2
fi
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
exec npx wrangler dev --local --ip 127.0.0.1 --port "$port" --test-scheduled \
  --show-interactive-dev-session=false
