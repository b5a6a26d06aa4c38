// Live-call benchmarks for `npm run bench`: per-turn orchestration overhead, LLM request → TTS
// request and barge-in latency over one long call (with its flatness, first fifth vs last
// fifth), through wrangler's local proxy and straight to workerd, and the same client turns
// against Pipecat's Twilio example; end of caller speech → first agent audio per provider
// latency profile; CPU per inbound media frame inside workerd; many simultaneous real-time
// calls. Every call is a real Twilio Media Streams session; providers are the
// protocol-faithful fakes on 127.0.0.1.

import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { eventually, sleep, within } from '../tests/harness.mjs';
import {
  startLiveWorker, createAgent, createNumber, startTwilioCall, twilioIncoming, openMediaStream, QUIET_SESSION,
} from '../tests/live-setup.mjs';
import { MS_PER_WORD } from '../tests/fakes/audio.mjs';
import { startPipecatBot } from './pipecat.mjs';

export const NUMBER = '+15550002001';
const FLUX_NUMBER = '+15550002002';
const FLUX_OFF_NUMBER = '+15550002003';
const round = (x, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;
const quantile = (values, q) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
};
const summary = (values) => (values.length
  ? { n: values.length, p50_ms: round(quantile(values, 0.5), 2), p99_ms: round(quantile(values, 0.99), 2) }
  : { n: 0, p50_ms: null, p99_ms: null });
const progress = (msg) => process.stderr.write(`[bench] ${msg}\n`);

/**
 * Provider latency profiles for the fakes. `instant`: no artificial delay (measures the
 * orchestration alone). `realistic`: the providers' published figures (bench/README.md cites
 * them): Deepgram Nova-3 streaming final ~300 ms after the end of speech, gpt-4o-mini ~400 ms to
 * first token then ~70 tokens/s, ElevenLabs Flash v2.5 ~75 ms to first byte then real-time audio;
 * Deepgram Flux EndOfTurn ~260 ms after the end of speech (its quickstart), EagerEndOfTurn earlier
 * (150 ms: our assumption, Deepgram publishes no figure for it).
 */
export const PROFILES = {
  instant: { sttFinalMs: 0, llmFirstTokenMs: 0, llmTokensPerSecond: 0, ttsFirstByteMs: 0, ttsRealtime: false },
  realistic: { sttFinalMs: 300, llmFirstTokenMs: 400, llmTokensPerSecond: 70, ttsFirstByteMs: 75, ttsRealtime: true, fluxEagerMs: 150, fluxEndOfTurnMs: 260 },
};

/** The fakes' options for a profile (startLiveWorker's `deepgram`, `openai`, `elevenlabs`). */
export function fakeOptions(profile) {
  return {
    deepgram: { idleTimeoutMs: 3_600_000, finalDelayMs: profile.sttFinalMs, eagerDelayMs: profile.fluxEagerMs ?? 0, endOfTurnDelayMs: profile.fluxEndOfTurnMs ?? 0 },
    openai: { defaultReply: { text: 'Sure, I can help with that.' }, firstTokenMs: profile.llmFirstTokenMs, tokensPerSecond: profile.llmTokensPerSecond },
    elevenlabs: { firstByteMs: profile.ttsFirstByteMs, realtime: profile.ttsRealtime },
  };
}

/** workerd processes on this machine: {pid, ppid, args}. */
function workerdProcesses() {
  return readdirSync('/proc').filter((d) => /^\d+$/.test(d)).flatMap((pid) => {
    try {
      if (!readFileSync(`/proc/${pid}/comm`, 'utf8').startsWith('workerd')) return [];
      const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      const ppid = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')[1];
      return [{ pid, ppid, args }];
    } catch {
      return [];
    }
  });
}

/**
 * The workerd processes of `worker`'s `wrangler dev`: the one running wrangler's proxy on its
 * port, and its sibling running our worker. Only these count, as other workers may run on the
 * same machine.
 */
export function workerdOf(worker) {
  const procs = workerdProcesses();
  const proxy = procs.find((p) => p.args.includes(`--socket-addr=entry=127.0.0.1:${worker.port}`));
  return proxy ? { proxy, all: procs.filter((p) => p.ppid === proxy.ppid) } : null;
}

