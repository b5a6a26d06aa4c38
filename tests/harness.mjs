// End-to-end harness: runs the built worker in real workerd (`wrangler dev`, local mode) with
// real local D1/KV/Durable Objects, each test file in its own state directory and port.
//
// The worker is built once per test run (scripts/test.sh); here we only point wrangler at a
// generated config without a [build] step, placed in a temp directory so the developer's
// .dev.vars never leaks into tests (wrangler reads .dev.vars next to the config file).

import { spawn, execFile } from 'node:child_process';
import { createHash, createHmac } from 'node:crypto';
import { cp, mkdir, mkdtemp, readFile, readdir, rename, writeFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parse as parseToml } from 'smol-toml';
import { Agent, setGlobalDispatcher } from 'undici';

// Every request of the test process (tests and fakes) on a fresh connection: a kept-alive socket
// that the worker's server closes while idle can be picked for the next request at that very
// moment, which then fails with ECONNRESET although nothing is wrong (seen on a loaded CI machine).
setGlobalDispatcher(new Agent({ pipelining: 0 }));

const execFileAsync = promisify(execFile);
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const WRANGLER = path.join(ROOT, 'node_modules', 'wrangler', 'bin', 'wrangler.js');

/** Secrets and settings every test worker gets unless a test overrides them. */
export const TEST_VARS = {
  ADMIN_API_KEY: 'test-admin-key',
  ALLOW_PRIVATE_TARGETS: 'true',
  RESEND_WEBHOOK_SECRET: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
  STANDARD_WEBHOOK_SECRET: 'whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD',
  TWILIO_AUTH_TOKEN: '12345',
  BLAND_WEBHOOK_SECRET: 'bland-test-secret',
  RETELL_API_KEY: 'retell-test-key',
  VAPI_WEBHOOK_SECRET: 'vapi-test-secret',
  EXOTEL_WEBHOOK_TOKEN: 'exotel-test-token',
  // RFC 8032 test 1 public key; the matching private seed is 9d61b19d… (telnyxKeyPair).
  TELNYX_PUBLIC_KEY: '11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=',
  DELIVERY_RETRY_SCHEDULE: '1,1,1',
};

/**
 * Twilio REST settings for workers that schedule calls but never dial one: scheduling refuses a
 * call its provider could not place (503 feature_unavailable), and nothing listens on port 9.
 */
export const UNDIALLED_TWILIO = {
  TWILIO_ACCOUNT_SID: 'AC' + 'f'.repeat(32),
  TWILIO_API_URL: 'http://127.0.0.1:9',
};

/** A free TCP port on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

async function writeTestConfig(dir, vars, source) {
  const base = path.dirname(source);
  const config = parseToml(await readFile(source, 'utf8'));
  delete config.build;
  config.main = path.join(base, config.main);
  if (config.assets) config.assets.directory = path.join(base, config.assets.directory);
  for (const db of config.d1_databases ?? []) db.migrations_dir = path.join(base, db.migrations_dir);
  const configPath = path.join(dir, 'wrangler.json');
  await writeFile(configPath, JSON.stringify(config, null, 2));
  // .dev.vars beside the config: overrides [vars], exactly like a developer's local setup.
  const lines = Object.entries(vars)
    .filter(([, v]) => v !== undefined && v !== null)
    .map(([k, v]) => `${k}=${JSON.stringify(String(v))}`);
  await writeFile(path.join(dir, '.dev.vars'), lines.join('\n') + '\n');
  return configPath;
}

async function wrangler(args, options = {}) {
  return execFileAsync(process.execPath, [WRANGLER, ...args], {
    cwd: ROOT,
    env: { ...process.env, CI: 'true', WRANGLER_SEND_METRICS: 'false' },
    maxBuffer: 64 * 1024 * 1024,
    ...options,
  });
}

/** Storage directories this process filled from a template: a restart on one needs no migration. */
const migratedStates = new Set();

/**
 * Fills the new storage directory `state` with a local D1 that has every migration applied.
 * Applying them means a wrangler process per worker (seconds each, more on a loaded machine), so
 * they are applied once per distinct set of migration files, database and wrangler version, into
 * a template under tests/.tmp, which each new worker copies. The template is built beside and
 * renamed into place, so a concurrent or interrupted build never leaves a half-migrated one.
 */
