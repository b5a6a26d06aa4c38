// `npm run bench`: measures the release build in local workerd and prints a table; the full
// figures go to bench/results.json. Not part of `npm test` (figures, not pass/fail).
//
// Sections: webhook ingest vs a hand-written svix+D1 baseline worker; live calls (per-turn
// overhead, barge-in, CPU per frame in workerd, concurrent calls); CPU per media frame
// (native); wasm size and worker start.

import { execFile } from 'node:child_process';
import { writeFile, stat } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { performance } from 'node:perf_hooks';
import { startWorker, ROOT, TEST_VARS } from '../tests/harness.mjs';
import { signStandardWebhook, resendEvent } from '../tests/fakes/resend.mjs';
import { liveBench } from './live.mjs';

const execFileAsync = promisify(execFile);
const INGEST = [
  { concurrency: 1, count: 500 },
  { concurrency: 16, count: 2000 },
  { concurrency: 64, count: 2000 },
];

const quantile = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
const round = (x, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;

/** Fires `requests` at `url` with `concurrency` in flight; latency per request in ms. */
async function load(url, requests, concurrency) {
  let next = 0;
  let errors = 0;
  const latencies = [];
  const started = performance.now();
  async function lane() {
    for (;;) {
      const i = next++;
      if (i >= requests.length) return;
      const t0 = performance.now();
      try {
        const res = await fetch(url, { method: 'POST', headers: requests[i].headers, body: requests[i].body });
        await res.arrayBuffer();
        if (res.status !== 200) errors += 1;
      } catch {
        errors += 1;
      }
      latencies.push(performance.now() - t0);
    }
  }
  await Promise.all(Array.from({ length: concurrency }, lane));
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  return {
    requests: requests.length,
    concurrency,
    rps: round(requests.length / seconds),
    p50_ms: round(quantile(latencies, 0.5), 2),
    p99_ms: round(quantile(latencies, 0.99), 2),
    errors,
  };
}

/** Signed Resend (Svix scheme) webhooks, each a distinct event, signed before timing starts. */
function resendRequests(count, tag) {
  const now = Math.floor(Date.now() / 1000);
  return Array.from({ length: count }, (_, i) => {
    const body = JSON.stringify(resendEvent('email.delivered', { subject: `bench ${tag} ${i}` }));
    const headers = {
      'content-type': 'application/json',
      ...signStandardWebhook(TEST_VARS.RESEND_WEBHOOK_SECRET, `msg_bench_${tag}_${i}`, now, body),
    };
    return { body, headers };
  });
}

async function ingest() {
  const ours = await startWorker();
  const baseline = await startWorker({ config: path.join(ROOT, 'bench', 'baseline', 'wrangler.toml') });
  const rows = [];
  try {
    for (const { concurrency, count } of INGEST) {
      // Warm both up so the first row does not measure isolate start.
      await load(`${ours.url}/webhooks/resend`, resendRequests(20, `warm-o-${concurrency}`), 4);
      await load(`${baseline.url}/`, resendRequests(20, `warm-b-${concurrency}`), 4);
      const a = await load(`${ours.url}/webhooks/resend`, resendRequests(count, `o-${concurrency}`), concurrency);
      const b = await load(`${baseline.url}/`, resendRequests(count, `b-${concurrency}`), concurrency);
      rows.push({ concurrency, count, ours: a, baseline: b, rps_ratio: round(a.rps / b.rps, 2) });
    }
  } finally {
    await ours.stop();
    await baseline.stop();
  }
  return rows;
}

async function mediaFrameNative() {
  const { stdout } = await execFileAsync('cargo', ['run', '--quiet', '--release', '-p', 'phone-agent-core', '--example', 'media_frame'], {
    cwd: ROOT, maxBuffer: 16 * 1024 * 1024,
  });
  return JSON.parse(stdout.trim().split('\n').pop());
}

async function sizeAndStart() {
  const wasm = readFileSync(path.join(ROOT, 'build', 'index_bg.wasm'));
  const shim = await stat(path.join(ROOT, 'build', 'worker', 'shim.mjs'));
  // Start = spawn of wrangler dev until /health answers (includes wrangler's own start), then
  // the first request (instantiates the Wasm module) against the median of warm requests.
  const t0 = performance.now();
  const worker = await startWorker();
  const ready = performance.now() - t0;
  try {
    const restarted = await startWorker({ state: worker.state });
    const t1 = performance.now();
    const first = await restarted.fetch('/health');
    await first.arrayBuffer();
    const firstMs = performance.now() - t1;
    const warm = [];
    for (let i = 0; i < 50; i++) {
      const t = performance.now();
      await (await restarted.fetch('/health')).arrayBuffer();
      warm.push(performance.now() - t);
    }
    warm.sort((a, b) => a - b);
    await restarted.stop({ keepState: true });
    return {
      wasm_raw_bytes: wasm.length,
      wasm_gzip_bytes: gzipSync(wasm, { level: 9 }).length,
      shim_bytes: shim.size,
      wrangler_dev_ready_ms: round(ready),
      first_request_ms: round(firstMs, 2),
      warm_health_p50_ms: round(quantile(warm, 0.5), 2),
    };
  } finally {
    await worker.stop();
  }
}

function table(results) {
  const lines = [];
  if (results.ingest) {
  lines.push('Webhook ingest (signed Resend → verify + dedupe + persist + ack), ours vs svix+D1 baseline');
  lines.push('conc  count   ours rps  p50 ms  p99 ms  err | base rps  p50 ms  p99 ms  err | ratio');
  for (const r of results.ingest) {
    const f = (x) => `${String(x.rps).padStart(8)}  ${String(x.p50_ms).padStart(6)}  ${String(x.p99_ms).padStart(6)}  ${String(x.errors).padStart(3)}`;
    lines.push(`${String(r.concurrency).padStart(4)}  ${String(r.count).padStart(5)}  ${f(r.ours)} | ${f(r.baseline)} | ${r.rps_ratio}`);
  }
  }
  const l = results.live;
  if (l) {
  lines.push('');
  lines.push('Live calls (instant fake providers; Twilio Media Streams client)');
  lines.push(`  end of utterance → first outbound frame: p50 ${l.per_turn.p50_ms} ms, p99 ${l.per_turn.p99_ms} ms over ${l.per_turn.n} turns (worker-measured p50 ${l.per_turn.worker_first_audio.p50_ms} ms)`);
  lines.push(`  barge-in transcript → clear: p50 ${l.barge_in_to_clear.p50_ms} ms, p99 ${l.barge_in_to_clear.p99_ms} ms over ${l.barge_in_to_clear.n}`);
  lines.push(`  workerd CPU per inbound 20 ms frame (${l.cpu_per_inbound_frame_in_worker.calls} streaming calls): ${l.cpu_per_inbound_frame_in_worker.cpu_us_per_inbound_frame} µs`);
  lines.push('  calls started  first frame p50/p99 ms  frames/expected  late  gap p99 ms  CPU µs/frame  workerd MiB');
  for (const c of l.concurrent) {
    lines.push(`  ${String(c.calls).padStart(5)} ${String(c.started).padStart(7)}  ${`${c.first_frame.p50_ms}/${c.first_frame.p99_ms}`.padStart(20)}  ${`${c.outbound_frames}/${c.expected_frames}`.padStart(15)}  ${String(c.late_frames).padStart(4)}  ${String(c.frame_gap_p99_ms).padStart(10)}  ${String(c.cpu_us_per_inbound_frame).padStart(12)}  ${String(c.workerd_rss_mib).padStart(11)}`);
  }
  }
  const m = results.media_frame_native;
  if (m) {
  lines.push('');
  lines.push('CPU per 20 ms media frame (native, release)');
  lines.push(`  Twilio JSON parse + base64 + forward : ${round(m.twilio_parse_base64_forward_ns)} ns  (${round(m.ratio_parse_vs_memcpy)}x a 160-byte memcpy of ${round(m.memcpy_160_ns, 2)} ns)`);
  lines.push(`  24 kHz PCM → resample → μ-law        : ${round(m.pcm24k_resample_to_mulaw_ns)} ns  (${round(m.ratio_resample_vs_memcpy)}x a 960-byte memcpy of ${round(m.memcpy_960_ns, 2)} ns)`);
  lines.push(`  μ-law → 8 kHz PCM                    : ${round(m.mulaw_to_pcm8k_ns)} ns`);
  }
  const s = results.size_and_start;
  if (s) {
  lines.push('');
  lines.push('Size and start');
  lines.push(`  wasm ${round(s.wasm_raw_bytes / 1024)} KiB raw, ${round(s.wasm_gzip_bytes / 1024)} KiB gzip; wrangler dev ready in ${s.wrangler_dev_ready_ms} ms;`);
  lines.push(`  first request after start ${s.first_request_ms} ms (Wasm instantiation included), warm /health p50 ${s.warm_health_p50_ms} ms`);
  }
  return lines.join('\n');
}

// `node bench/run.mjs ingest live` runs only those sections; no argument runs them all.
const only = process.argv.slice(2);
const wanted = (name) => only.length === 0 || only.includes(name);
const results = {
  machine: { cpus: os.cpus().length, cpu_model: os.cpus()[0]?.model, memory_gib: round(os.totalmem() / 2 ** 30), node: process.version },
  at: new Date().toISOString(),
  ingest: wanted('ingest') ? await ingest() : undefined,
  live: wanted('live') ? await liveBench() : undefined,
  media_frame_native: wanted('native') ? await mediaFrameNative() : undefined,
  size_and_start: wanted('size') ? await sizeAndStart() : undefined,
};
await writeFile(path.join(ROOT, 'bench', only.length ? `results-${only.join('-')}.json` : 'results.json'), JSON.stringify(results, null, 2) + '\n');
console.log(table(results));