/** Resident memory (KiB) and CPU time (ms) of the processes `pids`, summed. */
export function workerdUsage(pids) {
  let rssKib = 0;
  let cpuMs = 0;
  const tick = 100; // USER_HZ on Linux
  for (const pid of pids) {
    try {
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      rssKib += Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
      const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
      cpuMs += ((Number(fields[11]) + Number(fields[12])) * 1000) / tick;
    } catch {
      // the process has ended
    }
  }
  return { rssKib, cpuMs };
}

/** TCP ports process `pid` listens on (from /proc: its socket inodes in /proc/net/tcp). */
function listeningPorts(pid) {
  const inodes = new Set();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) inodes.add(m[1]);
    } catch {
      // closed meanwhile
    }
  }
  const ports = [];
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length > 9 && f[3] === '0A' && inodes.has(f[9])) ports.push(parseInt(f[1].split(':').pop(), 16));
    }
  }
  return ports;
}

/**
 * The worker's own workerd entry socket, behind wrangler's local proxy. `wrangler dev` runs two
 * workerd processes: one serves `--port` and runs wrangler's ProxyWorker, which forwards every
 * request to the other, which runs our worker on an entry socket bound to a random port
 * (`--socket-addr=entry=127.0.0.1:0`, beside the inspector and debug ports). Found as the port of
 * the sibling workerd whose /health names the same instance as the proxied one. Null if not found.
 */
export async function workerdDirectUrl(worker) {
  const ours = workerdOf(worker);
  if (!ours) return null;
  // The same isolate answers both ways, so /health names the same instance.
  const instance = async (url) => (await (await fetch(`${url}/health`, { signal: AbortSignal.timeout(2000) })).json()).instance?.id;
  const expected = await instance(worker.url);
  for (const sibling of ours.all.filter((p) => p.pid !== ours.proxy.pid)) {
    for (const port of listeningPorts(sibling.pid)) {
      try {
        if (expected && (await instance(`http://127.0.0.1:${port}`)) === expected) return `http://127.0.0.1:${port}`;
      } catch {
        // the inspector or the debug port
      }
    }
  }
  return null;
}

/** Waits for the first media frame after `at`; resolves to its delay in ms. */
async function firstMedia(call, at, what) {
  await eventually(() => call.playback.after(at, 'media').length > 0, { timeout: 30_000, interval: 1, message: what });
  return call.playback.after(at, 'media')[0].at - at;
}

/**
 * Waits until a reply of `words` words (MS_PER_WORD each) has been received after `at` and has
 * played out at the client. Marks would say it too, but Pipecat's serializer sends none.
 */
async function replyPlayed(call, at, words, what) {
  const bytes = (words * MS_PER_WORD * call.client.bytesPerMs) * 0.9;
  await eventually(() => {
    const received = call.playback.after(at, 'media').reduce((sum, m) => sum + m.bytes, 0);
    return received >= bytes && performance.now() > call.playback.playEnd + 20;
  }, { timeout: 30_000, interval: 2, message: what });
}

export async function hangUp(call) {
  call.stopAudio();
  try {
    call.client.stop();
  } catch {
    // the socket is already gone
  }
  await Promise.race([call.client.closed, sleep(5000)]);
  call.client.socket.terminate();
}

/** The first fifth vs the last fifth of `values` (in call order): p50, p99, and the ±20 % check. */
function flatness(values) {
  const fifth = Math.floor(values.length / 5);
  if (fifth < 1) return null;
  const first = summary(values.slice(0, fifth));
  const last = summary(values.slice(-fifth));
  const p50Ratio = round(last.p50_ms / first.p50_ms, 2);
  const p99Ratio = round(last.p99_ms / first.p99_ms, 2);
  return { first, last, p50_ratio: p50Ratio, p99_ratio: p99Ratio, flat: Math.abs(p50Ratio - 1) <= 0.2 && Math.abs(p99Ratio - 1) <= 0.2 };
}

const LONG = 'Our menu has many dishes. We have pasta, pizza and salads. Desserts are made fresh every day. We also have a wine list.';