async function migratedState(state, configPath) {
  migratedStates.add(state);
  const config = JSON.parse(await readFile(configPath, 'utf8'));
  const hash = createHash('sha256');
  hash.update(JSON.stringify(config.d1_databases ?? []));
  hash.update(JSON.parse(await readFile(path.join(ROOT, 'node_modules', 'wrangler', 'package.json'), 'utf8')).version);
  for (const db of config.d1_databases ?? []) {
    const dir = db.migrations_dir ?? path.join(path.dirname(configPath), 'migrations');
    for (const name of (await readdir(dir)).filter((n) => n.endsWith('.sql')).sort()) {
      hash.update(`\0${name}\0`);
      hash.update(await readFile(path.join(dir, name)));
    }
  }
  const template = path.join(ROOT, 'tests', '.tmp', `d1-template-${hash.digest('hex').slice(0, 16)}`);
  if (!(await readdir(template).catch(() => null))) {
    const building = await mkdtemp(path.join(ROOT, 'tests', '.tmp', 'd1-building-'));
    await wrangler(['d1', 'migrations', 'apply', 'DB', '--local', '--persist-to', building, '-c', configPath]);
    // Another process may have finished first: its template is as good as this one.
    await rename(building, template).catch(() => rm(building, { recursive: true, force: true }));
  }
  await cp(template, state, { recursive: true });
}

/**
 * Starts a worker. `vars` are merged over TEST_VARS (set a key to null to unset it).
 * `state` reuses another worker's storage directory (`worker.state`), to restart "the same
 * deployment"; its files are then left for the caller. `config` runs another wrangler config
 * (the benchmark baseline); `pollMs` is how often readiness is probed (the cold-start bench
 * probes often). `port` listens there instead of on a free port; `base` replaces TEST_VARS
 * under `vars` (`npm run demo` starts its worker with the developer's `.dev.vars`). Returns
 * helpers to call it, fire cron, query D1 and read its logs, and `spawnedAt`
 * (performance.now() when wrangler dev was spawned).
 */
