#!/usr/bin/env node
// CPU profile of the worker's isolate inside workerd (`npm run profile`), over the Chrome
// DevTools Protocol: builds a release wasm that keeps its name section (wasm functions show
// their Rust names), runs it with `wrangler dev` on the live-call fakes, drives a scenario with
// the bench's Twilio client, and writes the V8 `.cpuprofile` (open it in Chrome DevTools →
// Performance, or speedscope) plus a table: self and inclusive time per function, and the split
// JS glue / wasm / workerd internals / idle.
//
//   node bench/profile.mjs [frames|turns|ingest] [--calls 50] [--seconds 10] [--turns 100]
//                          [--requests 1000] [--concurrency 16]
//                          [--interval-us 200] [--top 25] [--no-build] [--out bench/out]
//   node bench/profile.mjs --analyse bench/out/profile-….cpuprofile   (the table again)
//
// Scenarios: `frames`: N calls stream silence in real time (the per-frame hot path); `turns`:
// one call, many turns with a barge-in each (bench/live.mjs `conversation`); `ingest`: signed
// Resend webhooks with N in flight (the bench's webhook-ingest load, bench/ingest.mjs).

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { parse as parseToml, stringify as stringifyToml } from 'smol-toml';
import WebSocket from 'ws';
import { ROOT, eventually, sleep, within } from '../tests/harness.mjs';
import { startLiveWorker, startTwilioCall } from '../tests/live-setup.mjs';
import {
  callOurs, conversation, fakeOptions, hangUp, provision, workerdOf, workerdUsage, PROFILES, NUMBER,
} from './live.mjs';
import { load, resendRequests } from './ingest.mjs';

const USAGE = `usage: node bench/profile.mjs [frames|turns|ingest] [--calls N] [--seconds S] [--turns N]
  [--requests N] [--concurrency N]
  [--interval-us US] [--top N] [--no-build] [--out DIR]
       node bench/profile.mjs --analyse FILE.cpuprofile [--top N]`;

