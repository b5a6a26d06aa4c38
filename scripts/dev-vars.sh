#!/usr/bin/env bash
# Makes sure `.dev.vars` (the local secrets `wrangler dev` reads) exists and holds a strong random
# ADMIN_API_KEY, the key the dashboard and API are logged in with. On first run it is created
# from .dev.vars.example; a missing, empty or old example key is replaced; a key already set is
# kept, so the login survives restarts. Used by `npm run dev` and `npm run demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "[dev] $*" >&2; }
# 256 random bits; a published or short key is refused outside local development, so none is
# shipped.
new_key() { node -e 'process.stdout.write(require("node:crypto").randomBytes(32).toString("base64url"))'; }

if [ ! -f .dev.vars ]; then
  sed "s|^ADMIN_API_KEY=.*|ADMIN_API_KEY=$(new_key)|" .dev.vars.example > .dev.vars
  chmod 600 .dev.vars
  say "created .dev.vars from .dev.vars.example, with a random ADMIN_API_KEY (edit it for your secrets)"
elif ! grep -q '^ADMIN_API_KEY=' .dev.vars; then
  if [ -n "$(tail -c 1 .dev.vars)" ]; then echo >> .dev.vars; fi
  printf 'ADMIN_API_KEY=%s\n' "$(new_key)" >> .dev.vars
  say "added a random ADMIN_API_KEY to .dev.vars"
elif grep -Eq '^ADMIN_API_KEY=("?dev-admin-key-change-me"?)?[[:space:]]*$' .dev.vars; then
  # base64url has no `|` or `&`, so the key is safe in the sed replacement.
  sed -i "s|^ADMIN_API_KEY=.*|ADMIN_API_KEY=$(new_key)|" .dev.vars
  say "replaced the empty or example ADMIN_API_KEY of .dev.vars with a random one"
fi
