// Live-call benchmarks for `npm run bench`: per-turn orchestration overhead and barge-in
// latency with instant fake providers, CPU per inbound media frame inside workerd, and many
// simultaneous real-time calls on this machine. Every call is a real Twilio Media Streams
// session against the real worker; providers are the protocol-faithful fakes on 127.0.0.1.

import { readFileSync, readdirSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { eventually, sleep, within } from '../tests/harness.mjs';
import { startLiveWorker, createAgent, createNumber, startTwilioCall, QUIET_SESSION } from '../tests/live-setup.mjs';

const NUMBER = '+15550002001';
const round = (x, digits = 1) => Math.round(x * 10 ** digits) / 10 ** digits;
const quantile = (values, q) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
};
const summary = (values) => ({ n: values.length, p50_ms: round(quantile(values, 0.5), 2), p99_ms: round(quantile(values, 0.99), 2) });

/** workerd processes on this machine: resident memory (KiB) and CPU time (ms) summed. */
function workerdUsage() {
  let rssKib = 0;
  let cpuMs = 0;
  const tick = 100; // USER_HZ on Linux
  for (const pid of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      if (!readFileSync(`/proc/${pid}/comm`, 'utf8').startsWith('workerd')) continue;
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      rssKib += Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
      const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
      cpuMs += ((Number(fields[11]) + Number(fields[12])) * 1000) / tick;
    } catch {
      // the process ended between listing and reading
    }
  }
  return { rssKib, cpuMs };
}

export async function liveBench({ turns = 200, bargeIns = 30, concurrency = [50, 100, 200] } = {}) {
  const live = await startLiveWorker({
    deepgram: { idleTimeoutMs: 3_600_000 },
    openai: { defaultReply: { text: 'Sure, I can help with that.' } },
    vars: { API_RATE_LIMIT_PER_MINUTE: '0' },
  });
  const { worker, dg, openai } = live;
  const calls = [];
  try {
    const agent = await createAgent(worker, {
      name: 'Bench', system_prompt: 'Be brief.', first_message: 'Hello.',
      voice: { provider: 'elevenlabs', voice_id: 'rachel' }, session: QUIET_SESSION,
    });
    await createNumber(worker, NUMBER, agent.id);

    /** A whole call: incoming webhook → TwiML → media stream → STT socket; greeting heard. */
    async function startCall({ waitGreeting = true } = {}) {
      const call = await startTwilioCall(live, { to: NUMBER });
      call.turn = 0;
      calls.push(call);
      if (waitGreeting) await eventually(() => call.playback.echoed('t0-s0'), { timeout: 30_000, interval: 5, message: 'greeting heard' });
      return call;
    }

    /** One caller turn: final transcript → first outbound frame; waits until the reply played. */
    async function turn(call, text) {
      call.turn += 1;
      const at = performance.now();
      dg.say(call.stt, { transcript: text, is_final: true, speech_final: true });
      await eventually(() => call.playback.after(at, 'media').length > 0, { timeout: 30_000, interval: 1, message: 'reply' });
      const first = call.playback.after(at, 'media')[0].at - at;
      await eventually(() => call.playback.after(at, 'echo').length > 0, { timeout: 30_000, interval: 2, message: 'reply heard' });
      return first;
    }

    async function hangUp(call) {
      call.stopAudio();
      try {
        call.client.stop();
      } catch {
        // the socket is already gone
      }
      await Promise.race([call.client.closed, sleep(5000)]);
      call.client.socket.terminate();
    }

    const progress = (msg) => process.stderr.write(`[bench] ${msg}\n`);
    // 1. Per-turn overhead on one call.
    progress(`live: ${turns} turns on one call`);
    const one = await startCall();
    const perTurn = [];
    for (let i = 0; i < turns; i++) perTurn.push(await turn(one, `Question ${i}?`));
    const session = await worker.api('GET', `/api/v1/calls/${one.callId}/session`);
    const inWorker = (session.body?.turns ?? []).map((t) => t.metrics?.first_audio_ms).filter((x) => typeof x === 'number');

    // 2. Barge-in: interrupting words while a long reply plays → `clear`.
    progress(`live: ${bargeIns} barge-ins`);
    const long = 'Our menu has many dishes. We have pasta, pizza and salads. Desserts are made fresh every day. We also have a wine list.';
    const bargeIn = [];
    for (let i = 0; i < bargeIns; i++) {
      openai.reply({ text: long });
      const asked = performance.now();
      dg.say(one.stt, { transcript: 'What is on the menu?', is_final: true, speech_final: true });
      await eventually(() => one.playback.after(asked, 'media').length > 0, { timeout: 30_000, interval: 1, message: 'long reply' });
      await sleep(100);
      const at = performance.now();
      dg.say(one.stt, { transcript: 'wait stop please', is_final: false, speech_final: false });
      await eventually(() => one.playback.after(at, 'clear').length > 0, { timeout: 30_000, interval: 1, message: 'clear' });
      bargeIn.push(one.playback.after(at, 'clear')[0].at - at);
      openai.reply({ text: 'Okay.' });
      const resumed = performance.now();
      dg.say(one.stt, { transcript: 'wait stop please', is_final: true, speech_final: true });
      await eventually(() => one.playback.after(resumed, 'echo').length > 0, { timeout: 30_000, interval: 2, message: 'after barge-in' });
    }
    await hangUp(one);
    calls.length = 0;

    // 3 + 4. Many simultaneous real-time calls; CPU per inbound frame while they only stream.
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
      // Streaming only (no speech): workerd CPU per inbound 20 ms frame.
      const u0 = workerdUsage();
      const w0 = performance.now();
      await sleep(5000);
      const u1 = workerdUsage();
      const frames = group.length * ((performance.now() - w0) / 20);
      const cpuUsPerFrame = round(((u1.cpuMs - u0.cpuMs) * 1000) / frames, 1);
      if (cpuPerFrame === null) cpuPerFrame = { calls: group.length, window_s: 5, cpu_us_per_inbound_frame: cpuUsPerFrame };
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
      const usage = workerdUsage();
      concurrent.push({
        calls: n, started: group.length, failed_to_start: failed, setup_s: round(setupS),
        cpu_us_per_inbound_frame: cpuUsPerFrame,
        first_frame: summary(firstFrame),
        outbound_frames: received, expected_frames: (group.length - unanswered) * 30, unanswered,
        late_frames: late, frame_gap_p99_ms: round(quantile(gaps, 0.99) ?? 0, 2),
        workerd_rss_mib: round(usage.rssKib / 1024),
      });
      progress(`live: ${n} concurrent calls → ${JSON.stringify(concurrent.at(-1))}`);
      await Promise.all(group.map(hangUp));
      calls.length = 0;
    }

    return {
      per_turn: { ...summary(perTurn), worker_first_audio: summary(inWorker) },
      barge_in_to_clear: summary(bargeIn),
      cpu_per_inbound_frame_in_worker: cpuPerFrame,
      concurrent,
    };
  } finally {
    for (const call of calls) call.stopAudio();
    await live.stop();
  }
}