const progress = (msg) => process.stderr.write(`[profile] ${msg}\n`);
const round = (x, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;

// ---------------------------------------------------------------------------------------------
// The profiling build: release, with the name section, into its own directory (build/ and the
// release target dir stay as they are).

const PROFILE_BUILD = 'bench/out/build-profile';

function newestSource() {
  let newest = 0;
  const walk = (p) => {
    const st = statSync(p);
    if (st.isDirectory()) {
      for (const e of readdirSync(p)) if (e !== 'target') walk(path.join(p, e));
    } else newest = Math.max(newest, st.mtimeMs);
  };
  for (const p of ['src', 'crates', 'Cargo.toml', 'Cargo.lock']) walk(path.join(ROOT, p));
  return newest;
}

function buildProfileWasm() {
  const wasm = path.join(ROOT, PROFILE_BUILD, 'index_bg.wasm');
  if (existsSync(wasm) && statSync(wasm).mtimeMs > newestSource()) {
    progress(`${PROFILE_BUILD} is up to date`);
    return;
  }
  progress(`building the release wasm with its name section into ${PROFILE_BUILD} (target/profile)`);
  const env = {
    ...process.env,
    PATH: `${process.env.HOME}/.cargo/bin:${process.env.PATH}`,
    // A target dir of its own: a different strip setting would otherwise rebuild the normal
    // release artifacts both ways every time.
    CARGO_TARGET_DIR: path.join(ROOT, 'target', 'profile'),
    CARGO_PROFILE_RELEASE_STRIP: 'none',
    WASM_BINDGEN_BIN: 'wasm-bindgen',
    WASM_OPT_BIN: './node_modules/.bin/wasm-opt',
  };
  // --no-opt: the release build skips wasm-opt too (bench/README.md "Wasm size").
  const r = spawnSync('worker-build', ['--release', '--no-opt', '--out-dir', PROFILE_BUILD], { cwd: ROOT, env, stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`worker-build failed (${r.status ?? r.signal})`);
}

/** wrangler.toml with `main` on the profiling build; resolves paths from bench/out. */
function profileConfig() {
  const config = parseToml(readFileSync(path.join(ROOT, 'wrangler.toml'), 'utf8'));
  const dir = path.join(ROOT, 'bench', 'out');
  const rel = (p) => path.relative(dir, path.join(ROOT, p));
  delete config.build;
  config.main = rel(path.join(PROFILE_BUILD, 'worker', 'shim.mjs'));
  if (config.assets) config.assets.directory = rel(config.assets.directory);
  for (const db of config.d1_databases ?? []) db.migrations_dir = rel(db.migrations_dir);
  const file = path.join(dir, 'wrangler.profile.toml');
  writeFileSync(file, stringifyToml(config));
  return file;
}

// ---------------------------------------------------------------------------------------------
// Chrome DevTools Protocol over wrangler's inspector proxy.

async function devtools(port) {
  const targets = await eventually(async () => {
    const list = await (await fetch(`http://127.0.0.1:${port}/json`)).json();
    return list.length ? list : null;
  }, { timeout: 20_000, interval: 200, message: 'inspector targets' });
  const target = targets.find((t) => /phone-agent/.test(`${t.title} ${t.url}`)) ?? targets[0];
  const ws = new WebSocket(target.webSocketDebuggerUrl, { maxPayload: 1 << 30 });
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  let next = 0;
  const pending = new Map();
  ws.on('message', (data) => {
    const msg = JSON.parse(data.toString());
    const waiter = msg.id !== undefined && pending.get(msg.id);
    if (!waiter) return;
    pending.delete(msg.id);
    if (msg.error) waiter.reject(new Error(`${waiter.method}: ${JSON.stringify(msg.error)}`));
    else waiter.resolve(msg.result);
  });
  return {
    target,
    send(method, params = {}) {
      next += 1;
      const id = next;
      ws.send(JSON.stringify({ id, method, params }));
      return within(new Promise((resolve, reject) => pending.set(id, { resolve, reject, method })), 120_000, method);
    },
    close: () => ws.close(),
  };
}

// ---------------------------------------------------------------------------------------------
// Reading a .cpuprofile.

const ESCAPES = { LT: '<', GT: '>', RF: '&', BP: '*', SP: '@', C: ',' };

/** A Rust legacy-mangled symbol (`_ZN…17h<hash>E`, as the name section keeps it) in source form. */
export function demangle(name) {
  const s = name.replace(/^\$/, '');
  if (!s.startsWith('_ZN')) return name;
  const parts = [];
  let i = 3;
  while (i < s.length && s[i] !== 'E') {
    const m = /^\d+/.exec(s.slice(i));
    if (!m) return name;
    i += m[0].length;
    parts.push(s.slice(i, i + Number(m[0])));
    i += Number(m[0]);
  }
  if (parts.length > 1 && /^h[0-9a-f]{16}$/.test(parts.at(-1))) parts.pop();
  const decode = (p) => (p.startsWith('_$') ? p.slice(1) : p)
    .replace(/\$(LT|GT|RF|BP|SP|C)\$/g, (_, k) => ESCAPES[k])
    .replace(/\$u([0-9a-f]{2})\$/g, (_, h) => String.fromCharCode(parseInt(h, 16)))
    .replaceAll('..', '::');
  return parts.map(decode).join('::');
}

/**
 * Scripts of the worker's own JavaScript: wrangler bundles worker-build's shim and wasm-bindgen
 * glue into one `shim.js`; frames without a URL are V8 builtins and workerd's API.
 */
const GLUE_URLS = ['shim.js', 'index.js', 'shim.mjs'];

/** Which part of the isolate a frame belongs to. */
function category(frame, glueUrls) {
  const { functionName: fn, url } = frame;
  if (fn === '(idle)') return 'idle';
  if (fn === '(garbage collector)') return 'gc';
  if (fn === '(program)' || fn === '(root)') return 'workerd';
  if (url.startsWith('wasm://')) return 'wasm';
  if (glueUrls.some((g) => url.endsWith(g))) return 'glue';
  return 'workerd';
}

function label(frame, cat, sources) {
  const fn = cat === 'wasm' ? demangle(frame.functionName) : frame.functionName || '(anonymous)';
  if (cat === 'wasm' || !frame.url) return fn;
  // The bundle's own text at that spot: anonymous glue functions are only known by it.
  const lines = sources?.get(frame.scriptId);
  const body = lines?.slice(frame.lineNumber, frame.lineNumber + 4).map((l, i) => (i ? l : l.slice(frame.columnNumber)).trim()).join(' ');
  const text = body ? ` «${body.replace(/\s+/g, ' ').slice(0, 110)}»` : '';
  return `${fn} ${frame.url.split('/').slice(-2).join('/')}:${frame.lineNumber + 1}${text}`;
}

/**
 * Self and inclusive time per function (µs), the split by category, and per wasm crate. Each
 * sample lasts until the next one; inclusive time counts a function once per sample however
 * often it recurses.
 */
export function analyse(profile, { glueUrls = GLUE_URLS, sources } = {}) {
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const info = new Map();
  for (const n of profile.nodes) {
    const cat = category(n.callFrame, glueUrls);
    info.set(n.id, { cat, label: label(n.callFrame, cat, sources) });
  }
  const self = new Map();
  const inclusive = new Map();
  const split = { glue: 0, wasm: 0, workerd: 0, gc: 0, idle: 0 };
  const crates = new Map();
  const { samples, timeDeltas } = profile;
  const mean = (profile.endTime - profile.startTime) / Math.max(1, samples.length);
  for (let i = 0; i < samples.length; i++) {
    const dt = i + 1 < timeDeltas.length ? timeDeltas[i + 1] : mean;
    const leaf = info.get(samples[i]);
    split[leaf.cat] += dt;
    if (leaf.cat === 'idle') continue;
    self.set(leaf.label, (self.get(leaf.label) ?? 0) + dt);
    if (leaf.cat === 'wasm') {
      const crate = leaf.label.replace(/^<+/, '').split(/::| as /)[0];
      crates.set(crate, (crates.get(crate) ?? 0) + dt);
    }
    const seen = new Set();
    for (let id = samples[i]; id !== undefined; id = parent.get(id)) {
      const { label: l, cat } = info.get(id);
      if (cat === 'idle' || seen.has(l) || nodes.get(id).callFrame.functionName === '(root)') continue;
      seen.add(l);
      inclusive.set(l, (inclusive.get(l) ?? 0) + dt);
    }
  }
  const busy = split.glue + split.wasm + split.workerd + split.gc;
  return { self, inclusive, split, busy, total: busy + split.idle, crates, categories: info };
}

function table(title, map, busy, top, cats) {
  const rows = [...map.entries()].sort((a, b) => b[1] - a[1]).slice(0, top);
  const lines = [title];
  for (const [name, us] of rows) {
    const cat = cats?.get(name) ?? '';
    const shown = name.length > 150 ? `${name.slice(0, 147)}...` : name;
    lines.push(`  ${String(round(us / 1000, 1)).padStart(9)} ms ${String(round((100 * us) / busy, 1)).padStart(5)} %  ${cat.padEnd(7)} ${shown}`);
  }
  return lines.join('\n');
}

/** The printed report of `analyse`'s result; `perFrame`: divide busy time by that many frames. */
export function report(result, { top = 25, frames } = {}) {
  const { split, busy, total } = result;
  const catOf = new Map([...result.categories.values()].map((v) => [v.label, v.cat]));
  const pct = (us) => `${round((100 * us) / total, 1)} %`;
  const ms = (us) => `${round(us / 1000, 1)} ms`;
  const lines = [
    `profile: ${ms(total)} sampled, busy ${ms(busy)} (${pct(busy)})`,
    `  split: JS glue ${ms(split.glue)} (${pct(split.glue)}) | wasm ${ms(split.wasm)} (${pct(split.wasm)}) | workerd internals ${ms(split.workerd)} (${pct(split.workerd)}) + GC ${ms(split.gc)} (${pct(split.gc)}) | idle ${ms(split.idle)} (${pct(split.idle)})`,
  ];
  if (frames) {
    const per = (us) => round(us / frames, 2);
    lines.push(`  per inbound frame (${frames} frames): busy ${per(busy)} µs = glue ${per(split.glue)} + wasm ${per(split.wasm)} + workerd ${per(split.workerd)} + GC ${per(split.gc)}`);
  }
  lines.push(table(`top ${top} by self time (ms, % of busy)`, result.self, busy, top, catOf));
  lines.push(table(`top ${top} by inclusive time`, result.inclusive, busy, top, catOf));
  lines.push(table('wasm self time by crate', result.crates, busy, 12));
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------
// Scenarios.

const framesSent = (calls) => calls.reduce((sum, c) => sum + c.client.chunk, 0);

async function runFrames(live, dt, { calls: n, seconds }) {
  const calls = [];
  try {
    progress(`frames: setting up ${n} calls (one at a time; STT sockets match calls by order)`);
    const started = performance.now();
    let failed = 0;
    for (let i = 0; i < n; i++) {
      const call = startTwilioCall(live, { to: NUMBER });
      try {
        calls.push(await within(call, 15_000, 'call setup'));
      } catch (e) {
        // A call that comes up late still streams: hang it up with the others.
        call.then((c) => calls.push(c), () => {});
        failed += 1;
        progress(`frames: call ${i + 1}: ${e.message}`);
      }
    }
    await eventually(() => calls.every((c) => c.playback.echoed('t0-s0')), { timeout: 60_000, interval: 50, message: 'greetings' }).catch(() => progress('frames: not every greeting played'));
    progress(`frames: ${calls.length} calls up (${failed} failed to start in time) in ${round((performance.now() - started) / 1000)} s; settling`);
    await sleep(2000);
    return await window(live, dt, seconds, () => framesSent(calls));
  } finally {
    for (const c of calls) c.stopAudio();
    await Promise.all(calls.map(hangUp));
  }
}

async function runTurns(live, dt, { turns }) {
  const call = await callOurs(live);
  try {
    let figures;
    const measured = await window(live, dt, null, () => 0, async () => {
      figures = await conversation(live, call, turns, 'profile');
    });
    return { ...measured, turns: figures };
  } finally {
    await hangUp(call);
  }
}

async function runIngest(live, dt, { requests, concurrency }) {
  const url = `${live.worker.url}/webhooks/resend`;
  // Warm: the isolate, the D1 statements, the first delivery path.
  await load(url, resendRequests(50, `profile-warm-${Date.now()}`), 4);
  const signed = resendRequests(requests, `profile-${Date.now()}`);
  let figures;
  const measured = await window(live, dt, null, () => 0, async () => {
    figures = await load(url, signed, concurrency);
  });
  return { ...measured, requests, ingest: figures };
}

/**
 * Profiles the isolate for `seconds` (or while `during` runs); beside it, CPU from /proc of
 * the worker's workerd processes (wrangler's proxy included) and of this Node process (the
 * Twilio clients and the provider fakes).
 */
async function window(live, dt, seconds, frames, during) {
  const pids = (workerdOf(live.worker)?.all ?? []).map((p) => p.pid);
  await dt.send('Profiler.start');
  const f0 = frames();
  const u0 = workerdUsage(pids);
  const perPid0 = pids.map((p) => workerdUsage([p]).cpuMs);
  const n0 = process.cpuUsage();
  const t0 = performance.now();
  if (during) await during();
  else await sleep(seconds * 1000);
  const wall = performance.now() - t0;
  const node = process.cpuUsage(n0);
  const u1 = workerdUsage(pids);
  const perPid = pids.map((p, i) => workerdUsage([p]).cpuMs - perPid0[i]);
  const sent = frames() - f0;
  const { profile } = await dt.send('Profiler.stop');
  // The bundle's text, to name anonymous glue functions (after the window: no debugger in it).
  const sources = new Map();
  await dt.send('Debugger.enable');
  for (const id of new Set(profile.nodes.filter((n) => GLUE_URLS.some((g) => n.callFrame.url.endsWith(g))).map((n) => n.callFrame.scriptId))) {
    sources.set(id, (await dt.send('Debugger.getScriptSource', { scriptId: id })).scriptSource.split('\n'));
  }
  await dt.send('Debugger.disable');
  return {
    profile,
    sources,
    wall_ms: round(wall),
    frames: sent,
    workerd_cpu_ms: round(u1.cpuMs - u0.cpuMs),
    workerd_cpu_ms_per_process: Object.fromEntries(pids.map((p, i) => [p, round(perPid[i])])),
    node_cpu_ms: round((node.user + node.system) / 1000),
  };
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      calls: { type: 'string', default: '50' },
      seconds: { type: 'string', default: '10' },
      turns: { type: 'string', default: '100' },
      requests: { type: 'string', default: '1000' },
      concurrency: { type: 'string', default: '16' },
      'interval-us': { type: 'string', default: '200' },
      top: { type: 'string', default: '25' },
      'no-build': { type: 'boolean', default: false },
      out: { type: 'string', default: 'bench/out' },
      analyse: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.analyse) {
    // Re-reads a written profile (and the bundle text saved beside it).
    const file = path.resolve(values.analyse);
    const sourcesFile = file.replace(/\.cpuprofile$/, '.sources.json');
    const sources = existsSync(sourcesFile) ? new Map(Object.entries(JSON.parse(readFileSync(sourcesFile, 'utf8')))) : undefined;
    console.log(report(analyse(JSON.parse(readFileSync(file, 'utf8')), { sources }), { top: Number(values.top) }));
    return;
  }
  const scenario = positionals[0] ?? 'frames';
  if (values.help || !['frames', 'turns', 'ingest'].includes(scenario)) {
    console.log(USAGE);
    process.exit(values.help ? 0 : 2);
  }
  if (!values['no-build']) buildProfileWasm();
  const config = profileConfig();
  const outDir = path.resolve(ROOT, values.out);
  mkdirSync(outDir, { recursive: true });

  const live = await startLiveWorker({ ...fakeOptions(PROFILES.instant), vars: { API_RATE_LIMIT_PER_MINUTE: '0' }, config });
  let dt;
  try {
    await provision(live);
    dt = await devtools(live.worker.inspectorPort);
    progress(`inspector: ${dt.target.title ?? dt.target.url}`);
    await dt.send('Profiler.enable');
    await dt.send('Profiler.setSamplingInterval', { interval: Number(values['interval-us']) });
    const options = {
      calls: Number(values.calls), seconds: Number(values.seconds), turns: Number(values.turns),
      requests: Number(values.requests), concurrency: Number(values.concurrency),
    };
    const runs = { frames: runFrames, turns: runTurns, ingest: runIngest };
    const run = await runs[scenario](live, dt, options);
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    const base = path.join(outDir, `profile-${scenario}-${stamp}`);
    writeFileSync(`${base}.cpuprofile`, JSON.stringify(run.profile));
    writeFileSync(`${base}.sources.json`, JSON.stringify(Object.fromEntries(run.sources)));
    const result = analyse(run.profile, { sources: run.sources });
    const head = [
      `scenario ${scenario} ${JSON.stringify(options)}; ${run.wall_ms} ms wall`,
      `CPU from /proc over the window: workerd ${run.workerd_cpu_ms} ms (per process ${JSON.stringify(run.workerd_cpu_ms_per_process)}), ` +
        `this Node process (Twilio clients + provider fakes) ${run.node_cpu_ms} ms`,
    ];
    if (run.frames) {
      head.push(`inbound frames sent ${run.frames}: workerd (both processes) ${round((run.workerd_cpu_ms * 1000) / run.frames, 1)} µs/frame`);
    }
    if (run.turns) head.push(`turns: ${JSON.stringify(run.turns)}`);
    if (run.ingest) {
      head.push(`webhooks ${run.requests}: workerd (both processes) ${round((run.workerd_cpu_ms * 1000) / run.requests, 1)} µs/request; ${JSON.stringify(run.ingest)}`);
    }
    const text = `${head.join('\n')}\n${report(result, { top: Number(values.top), frames: run.frames || undefined })}\n`;
    writeFileSync(`${base}.txt`, text);
    console.log(text);
    progress(`wrote ${path.relative(ROOT, base)}.cpuprofile and .txt`);
  } finally {
    dt?.close();
    await live.stop();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
