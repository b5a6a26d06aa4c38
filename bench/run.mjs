// `npm run bench`: measures the release build in local workerd and prints a table; the full
// figures go to bench/results.json. Not part of `npm test` (figures, not pass/fail).
//
// Sections: webhook ingest vs a hand-written svix+D1 baseline worker; live calls (per-turn
// overhead, LLM → TTS, barge-in and their flatness over a 200-turn call, through wrangler's
// proxy and straight to workerd, beside Pipecat's Twilio example; voice-to-voice per provider
// latency profile; CPU per frame in workerd; concurrent calls); CPU per media frame (native);
// wasm size, worker start and cold first webhook.
//
// `node bench/run.mjs [--no-pipecat] [section…]`: sections are ingest, live, native, size, campaigns, and
// `concurrent` (only the live section's concurrent calls; `--calls=50,100,200`).

import { execFile } from 'node:child_process';
import { writeFile, stat } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { performance } from 'node:perf_hooks';
import { startWorker, ROOT, TEST_VARS } from '../tests/harness.mjs';
import { concurrentBench, liveBench } from './live.mjs';
import { load, resendRequests } from './ingest.mjs';
import { ensurePipecat } from './pipecat.mjs';
import { campaignBenches, campaignLines } from './campaigns.mjs';

const execFileAsync = promisify(execFile);
const INGEST = [
  { concurrency: 1, count: 500 },
  { concurrency: 16, count: 2000 },
  { concurrency: 64, count: 2000 },
];