/**
 * One long call driven turn by turn, the same for every server: the caller asks (final
 * transcript) → first outbound frame (turn overhead) and the LLM request → first TTS request at
 * the fakes; 100 ms into the long reply the caller barges in (interim transcript) → `clear`;
 * the caller's final words get a one-word reply, played out before the next turn.
 */
export async function conversation(live, call, turns, label) {
  const { dg, openai, eleven } = live;
  const perTurn = [];
  const llmToTts = [];
  const bargeIn = [];
  // Where a turn's overhead goes, as the fakes and the client see it: final transcript → LLM
  // request, LLM request → first text to speak, that text → the fake's first audio, that audio
  // → the first frame at the client.
  const legs = { final_to_llm: [], llm_to_tts: [], tts_to_audio: [], audio_to_client: [] };
  progress(`live: ${label}: ${turns} turns with a barge-in each`);
  for (let i = 0; i < turns; i++) {
    openai.reply({ text: LONG });
    const asked = performance.now();
    dg.say(call.stt, { transcript: `Question ${i}?`, is_final: true, speech_final: true });
    perTurn.push(await firstMedia(call, asked, `${label}: reply ${i}`));
    const chat = openai.chatRequests.find((r) => r.hrAt >= asked);
    // The first text to speak as the fake receives it: an HTTP request or a message on the socket.
    const tts = chat && [...eleven.requests, ...eleven.socketMessages.filter((m) => m.text?.trim())].filter((r) => r.hrAt >= chat.hrAt).sort((a, b) => a.hrAt - b.hrAt)[0];
    if (chat && tts) llmToTts.push(tts.hrAt - chat.hrAt);
    const audio = tts && eleven.sockets.flatMap((c) => c.sentAudio).find((a) => a.hrAt >= tts.hrAt);
    if (chat && tts && audio) {
      legs.final_to_llm.push(chat.hrAt - asked);
      legs.llm_to_tts.push(tts.hrAt - chat.hrAt);
      legs.tts_to_audio.push(audio.hrAt - tts.hrAt);
      legs.audio_to_client.push(asked + perTurn.at(-1) - audio.hrAt);
    }
    await sleep(100);
    const at = performance.now();
    dg.say(call.stt, { transcript: 'wait stop please', is_final: false, speech_final: false });
    await eventually(() => call.playback.after(at, 'clear').length > 0, { timeout: 30_000, interval: 1, message: `${label}: clear ${i}` });
    bargeIn.push(call.playback.after(at, 'clear')[0].at - at);
    openai.reply({ text: 'Okay.' });
    const resumed = performance.now();
    dg.say(call.stt, { transcript: 'wait stop please', is_final: true, speech_final: true });
    await replyPlayed(call, resumed, 1, `${label}: reply after barge-in ${i}`);
  }
  return {
    per_turn: { ...summary(perTurn), flatness: flatness(perTurn) },
    llm_to_tts: summary(llmToTts),
    legs: Object.fromEntries(Object.entries(legs).map(([k, v]) => [k, summary(v)])),
    barge_in_to_clear: { ...summary(bargeIn), flatness: flatness(bargeIn) },
  };
}

/**
 * End of caller speech → first agent audio at the client, `turns` times: the caller stops
 * speaking at t0 (the fake STT finalizes after its profile delay), the reply is played out.
 */
async function voiceToVoice(live, call, turns, label) {
  const values = [];
  progress(`live: ${label}: ${turns} voice-to-voice turns`);
  for (let i = 0; i < turns; i++) {
    const endOfSpeech = performance.now();
    live.dg.say(call.stt, { transcript: `Can you help me with ${i}?`, is_final: true, speech_final: true });
    values.push(await firstMedia(call, endOfSpeech, `${label}: voice-to-voice ${i}`));
    await replyPlayed(call, endOfSpeech, 6, `${label}: voice-to-voice reply ${i}`);
  }
  return summary(values);
}

