// What `npm run dev` and `npm run demo` share about the local development set-up: the
// developer's `.dev.vars` and the address `npm run dev` serves.

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseEnv } from 'node:util';

/** The project root. */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** The developer's secrets file (scripts/dev-vars.sh creates it). */
export const DEV_VARS = path.join(ROOT, '.dev.vars');

/** Where `npm run dev` keeps the local D1, KV and Durable Objects (wrangler's default). */
export const DEV_STATE = path.join(ROOT, '.wrangler', 'state');

/** The origin `npm run dev` serves (`PORT`, default 8787). */
export const devOrigin = (port = process.env.PORT || 8787) => `http://127.0.0.1:${port}`;

/** `.dev.vars` parsed the way wrangler reads it (dotenv syntax). */
export function readDevVars(file = DEV_VARS) {
  return parseEnv(readFileSync(file, 'utf8'));
}

/** Whether a worker answers `GET /health` at `origin` (any status: it is up). */
export async function answers(origin) {
  try {
    const res = await fetch(`${origin}/health`, { signal: AbortSignal.timeout(10_000) });
    await res.arrayBuffer();
    return true;
  } catch {
    return false;
  }
}