const quantile = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
const round = (x, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;

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
      rows.push({ concurrency, count, ours: a, baseline: b, rps_ratio: round(a.ok_rps / b.ok_rps, 2) });
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
  const worker = await startWorker({ pollMs: 20 });
  const ready = performance.now() - t0;
  try {
    // Cold start: spawn of a fresh `wrangler dev` (empty state, migrations applied before) until
    // the first signed webhook is answered; readiness is probed every 20 ms on /health.
    const [cold, ...warmHooks] = resendRequests(21, 'cold');
    const post = async (r) => {
      const t = performance.now();
      const res = await fetch(`${worker.url}/webhooks/resend`, { method: 'POST', headers: r.headers, body: r.body });
      await res.arrayBuffer();
      return { ms: performance.now() - t, status: res.status };
    };
    const first = await post(cold);
    const spawnToWebhook = performance.now() - worker.spawnedAt;
    const warmWebhook = [];
    for (const r of warmHooks) warmWebhook.push((await post(r)).ms);
    warmWebhook.sort((a, b) => a - b);
    const restarted = await startWorker({ state: worker.state });
    const t1 = performance.now();
    await (await restarted.fetch('/health')).arrayBuffer();
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
      spawn_to_first_webhook_ms: round(spawnToWebhook),
      first_webhook_ms: round(first.ms, 2),
      first_webhook_status: first.status,
      warm_webhook_p50_ms: round(quantile(warmWebhook, 0.5), 2),
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
  lines.push('conc  count   ours rps  p50 ms  p99 ms  err | base rps  p50 ms  p99 ms  err | ratio (200s per second)');
  for (const r of results.ingest) {
    const f = (x) => `${String(x.ok_rps).padStart(8)}  ${String(x.p50_ms).padStart(6)}  ${String(x.p99_ms).padStart(6)}  ${String(x.errors).padStart(3)}`;
    lines.push(`${String(r.concurrency).padStart(4)}  ${String(r.count).padStart(5)}  ${f(r.ours)} | ${f(r.baseline)} | ${r.rps_ratio}`);
  }
  const failed = results.ingest.flatMap((r) => [['ours', r.ours], ['baseline', r.baseline]].filter(([, x]) => x.errors).map(([who, x]) => `${who} at ${r.concurrency}: ${JSON.stringify(x.error_statuses)}`));
  if (failed.length) lines.push(`  errors by status: ${failed.join('; ')}`);
  }
  const l = results.live;
  if (l) {
  const sc = l.single_call;
  const pct = (x, ref) => (typeof x === 'number' && typeof ref === 'number' && ref > 0 ? `${round(x / ref, 2)}x` : '-');
  const cell = (x) => (x === undefined || x === null ? '-' : String(x));
  lines.push('');
  lines.push(`Live calls: one call, ${sc.ours?.per_turn.n ?? '?'} turns, a barge-in each (instant fake providers; Twilio Media Streams client). ms; ratio = row / Pipecat`);
  lines.push('server                     turn p50   p99 | LLM→TTS p50 | barge-in→clear p50   p99 | ratio turn p50 / barge p99');
  const pc = sc.pipecat && !sc.pipecat.skipped ? sc.pipecat : null;
  const row = (name, r) => {
    if (!r || r.skipped) {
      lines.push(`${name.padEnd(25)}  skipped: ${r?.skipped ?? 'not run'}`);
      return;
    }
    lines.push(`${name.padEnd(25)} ${cell(r.per_turn.p50_ms).padStart(9)} ${cell(r.per_turn.p99_ms).padStart(5)} | ${cell(r.llm_to_tts.p50_ms).padStart(11)} | ${cell(r.barge_in_to_clear.p50_ms).padStart(18)} ${cell(r.barge_in_to_clear.p99_ms).padStart(5)} | ${pct(r.per_turn.p50_ms, pc?.per_turn.p50_ms)} / ${pct(r.barge_in_to_clear.p99_ms, pc?.barge_in_to_clear.p99_ms)}`);
  };
  row('ours (wrangler proxy)', sc.ours);
  row(`ours (workerd direct${sc.ours_direct?.per_turn ? `, ${sc.ours_direct.per_turn.n} t` : ''})`, sc.ours_direct);
  row(`Pipecat ${results.pipecat?.version ?? ''}`.trim(), sc.pipecat ?? { skipped: results.pipecat?.skipped });
  lines.push('  targets: turn p50 ≤ 5, p99 ≤ 10; barge-in p99 ≤ 2');
  if (pc?.checks) {
    const k = pc.checks;
    lines.push(`  Pipecat on the fakes: ${k.stt_audio_bytes} bytes of caller audio (${k.stt_encoding}) at the fake Deepgram; ${k.llm_requests_ending_with_a_transcript}/${k.llm_requests} LLM requests end with the transcript sent; ${k.tts_requests} fake ElevenLabs requests`);
  }
  if (sc.ours && sc.ours_direct?.per_turn) {
    lines.push(`  wrangler's proxy adds: turn p50 ${round(sc.ours.per_turn.p50_ms - sc.ours_direct.per_turn.p50_ms, 2)} ms, barge-in p50 ${round(sc.ours.barge_in_to_clear.p50_ms - sc.ours_direct.barge_in_to_clear.p50_ms, 2)} ms (workerd direct at ${sc.ours_direct.url})`);
  }
  if (sc.ours) lines.push(`  worker-measured first_audio_ms p50 ${sc.ours.worker_first_audio.p50_ms} (ours, via proxy)`);
  lines.push('Flatness over the call: first fifth → last fifth (p50 / p99 ms), within ±20 %?');
  for (const [name, r] of [['ours (wrangler proxy)', sc.ours], ['ours (workerd direct)', sc.ours_direct], ['Pipecat', pc]]) {
    if (!r?.per_turn?.flatness) continue;
    const f = (x) => `${x.first.p50_ms}/${x.first.p99_ms} → ${x.last.p50_ms}/${x.last.p99_ms} (${x.p50_ratio}x/${x.p99_ratio}x ${x.flat ? 'flat' : 'NOT flat'})`;
    lines.push(`  ${name.padEnd(22)} turn ${f(r.per_turn.flatness)}; barge-in ${f(r.barge_in_to_clear.flatness)}`);
  }
  const v = l.voice_to_voice;
  if (v) {
    lines.push('End of caller speech → first agent audio at the client (ms), per provider latency profile');
    lines.push('profile     floor (STT+TTFT+TTFB) |   ours p50   p99 | Pipecat p50   p99 | ours/Pipecat p50 | ours − floor p50');
    for (const [name, p] of Object.entries(v)) {
      const ours = p.ours ?? {};
      const pip = p.pipecat ?? {};
      lines.push(`${name.padEnd(11)} ${String(p.floor_ms).padStart(21)} | ${cell(ours.p50_ms).padStart(10)} ${cell(ours.p99_ms).padStart(5)} | ${cell(pip.p50_ms).padStart(11)} ${cell(pip.p99_ms).padStart(5)} | ${pct(ours.p50_ms, pip.p50_ms).padStart(16)} | ${typeof ours.p50_ms === 'number' ? round(ours.p50_ms - p.floor_ms, 1) : '-'}`);
    }
    if (v.realistic?.profile) {
      const p = v.realistic.profile;
      lines.push(`  realistic = STT final ${p.sttFinalMs} ms after speech, LLM first token ${p.llmFirstTokenMs} ms + ${p.llmTokensPerSecond} tokens/s, TTS first byte ${p.ttsFirstByteMs} ms + real-time audio`);
    }
    const flux = v.realistic?.flux;
    if (flux?.preemptive && flux?.off) {
      const p = v.realistic.profile;
      const pf = v.realistic.pipecat_flux;
      const llm = p.llmFirstTokenMs + p.ttsFirstByteMs;
      lines.push('  (the Pipecat column above runs Deepgram Nova; like for like on Flux:)');
      lines.push(`  Deepgram Flux, same fakes and turns (EagerEndOfTurn ${p.fluxEagerMs} ms, EndOfTurn ${p.fluxEndOfTurnMs} ms after speech; every 3rd turn resumed); floor from EagerEndOfTurn ${p.fluxEagerMs + llm}, from EndOfTurn ${p.fluxEndOfTurnMs + llm}`);
      lines.push('  server                                  p50     p99 | early LLM requests used/wasted | agent frames in caller turn | ours/Pipecat p50');
      const saved = (a, b) => (typeof a?.p50_ms === 'number' && typeof b?.p50_ms === 'number' ? round(b.p50_ms - a.p50_ms, 1) : '-');
      const frow = (name, r, ref, extra = '') => {
        if (!r) return;
        const early = `${cell(r.early_used)}/${cell(r.early_wasted)}${extra}`;
        lines.push(`  ${name.padEnd(34)} ${cell(r.p50_ms).padStart(8)} ${cell(r.p99_ms).padStart(7)} | ${early.padStart(30)} | ${cell(r.agent_frames_during_caller_turn).padStart(26)} | ${ref ? pct(r.p50_ms, ref.p50_ms).padStart(16) : ''}`);
      };
      const session = (r) => (r.preemptive_used === undefined ? '' : ` (session ${r.preemptive_used}/${r.preemptive_wasted})`);
      frow('ours, preemptive', flux.preemptive, pf?.preemptive, session(flux.preemptive));
      frow('Pipecat, eager end of turn', pf?.preemptive);
      frow('ours, not preemptive', flux.off, pf?.off, session(flux.off));
      frow('Pipecat, Flux default (not eager)', pf?.off);
      if (!pf) lines.push(`  Pipecat on Flux: ${results.pipecat?.skipped ? `skipped: ${results.pipecat.skipped}` : 'not run'}`);
      lines.push(`  saved by starting early, p50: ours ${saved(flux.preemptive, flux.off)} ms${pf ? `, Pipecat ${saved(pf.preemptive, pf.off)} ms` : ''}; ours preemptive − Pipecat eager p50: ${pf ? saved(pf.preemptive, flux.preemptive) : "-"} ms`);
    }
  }
  lines.push(...concurrentLines(l));
  }
  if (results.concurrent) {
    lines.push('');
    lines.push('Concurrent real-time calls (instant fakes)');
    lines.push(...concurrentLines(results.concurrent));
  }
  const m = results.media_frame_native;
  if (m) {
  lines.push('');
  lines.push('CPU per 20 ms media frame (native, release)');
  lines.push(`  Twilio JSON parse + base64 + forward : ${round(m.twilio_parse_base64_forward_ns)} ns  (${round(m.ratio_parse_vs_memcpy)}x a 160-byte memcpy of ${round(m.memcpy_160_ns, 2)} ns)`);
  if (m.twilio_full_serde_parse_base64_forward_ns !== undefined) {
  lines.push(`    scanner (the hot path) vs serde     : frame fields ${round(m.twilio_scan_fields_ns)} ns vs ${round(m.twilio_serde_borrow_fields_ns)} ns serde borrow (${round(m.twilio_serde_borrow_fields_ns / m.twilio_scan_fields_ns)}x); with base64 + forward ${round(m.twilio_parse_base64_forward_ns)} ns vs ${round(m.twilio_full_serde_parse_base64_forward_ns)} ns full serde parse (${round(m.twilio_full_serde_parse_base64_forward_ns / m.twilio_parse_base64_forward_ns)}x)`);
  }
  lines.push(`  24 kHz PCM → resample → μ-law        : ${round(m.pcm24k_resample_to_mulaw_ns)} ns  (${round(m.ratio_resample_vs_memcpy)}x a 960-byte memcpy of ${round(m.memcpy_960_ns, 2)} ns)`);
  lines.push(`  μ-law → 8 kHz PCM                    : ${round(m.mulaw_to_pcm8k_ns)} ns`);
  }
  const s = results.size_and_start;
  if (s) {
  lines.push('');
  lines.push('Size and start');
  lines.push(`  wasm ${round(s.wasm_raw_bytes / 1024)} KiB raw, ${round(s.wasm_gzip_bytes / 1024)} KiB gzip; wrangler dev ready in ${s.wrangler_dev_ready_ms} ms;`);
  lines.push(`  first request after start ${s.first_request_ms} ms (Wasm instantiation included), warm /health p50 ${s.warm_health_p50_ms} ms`);
  lines.push(`  cold start: fresh wrangler dev spawned → first webhook answered ${s.spawn_to_first_webhook_ms} ms (that webhook alone ${s.first_webhook_ms} ms, HTTP ${s.first_webhook_status}; warm webhook p50 ${s.warm_webhook_p50_ms} ms)`);
  }
  if (results.campaigns) {
    lines.push('');
    lines.push('Campaigns');
    lines.push(...campaignLines(results.campaigns));
  }
  return lines.join('\n');
}