export async function startWorker({ vars = {}, base = TEST_VARS, state: reuseState, config = path.join(ROOT, 'wrangler.toml'), pollMs = 250, port: fixedPort } = {}) {
  await mkdir(path.join(ROOT, 'tests', '.tmp'), { recursive: true });
  const dir = await mkdtemp(path.join(ROOT, 'tests', '.tmp', 'worker-'));
  const state = reuseState ?? path.join(dir, 'state');
  const merged = { ...base, ...vars };
  const configPath = await writeTestConfig(dir, merged, config);
  if (!reuseState) {
    await migratedState(state, configPath);
  } else if (!migratedStates.has(reuseState)) {
    // Someone's existing data (the demo's local data): bring it up to date in place.
    await wrangler(['d1', 'migrations', 'apply', 'DB', '--local', '--persist-to', state, '-c', configPath]);
  }

  const port = fixedPort ?? (await freePort());
  const inspectorPort = await freePort();
  const spawnedAt = performance.now();
  const child = spawn(
    process.execPath,
    [
      WRANGLER, 'dev', '-c', configPath, '--local', '--ip', '127.0.0.1', '--port', String(port),
      '--inspector-port', String(inspectorPort), '--persist-to', state, '--test-scheduled',
      '--show-interactive-dev-session=false',
    ],
    { cwd: dir, env: { ...process.env, CI: 'true', WRANGLER_SEND_METRICS: 'false' }, detached: true },
  );
  const output = [];
  const onData = (chunk) => output.push(...chunk.toString().split('\n').filter(Boolean));
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const exited = new Promise((resolve) => child.on('exit', resolve));

  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 90_000;
  for (;;) {
    if (child.exitCode !== null) {
      throw new Error(`wrangler dev exited early:\n${output.join('\n')}`);
    }
    try {
      const res = await fetch(`${url}/health`);
      await res.arrayBuffer();
      break;
    } catch {
      if (Date.now() > deadline) throw new Error(`worker did not start:\n${output.join('\n')}`);
      await new Promise((r) => setTimeout(r, pollMs));
    }
  }

  const worker = {
    url,
    port,
    /** wrangler's DevTools inspector proxy (Chrome DevTools Protocol) for the worker's isolate. */
    inspectorPort,
    spawnedAt,
    dir,
    state,
    /** Raw output lines of wrangler dev (includes the worker's console logs). */
    output,
    /** The worker's structured log lines (one JSON object each). */
    logs() {
      return output.flatMap((line) => {
        const start = line.indexOf('{');
        if (start < 0) return [];
        try {
          return [JSON.parse(line.slice(start))];
        } catch {
          return [];
        }
      });
    },
    fetch(pathname, init) {
      return fetch(`${url}${pathname}`, init);
    },
    /** An authenticated JSON API call; resolves to {status, headers, body}. */
    async api(method, pathname, body, { key = merged.ADMIN_API_KEY, headers = {} } = {}) {
      const res = await fetch(`${url}${pathname}`, {
        method,
        headers: {
          authorization: `Bearer ${key}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          ...headers,
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      let json = null;
      try {
        json = JSON.parse(text);
      } catch {
        json = null;
      }
      return { status: res.status, headers: res.headers, body: json, text };
    },
    /** Fires the cron handler once (wrangler's --test-scheduled endpoint). */
    async scheduled(cron = '* * * * *') {
      const res = await fetch(`${url}/__scheduled?cron=${encodeURIComponent(cron)}`);
      const text = await res.text();
      if (!res.ok) throw new Error(`scheduled failed: ${res.status} ${text}`);
      return text;
    },
    /** Runs SQL against the worker's local D1 and returns the rows. */
    async d1(sql) {
      // The running worker shares the SQLite file: a write of its own at that moment makes this
      // second process see SQLITE_BUSY, which only means "try again".
      for (let attempt = 1; ; attempt++) {
        try {
          const { stdout } = await wrangler([
            'd1', 'execute', 'DB', '--local', '--persist-to', state, '-c', configPath, '--json',
            '--command', sql,
          ]);
          const parsed = JSON.parse(stdout);
          return parsed.flatMap((r) => r.results ?? []);
        } catch (e) {
          // workerd names the lock on stderr and answers "internal error" on stdout.
          const said = `${e.stdout ?? ''}${e.stderr ?? ''}`;
          if (attempt >= 8 || !said.includes('SQLITE_BUSY')) throw e;
          await new Promise((resolve) => setTimeout(resolve, 200 * attempt));
        }
      }
    },
    async stop({ keepState = false } = {}) {
      if (child.exitCode === null) {
        try {
          process.kill(-child.pid, 'SIGTERM');
        } catch {
          child.kill('SIGTERM');
        }
        const timer = setTimeout(() => {
          try {
            process.kill(-child.pid, 'SIGKILL');
          } catch {
            /* already gone */
          }
        }, 5000);
        await exited;
        clearTimeout(timer);
      }
      if (!process.env.KEEP_TEST_STATE && !keepState) await rm(dir, { recursive: true, force: true });
    },
  };
  return worker;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** `promise`, or a rejection after `ms` (a socket that never closes must fail the test, not hang it). */
export const within = (promise, ms, what) => Promise.race([promise, sleep(ms).then(() => { throw new Error(`${what}: no result in ${ms} ms`); })]);

/** Polls `fn` until it returns a truthy value or the timeout passes. */
export async function eventually(fn, { timeout = 15_000, interval = 100, message = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${message}; last: ${last instanceof Error ? last.stack : JSON.stringify(last)}`);
    }
    await new Promise((r) => setTimeout(r, interval));
  }
}

/** `s` as an SQL string literal (NULL for null/undefined), for the tests' direct D1 queries. */
export const sqlText = (s) => (s == null ? 'NULL' : `'${String(s).replaceAll("'", "''")}'`);

/** Paths of the files below `dir` (recursively) whose names end with `suffix`, e.g. '.js'. */
export async function filesUnder(dir, suffix) {
  const files = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile() && entry.name.endsWith(suffix)) files.push(path.join(entry.parentPath ?? entry.path, entry.name));
  }
  return files;
}

/**
 * The signed query the worker puts in callback URLs it hands to carriers/providers
 * (`call_id=…&attempt=…&exp=…&sig=…`), computed independently of the worker: HMAC-SHA256 over
 * `<len(call_id)>:<call_id>:<attempt>:<exp>` keyed with CALLBACK_SIGNING_KEY, else with
 * HMAC-SHA256(ADMIN_API_KEY, "phone-agent callback url v1"). Lets a test act as a carrier
 * posting back to a URL the worker issued.
 */
export function signedCallbackQuery(callId, { attempt = 1, expires = Math.floor(Date.now() / 1000) + 3600, vars = TEST_VARS } = {}) {
  const key = vars.CALLBACK_SIGNING_KEY
    ? Buffer.from(vars.CALLBACK_SIGNING_KEY, 'utf8')
    : createHmac('sha256', vars.ADMIN_API_KEY).update('phone-agent callback url v1').digest();
  const sig = createHmac('sha256', key).update(`${callId.length}:${callId}:${attempt}:${expires}`).digest('base64url');
  return new URLSearchParams({ call_id: callId, attempt: String(attempt), exp: String(expires), sig }).toString();
}
