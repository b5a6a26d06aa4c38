#!/usr/bin/env bash
# `npm run deploy` runs this before `wrangler deploy`: the KV and D1 ids in wrangler.toml ship as
# all-zero placeholders (local development needs none), and deploying with them would bind
# resources that do not exist. Refuses until both are replaced; see docs/operations.md.
set -euo pipefail
cd "$(dirname "$0")/.."
config="${1:-wrangler.toml}"
status=0
while IFS= read -r line; do
  echo "[deploy] $config still has the placeholder $line" >&2
  status=1
done < <(grep -nE '^[[:space:]]*(id|database_id)[[:space:]]*=[[:space:]]*"0{8}-?0{4}-?0{4}-?0{4}-?0{12}"' "$config" || true)
if [ "$status" -ne 0 ]; then
  echo "[deploy] create them first: npx wrangler kv namespace create KV; npx wrangler d1 create phone-agent" >&2
  echo "[deploy] then put the printed ids in $config (docs/operations.md, \"Deploying\")" >&2
fi
exit "$status"