/**
 * The concurrent-calls rows: CPU per inbound frame of our worker's workerd, of wrangler's proxy
 * and of the harness (the Node clients and fakes, on the same cores), and the cores each kept
 * busy, beside set-up, replies and late frames.
 */
function concurrentLines(l) {
  const c0 = l.cpu_per_inbound_frame_in_worker;
  const lines = [`  workerd CPU per inbound 20 ms frame (${c0.calls} streaming calls): ${c0.cpu_us_per_inbound_frame} µs (target ≤ 20): our worker ${c0.worker_us_per_frame ?? '-'} + wrangler's proxy ${c0.proxy_us_per_frame ?? '-'}; the harness (Node clients + fakes) ${c0.harness_us_per_frame ?? '-'} µs more`];
  if (l.concurrent[0]?.via) lines.push(`  the calls connect ${l.concurrent[0].via === 'workerd direct' ? "straight to workerd (wrangler's proxy is not in production)" : "through wrangler's proxy"}; caller audio from one paced timer`);
  lines.push('  calls started setup s  first frame p50/p99 ms  frames/expected  late  gap p99 ms  µs/frame worker+proxy | harness  cores worker/proxy/harness  workerd MiB');
  for (const c of l.concurrent) {
    const answered = c.first_frame.n ? `${c.first_frame.p50_ms}/${c.first_frame.p99_ms}` : 'no reply in 60 s';
    const perFrame = `${c.worker_us_per_frame ?? '-'}+${c.proxy_us_per_frame ?? '-'} | ${c.harness_us_per_frame ?? '-'}`;
    const cores = c.cores ? `${c.cores.worker}/${c.cores.proxy}/${c.cores.harness}` : '-';
    lines.push(`  ${String(c.calls).padStart(5)} ${String(c.started).padStart(7)} ${String(c.setup_s).padStart(7)}  ${answered.padStart(20)}  ${`${c.outbound_frames}/${c.expected_frames}`.padStart(15)}  ${String(c.late_frames).padStart(4)}  ${String(c.frame_gap_p99_ms).padStart(10)}  ${perFrame.padStart(29)}  ${cores.padStart(25)}  ${String(c.workerd_rss_mib).padStart(11)}`);
  }
  return lines;
}