/**
 * Voice-to-voice over Deepgram Flux turn events: every `resumeEvery`-th turn the caller goes on
 * after an EagerEndOfTurn (TurnResumed), so a preemptive server wastes that early reply. Adds
 * the early LLM requests as the fake OpenAI saw them, for any server (`early_used`: made before
 * EndOfTurn with the turn's final words; `early_wasted`: made with words the caller then went on
 * from), our session's own used / wasted counters (our calls only), and the agent audio frames
 * that reached the client while the caller's turn was still open (must be 0: the agent never
 * talks over a caller who resumed).
 */
async function voiceToVoiceFlux(live, call, turns, label, { resumeEvery = 3 } = {}) {
  const values = [];
  let spokeOver = 0;
  let earlyUsed = 0;
  let earlyWasted = 0;
  progress(`live: ${label}: ${turns} Flux voice-to-voice turns`);
  for (let i = 0; i < turns; i++) {
    // The previous reply's last frames have arrived and played: any agent frame from here to
    // the end of the caller's turn would be the agent talking over them.
    await eventually(() => {
      const last = call.playback.log.findLast((e) => e.kind === 'media');
      return !last || performance.now() - Math.max(last.at, call.playback.playEnd) > 200;
    }, { timeout: 30_000, interval: 10, message: `${label}: quiet before turn ${i}` });
    const started = performance.now();
    const transcript = `Can you help me with ${i}?`;
    const draft = resumeEvery && i % resumeEvery === resumeEvery - 1 ? `Can you help me` : transcript;
    const { endOfSpeech } = await live.dg.fluxTurn(call.stt, { transcript, draft });
    const ended = performance.now();
    spokeOver += call.playback.after(started, 'media').filter((m) => m.at < ended).length;
    values.push(await firstMedia(call, endOfSpeech, `${label}: voice-to-voice ${i}`));
    await replyPlayed(call, endOfSpeech, 6, `${label}: voice-to-voice reply ${i}`);
    for (const r of live.openai.chatRequests.filter((c) => c.hrAt >= started && c.hrAt < ended)) {
      const words = r.parsed?.messages?.findLast((m) => m.role === 'user')?.content;
      if (words === transcript) earlyUsed += 1;
      else earlyWasted += 1;
    }
  }
  const figures = { ...summary(values), early_used: earlyUsed, early_wasted: earlyWasted, agent_frames_during_caller_turn: spokeOver };
  if (!call.callId) return figures;
  const session = await live.worker.api('GET', `/api/v1/calls/${call.callId}/session`);
  const counters = session.body?.counters ?? {};
  return { ...figures, preemptive_used: counters.preemptive_used ?? 0, preemptive_wasted: counters.preemptive_wasted ?? 0 };
}

/** Our worker's agents and numbers on `live` (once per worker): Nova, Flux preemptive, Flux without. */
export async function provision(live) {
  const agent = (name, stt) => createAgent(live.worker, {
    name, system_prompt: 'Be brief.', first_message: 'Hello.',
    voice: { provider: 'elevenlabs', voice_id: 'rachel' }, session: QUIET_SESSION, ...(stt ? { stt } : {}),
  });
  await createNumber(live.worker, NUMBER, (await agent('Bench')).id);
  await createNumber(live.worker, FLUX_NUMBER, (await agent('Bench Flux', { model: 'flux-general-en' })).id);
  await createNumber(live.worker, FLUX_OFF_NUMBER, (await agent('Bench Flux, no preemption', { model: 'flux-general-en', preemptive: false })).id);
}

/**
 * A Twilio call to our worker: signed webhook → TwiML → media stream (through wrangler's proxy,
 * or with `direct` to workerd's own entry socket) → STT socket; greeting played out.
 */
export async function callOurs(live, { direct, to = NUMBER } = {}) {
  let call;
  if (direct) {
    const markup = await twilioIncoming(live.worker, NUMBER);
    const stream = new URL(markup.stream);
    const target = new URL(direct);
    stream.host = target.host;
    const sttBefore = live.dg.connections.length;
    const media = await openMediaStream('twilio', stream.toString(), { start: { token: markup.token, call_id: markup.callId } });
    call = { ...markup, ...media, stt: await live.dg.waitForConnection(sttBefore, 10_000) };
  } else {
    call = await startTwilioCall(live, { to });
  }
  await firstMedia(call, 0, 'greeting');
  await replyPlayed(call, 0, 1, 'greeting played');
  return call;
}

/**
 * A Twilio Media Streams call to the Pipecat bot (its example has no webhook: straight to /ws);
 * `flux` when the bot runs on Deepgram Flux (its warm-up turn then speaks Flux turn events).
 */
async function callPipecat(live, bot, { flux = false } = {}) {
  const sttBefore = live.dg.connections.length;
  const media = await openMediaStream('twilio', bot.url, { start: {} });
  const call = { ...media, stt: await live.dg.waitForConnection(sttBefore, 30_000) };
  await firstMedia(call, 0, 'pipecat greeting');
  await replyPlayed(call, 0, 1, 'pipecat greeting played');
  // Pipecat's first turn pays its lazy start-up (HTTP clients, first LLM call): one warm-up
  // turn so the figures compare steady states, as our worker's isolate is warm by now too.
  if (flux) await voiceToVoiceFlux(live, call, 1, 'pipecat warm-up', { resumeEvery: 0 });
  else await voiceToVoice(live, call, 1, 'pipecat warm-up');
  return call;
}

/**
 * Caller audio for many bench calls from one 20 ms timer: each tick sends every stream the
 * frames its clock is due (at most 3 behind, then it skips), each a ready-made Twilio `media`
 * message of silence. One timer and a JSON tree per frame per call (streamCallerAudio, right for
 * a test's few calls) made the harness, not the worker, the first thing to saturate at 200 calls.
 * `add(client)` starts a client's audio and returns its stop.
 */
function callerAudioPacer() {
  const streams = new Map(); // client → {started, frames}
  const payload = Buffer.alloc(160, 0xff).toString('base64');
  let timer = null;
  const tick = () => {
    const now = performance.now();
    for (const [client, s] of streams) {
      if (client.socket.readyState !== 1) {
        streams.delete(client);
        continue;
      }
      const due = Math.floor((now - s.started) / client.frameMs) + 1;
      if (due - s.frames > 3) s.frames = due - 3;
      for (; s.frames < due; s.frames++) {
        client.chunk += 1;
        client.socket.send(`{"event":"media","sequenceNumber":"${client.next()}","media":{"track":"inbound","chunk":"${client.chunk}","timestamp":"${client.timestamp}","payload":"${payload}"},"streamSid":"${client.streamSid}"}`);
        client.timestamp += client.frameMs;
      }
    }
    if (streams.size === 0) {
      clearInterval(timer);
      timer = null;
    }
  };
  return {
    add: (client) => {
      streams.set(client, { started: performance.now(), frames: 0 });
      timer ??= setInterval(tick, 5);
      return () => streams.delete(client);
    },
  };
}