// `node bench/run.mjs ingest live` runs only those sections; no argument runs them all.
// `--no-pipecat` leaves Pipecat out of the live section.
const args = process.argv.slice(2);
const only = args.filter((a) => !a.startsWith('--'));
const wanted = (name) => only.length === 0 || only.includes(name);
// `--calls=50,200`: the group sizes of the `concurrent` section.
const concurrencyArg = (args.find((a) => a.startsWith('--calls='))?.slice(8) ?? '50,100,200').split(',').map(Number);
const started = performance.now();
const log = (msg) => process.stderr.write(`[bench] ${msg}\n`);
let pipecat;
if (wanted('live')) {
  pipecat = args.includes('--no-pipecat') ? { skipped: '--no-pipecat' } : await ensurePipecat({ log });
  if (pipecat.skipped) log(`Pipecat skipped: ${pipecat.skipped}`);
}
const results = {
  machine: { cpus: os.cpus().length, cpu_model: os.cpus()[0]?.model, memory_gib: round(os.totalmem() / 2 ** 30), node: process.version, loadavg_1m: round(os.loadavg()[0], 2) },
  at: new Date().toISOString(),
  pipecat,
  ingest: wanted('ingest') ? await ingest() : undefined,
  live: wanted('live') ? await liveBench({ pipecat: Boolean(pipecat && !pipecat.skipped) }) : undefined,
  // Only with `concurrent` named: the live section runs the same calls.
  concurrent: only.includes('concurrent') ? await concurrentBench({ concurrency: concurrencyArg }) : undefined,
  media_frame_native: wanted('native') ? await mediaFrameNative() : undefined,
  size_and_start: wanted('size') ? await sizeAndStart() : undefined,
  campaigns: wanted('campaigns') ? await campaignBenches() : undefined,
};
results.duration_s = round((performance.now() - started) / 1000);
await writeFile(path.join(ROOT, 'bench', only.length ? `results-${only.join('-')}.json` : 'results.json'), JSON.stringify(results, null, 2) + '\n');
console.log(table(results));
console.log(`\n(${results.duration_s} s; load average at start ${results.machine.loadavg_1m} on ${results.machine.cpus} cores)`);