/** CPU time (ms) of this Node process: the Twilio clients and the provider fakes. */
function harnessCpuMs() {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/**
 * Many simultaneous real-time calls to our worker (`concurrency`: the group sizes, one after
 * another); `calls` collects the open ones (the caller stops them on failure). While the calls
 * only stream, CPU per inbound frame: of the workerd running our worker, of wrangler's proxy in
 * front of it, and of this Node process (the clients and the fakes share the machine's cores,
 * so a saturated harness shows here, not as the worker's cost). Frames are counted as sent.
 */
export async function concurrentCalls(live, calls, concurrency) {
  const { worker, dg } = live;
  const ours = workerdOf(worker);
  const pids = (ours?.all ?? []).map((p) => p.pid);
  const workerPids = pids.filter((p) => p !== ours?.proxy.pid);
  // Straight to workerd when its socket is found: wrangler's proxy is not there in production,
  // and on two cores its CPU would be taken from the worker it measures.
  const direct = await workerdDirectUrl(worker);
  const pacer = callerAudioPacer();
  const startCall = async () => {
    const markup = await twilioIncoming(worker, NUMBER);
    const stream = new URL(markup.stream);
    if (direct) stream.host = new URL(direct).host;
    const sttBefore = dg.connections.length;
    const media = await openMediaStream('twilio', stream.toString(), { start: { token: markup.token, call_id: markup.callId }, audio: pacer.add });
    calls.push(media);
    return { ...markup, ...media, stt: await dg.waitForConnection(sttBefore, 10_000) };
  };
  const concurrent = [];
  let cpuPerFrame = null;
  for (const n of concurrency) {
    progress(`live: ${n} concurrent calls`);
    const started = performance.now();
    const group = [];
    let failed = 0;
    // One at a time: STT sockets are matched to calls by connection order. Greetings are
    // awaited together afterwards; setup stops after two minutes whatever the count.
    for (let i = 0; i < n && performance.now() - started < 120_000; i++) {
      try {
        group.push(await within(startCall({ waitGreeting: false }), 15_000, 'call setup'));
      } catch {
        failed += 1;
      }
    }
    await eventually(() => group.every((c) => c.playback.echoed('t0-s0')), { timeout: 60_000, interval: 50, message: 'greetings' }).catch(() => null);
    const setupS = (performance.now() - started) / 1000;
    // Streaming only (no speech): CPU per inbound 20 ms frame actually sent.
    const sent = () => group.reduce((sum, c) => sum + c.client.chunk, 0);
    const f0 = sent();
    const u0 = workerdUsage(pids);
    const w0 = workerdUsage(workerPids);
    const h0 = harnessCpuMs();
    const t0 = performance.now();
    await sleep(5000);
    const wallS = (performance.now() - t0) / 1000;
    const u1 = workerdUsage(pids);
    const w1 = workerdUsage(workerPids);
    const h1 = harnessCpuMs();
    const frames = Math.max(1, sent() - f0);
    const perFrame = (ms) => round((ms * 1000) / frames, 1);
    const cpu = {
      frames_per_s: round(frames / wallS),
      cpu_us_per_inbound_frame: perFrame(u1.cpuMs - u0.cpuMs),
      worker_us_per_frame: perFrame(w1.cpuMs - w0.cpuMs),
      proxy_us_per_frame: perFrame((u1.cpuMs - u0.cpuMs) - (w1.cpuMs - w0.cpuMs)),
      harness_us_per_frame: perFrame(h1 - h0),
      // Cores busy: our worker, wrangler's proxy, the harness (clients + fakes).
      cores: {
        worker: round((w1.cpuMs - w0.cpuMs) / 1000 / wallS, 2),
        proxy: round(((u1.cpuMs - u0.cpuMs) - (w1.cpuMs - w0.cpuMs)) / 1000 / wallS, 2),
        harness: round((h1 - h0) / 1000 / wallS, 2),
      },
    };
    if (cpuPerFrame === null) cpuPerFrame = { calls: group.length, window_s: 5, ...cpu };
    // Every caller speaks at once; each reply is 600 ms of audio (30 frames).
    const at = performance.now();
    for (const call of group) dg.say(call.stt, { transcript: 'Can you help me?', is_final: true, speech_final: true });
    await eventually(() => group.every((c) => c.playback.after(at, 'echo').length > 0), { timeout: 60_000, interval: 20, message: `${n} replies heard` }).catch(() => null);
    const firstFrame = [];
    const gaps = [];
    let late = 0;
    let received = 0;
    let unanswered = 0;
    for (const call of group) {
      const media = call.playback.after(at, 'media');
      if (media.length === 0) {
        unanswered += 1;
        continue;
      }
      firstFrame.push(media[0].at - at);
      received += media.length;
      for (let k = 1; k < media.length; k++) {
        gaps.push(media[k].at - media[k - 1].at);
        // Playout starts at the first frame; frame k must be there before its 20 ms slot.
        if (media[k].at > media[0].at + 20 * k) late += 1;
      }
    }
    const usage = workerdUsage(pids);
    concurrent.push({
      calls: n, via: direct ? 'workerd direct' : 'wrangler proxy', started: group.length, failed_to_start: failed, setup_s: round(setupS),
      ...cpu,
      first_frame: summary(firstFrame),
      outbound_frames: received, expected_frames: (group.length - unanswered) * 30, unanswered,
      late_frames: late, frame_gap_p99_ms: round(quantile(gaps, 0.99) ?? 0, 2),
      workerd_rss_mib: round(usage.rssKib / 1024),
    });
    progress(`live: ${n} concurrent calls → ${JSON.stringify(concurrent.at(-1))}`);
    await Promise.all(group.map(hangUp));
    calls.length = 0;
  }
  return { cpu_per_inbound_frame_in_worker: cpuPerFrame, concurrent };
}

/** Only the concurrent calls (`node bench/run.mjs concurrent`): a worker and fakes of their own. */
export async function concurrentBench({ concurrency = [50, 100, 200] } = {}) {
  const live = await startLiveWorker({ ...fakeOptions(PROFILES.instant), vars: { API_RATE_LIMIT_PER_MINUTE: '0' } });
  const calls = [];
  try {
    await provision(live);
    return await concurrentCalls(live, calls, concurrency);
  } finally {
    for (const call of calls) call.stopAudio();
    await live.stop();
  }
}

/**
 * Every live section. `pipecat`: false, or true to run Pipecat's bot beside ours. Resolves to
 * the figures; Pipecat's entries are {skipped} when it could not run.
 */
export async function liveBench({ turns = 200, directTurns = 60, profileTurns = 15, concurrency = [50, 100, 200], pipecat = false } = {}) {
  const results = { single_call: {}, voice_to_voice: {} };
  const live = await startLiveWorker({ ...fakeOptions(PROFILES.instant), vars: { API_RATE_LIMIT_PER_MINUTE: '0' } });
  const { worker, dg } = live;
  const calls = [];
  let bot = null;
  try {
    await provision(live);

    // 1. One long call through wrangler's proxy (what `wrangler dev` users hit).
    const one = await callOurs(live);
    calls.push(one);
    results.single_call.ours = await conversation(live, one, turns, 'ours via wrangler proxy');
    const session = await worker.api('GET', `/api/v1/calls/${one.callId}/session`);
    const inWorker = (session.body?.turns ?? []).map((t) => t.metrics?.first_audio_ms).filter((x) => typeof x === 'number');
    results.single_call.ours.worker_first_audio = summary(inWorker);
    results.voice_to_voice.instant = { ours: await voiceToVoice(live, one, profileTurns, 'ours instant') };
    await hangUp(one);
    calls.length = 0;

    // 2. The same, straight to workerd: the difference is wrangler's proxy.
    const direct = await workerdDirectUrl(worker);
    if (direct) {
      const call = await callOurs(live, { direct });
      calls.push(call);
      results.single_call.ours_direct = { url: direct, ...(await conversation(live, call, directTurns, 'ours straight to workerd')) };
      await hangUp(call);
      calls.length = 0;
    } else {
      results.single_call.ours_direct = { skipped: "workerd's entry socket not found (see bench/README.md)" };
    }

    // 3. Pipecat's Twilio example on the same fakes, same client turns.
    if (pipecat) {
      bot = await startPipecatBot(live);
      const call = await callPipecat(live, bot);
      calls.push(call);
      const since = performance.now();
      results.single_call.pipecat = await conversation(live, call, turns, 'pipecat');
      // Evidence that Pipecat really ran on the fakes: caller audio reached the fake Deepgram,
      // its LLM requests carried the transcripts, and its speech came from the fake ElevenLabs.
      const chats = live.openai.chatRequests.filter((r) => r.hrAt >= since);
      results.single_call.pipecat.checks = {
        stt_audio_bytes: call.stt.audioBytes,
        stt_encoding: call.stt.encoding,
        llm_requests: chats.length,
        llm_requests_ending_with_a_transcript: chats.filter((r) => /^(Question \d+\?|wait stop please)$/.test(r.parsed?.messages?.at(-1)?.content ?? '')).length,
        tts_requests: live.eleven.requests.filter((r) => r.hrAt >= since && r.path.endsWith('/stream/with-timestamps')).length,
      };
      results.voice_to_voice.instant.pipecat = await voiceToVoice(live, call, profileTurns, 'pipecat instant');
      await hangUp(call);
      calls.length = 0;
      await bot.stop();
      bot = null;
    }

    // 4. Many simultaneous real-time calls (ours); CPU per inbound frame while they only stream.
    Object.assign(results, await concurrentCalls(live, calls, concurrency));
  } finally {
    for (const call of calls) call.stopAudio();
    await bot?.stop();
    await live.stop();
  }
  results.voice_to_voice.instant.floor_ms = 0;

  // 5. Voice-to-voice under the realistic profile: fresh fakes, worker and bot.
  const profile = PROFILES.realistic;
  const floor = profile.sttFinalMs + profile.llmFirstTokenMs + profile.ttsFirstByteMs;
  results.voice_to_voice.realistic = { profile, floor_ms: floor };
  const real = await startLiveWorker({ ...fakeOptions(profile), vars: { API_RATE_LIMIT_PER_MINUTE: '0' } });
  let realBot = null;
  const realCalls = [];
  try {
    await provision(real);
    const call = await callOurs(real);
    realCalls.push(call);
    results.voice_to_voice.realistic.ours = await voiceToVoice(real, call, profileTurns, 'ours realistic');
    await hangUp(call);
    realCalls.length = 0;
    // Flux with preemptive generation, and the same turns without it (same fakes and worker).
    const flux = {};
    for (const [key, to] of [['preemptive', FLUX_NUMBER], ['off', FLUX_OFF_NUMBER]]) {
      const fluxCall = await callOurs(real, { to });
      realCalls.push(fluxCall);
      flux[key] = await voiceToVoiceFlux(real, fluxCall, profileTurns, `ours realistic Flux ${key}`);
      await hangUp(fluxCall);
      realCalls.length = 0;
    }
    results.voice_to_voice.realistic.flux = flux;
    if (pipecat) {
      realBot = await startPipecatBot(real);
      const pc = await callPipecat(real, realBot);
      realCalls.push(pc);
      results.voice_to_voice.realistic.pipecat = await voiceToVoice(real, pc, profileTurns, 'pipecat realistic');
      await hangUp(pc);
      realCalls.length = 0;
      await realBot.stop();
      realBot = null;
      // Pipecat on Flux too, the same turns as ours: its Flux service without and with its eager
      // end of turn (a response started on EagerEndOfTurn, held until EndOfTurn).
      const pipecatFlux = {};
      for (const [key, stt] of [['preemptive', 'flux-eager'], ['off', 'flux']]) {
        realBot = await startPipecatBot(real, { stt });
        const fluxCall = await callPipecat(real, realBot, { flux: true });
        realCalls.push(fluxCall);
        pipecatFlux[key] = await voiceToVoiceFlux(real, fluxCall, profileTurns, `pipecat realistic Flux ${key}`);
        pipecatFlux[key].stt_path = fluxCall.stt.path;
        await hangUp(fluxCall);
        realCalls.length = 0;
        await realBot.stop();
        realBot = null;
      }
      results.voice_to_voice.realistic.pipecat_flux = pipecatFlux;
    }
  } finally {
    for (const call of realCalls) call.stopAudio();
    await realBot?.stop();
    await real.stop();
  }
  return results;
}

/**
 * The one-call conversation alone (`node bench/turns.mjs`): `turns` turns through wrangler's
 * proxy and, with `direct`, as many straight to workerd; the worker's own first_audio_ms beside.
 */
export async function turnBench({ turns = 200, direct = false } = {}) {
  const results = {};
  const live = await startLiveWorker({ ...fakeOptions(PROFILES.instant), vars: { API_RATE_LIMIT_PER_MINUTE: '0' } });
  const calls = [];
  try {
    await provision(live);
    const one = await callOurs(live);
    calls.push(one);
    results.ours = await conversation(live, one, turns, 'ours via wrangler proxy');
    const session = await live.worker.api('GET', `/api/v1/calls/${one.callId}/session`);
    const inWorker = (session.body?.turns ?? []).map((t) => t.metrics?.first_audio_ms).filter((x) => typeof x === 'number');
    results.ours.worker_first_audio = summary(inWorker);
    await hangUp(one);
    calls.length = 0;
    const url = direct && (await workerdDirectUrl(live.worker));
    if (url) {
      const call = await callOurs(live, { direct: url });
      calls.push(call);
      results.ours_direct = await conversation(live, call, turns, 'ours straight to workerd');
      await hangUp(call);
      calls.length = 0;
    }
  } finally {
    for (const call of calls) call.stopAudio();
    await live.stop();
  }
  return results;
}
