// TTS over a WebSocket kept open for the whole call (TTS_TRANSPORT=websocket, the default):
// ElevenLabs multi-context and Deepgram Aura sockets, opened while the call is set up, used for
// every turn after the greeting (spoken over HTTP while the socket opens, so the socket's set-up
// is never on its path); barge-in cuts the turn at the provider (`close_context` / `Clear`) and
// no audio of the cut turn reaches the carrier after its `clear`; a refused socket falls back
// to HTTP.
// Real workerd, fakes speaking the providers' real socket protocols on 127.0.0.1.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { eventually } from './harness.mjs';
import { startLiveWorker, createAgent, createNumber, startTwilioCall, sessionState, hangUp, QUIET_SESSION } from './live-setup.mjs';

const ELEVEN_NUMBER = '+15550003001';
const AURA_NUMBER = '+15550003002';
const GREETING = 'Hello! How can I help?';
const LONG = 'Our menu has many dishes and we serve pasta and pizza made fresh every single day of the week.';

let setup, worker, dg, openai, eleven;

before(async () => {
  setup = await startLiveWorker();
  ({ worker, dg, openai, eleven } = setup);
  const session = QUIET_SESSION;
  const el = await createAgent(worker, { name: 'ws-eleven', system_prompt: 'Be brief.', first_message: GREETING, voice: { provider: 'elevenlabs', voice_id: 'rachel' }, session });
  const aura = await createAgent(worker, { name: 'ws-aura', system_prompt: 'Be brief.', first_message: GREETING, voice: { provider: 'deepgram', voice_id: 'aura-2-thalia-en' }, session });
  await createNumber(worker, ELEVEN_NUMBER, el.id);
  await createNumber(worker, AURA_NUMBER, aura.id);
});

after(async () => {
  await setup?.stop();
});

/** Waits until every mark in `names` has been echoed by the carrier client. */
const heard = (playback, names, message) =>
  eventually(() => names.every((n) => playback.echoed(n)), { timeout: 15_000, interval: 20, message });

/** The marks sent after `at`. */
const marksAfter = (playback, at) => playback.after(at, 'mark').map((e) => e.name);

/** Asks a question and waits until the one-segment reply `text` has been heard; resolves to its mark. */
async function turn(call, question, text) {
  const at = performance.now();
  openai.reply({ text });
  dg.say(call.stt, { transcript: question, is_final: true, speech_final: true });
  const mark = await eventually(() => marksAfter(call.playback, at)[0], { message: `reply to ${question}` });
  await heard(call.playback, [mark], `reply to ${question} heard`);
  return mark;
}

/** Starts a long reply and waits until its audio is flowing; resolves to the time it was asked. */
async function longReply(call) {
  const at = performance.now();
  openai.reply({ text: LONG });
  dg.say(call.stt, { transcript: 'What is on the menu?', is_final: true, speech_final: true });
  await eventually(() => call.playback.after(at, 'media').length > 10, { interval: 5, message: 'long reply audio flowing' });
  return at;
}

/** The caller interrupts: resolves to the time of the carrier's `clear`. */
async function bargeIn(call) {
  const saidAt = performance.now();
  dg.say(call.stt, { transcript: 'wait stop please', is_final: false });
  await eventually(() => call.playback.after(saidAt, 'clear').length > 0, { interval: 1, message: 'clear' });
  return call.playback.after(saidAt, 'clear')[0].at;
}

test('ElevenLabs: the greeting over HTTP while the socket opens, then one socket for every turn, barge-in closes the context, stale audio never reaches the carrier', async () => {
  const socketsBefore = eleven.sockets.length;
  const httpBefore = eleven.requests.length;
  const call = await startTwilioCall(setup, { to: ELEVEN_NUMBER });
  await heard(call.playback, ['t0-s0', 't0-s1'], 'greeting heard');
  assert.equal(eleven.sockets.length, socketsBefore + 1, 'one socket, opened for the call');
  const ws = eleven.sockets[socketsBefore];
  assert.equal(ws.voiceId, 'rachel');
  assert.equal(ws.query.output_format, 'ulaw_8000');
  assert.equal(ws.query.model_id, 'eleven_flash_v2_5');
  assert.equal(ws.headers['xi-api-key'], 'xi-key');
  // The greeting is due as the call starts, while the socket is still opening: HTTP speaks it.
  assert.deepEqual(eleven.requests.slice(httpBefore).map((r) => r.text), ['Hello!', 'How can I help?']);
  assert.deepEqual(ws.messages.filter((m) => typeof m.text === 'string'), [], 'nothing of the greeting on the socket');
  // The greeting's audio is exactly the provider's: 1 + 4 words at 100 ms, 160-byte μ-law frames.
  const media = call.playback.log.filter((e) => e.kind === 'media');
  assert.ok(media.every((e) => e.bytes === 160));
  assert.equal(media.length, (1 + 4) * 100 * 8 / 160);

  await turn(call, 'Do you have a table?', 'Yes, at seven.');
  await turn(call, 'Great.', 'See you then.');
  // A context per sentence: its text flushed, then closed so that its isFinal ends the segment.
  const texts = ws.messages.filter((m) => typeof m.text === 'string');
  assert.deepEqual(texts.map((m) => [m.text, m.flush]), [['Yes, at seven. ', true], ['See you then. ', true]]);
  for (const m of texts) assert.ok(ws.messages.some((c) => c.close_context && c.context_id === m.context_id));

  // Barge-in mid-utterance: the fake generates slowly, and keeps generating a flushed context
  // after close_context (the API's rule), so audio of the cut turn is still arriving.
  eleven.slow(80);
  try {
    await longReply(call);
    const context = ws.messages.filter((m) => typeof m.text === 'string').at(-1).context_id;
    const clearAt = await bargeIn(call);
    const closes = () => ws.messages.filter((m) => m.close_context && m.context_id === context && m.hrAt >= clearAt - 50);
    await eventually(() => closes().length > 0, { message: 'close_context for the cut context after the clear' });
    await eventually(() => ws.finals.includes(context), { timeout: 10_000, message: 'the cut context finished at the fake' });
    const late = ws.sentAudio.filter((a) => a.contextId === context && a.hrAt > clearAt);
    assert.ok(late.length > 0, 'the fake sent audio of the cut turn after the clear');
    assert.deepEqual(call.playback.after(clearAt).filter((e) => e.kind === 'media' || e.kind === 'mark'), [], 'nothing of the cut turn after the clear');
  } finally {
    eleven.slow(0);
  }

  // The caller's words become the next turn, spoken on the same socket.
  await turn(call, 'Wait, stop. Do you have desserts?', 'We do.');
  assert.equal(eleven.sockets.length, socketsBefore + 1, 'still the same socket');
  assert.equal(ws.closed, false);
  assert.equal(eleven.requests.length, httpBefore + 2, 'no HTTP TTS request after the greeting');
  const state = await sessionState(worker, call.callId);
  assert.ok(state.turns.some((t) => t.interrupted), 'the cut turn is stored as interrupted');
  await hangUp(call);
  await eventually(() => ws.closed, { message: 'socket closed when the call ended' });
  assert.ok(ws.messages.some((m) => m.close_socket), 'close_socket sent at the end');
});

test('Deepgram Aura: the greeting over HTTP while the socket opens, then one socket, Speak + Flush per sentence, barge-in sends Clear, the next turn speaks on the same socket', async () => {
  const socketsBefore = dg.speakSockets.length;
  const httpBefore = dg.speakRequests.length;
  const call = await startTwilioCall(setup, { to: AURA_NUMBER });
  await heard(call.playback, ['t0-s0', 't0-s1'], 'greeting heard');
  assert.equal(dg.speakSockets.length, socketsBefore + 1);
  const ws = dg.speakSockets[socketsBefore];
  assert.equal(ws.headers.authorization, 'Token dg-key');
  assert.deepEqual(
    { model: ws.query.model, encoding: ws.query.encoding, sample_rate: ws.query.sample_rate, container: ws.query.container },
    { model: 'aura-2-thalia-en', encoding: 'mulaw', sample_rate: '8000', container: undefined },
  );
  assert.deepEqual(dg.speakRequests.slice(httpBefore).map((r) => r.text), ['Hello!', 'How can I help?']);
  assert.deepEqual(ws.messages, [], 'nothing of the greeting on the socket');
  const media = call.playback.log.filter((e) => e.kind === 'media');
  assert.ok(media.every((e) => e.bytes === 160));
  assert.equal(media.length, (1 + 4) * 100 * 8 / 160);

  await turn(call, 'Are you open?', 'Until ten.');
  assert.deepEqual(ws.messages.map((m) => [m.type, m.text]), [['Speak', 'Until ten.'], ['Flush', undefined]]);

  dg.slowSpeak(60);
  try {
    await longReply(call);
    const clearAt = await bargeIn(call);
    await eventually(() => ws.messages.some((m) => m.type === 'Clear' && m.hrAt >= clearAt - 50), { message: 'Clear sent' });
    await eventually(() => ws.sent.some((m) => m.type === 'Cleared'), { message: 'Cleared answered' });
    // Nothing of the cut turn after the carrier's clear (chunks in flight are dropped).
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(call.playback.after(clearAt).filter((e) => e.kind === 'media' || e.kind === 'mark'), [], 'nothing of the cut turn after the clear');
  } finally {
    dg.slowSpeak(0);
  }

  await turn(call, 'Wait. Do you deliver?', 'We do.');
  assert.equal(dg.speakSockets.length, socketsBefore + 1, 'still the same socket');
  assert.equal(dg.speakRequests.length, httpBefore + 2, 'no HTTP /v1/speak request after the greeting');
  await hangUp(call);
  await eventually(() => ws.closed, { message: 'socket closed when the call ended' });
  assert.ok(ws.messages.some((m) => m.type === 'Close'), 'Close sent at the end');
});

test('a slow socket upgrade: the greeting is spoken over HTTP while the socket opens, the next turn on the socket', async () => {
  const socketsBefore = eleven.sockets.length;
  const upgradesBefore = eleven.socketUpgrades.length;
  const httpBefore = eleven.requests.length;
  eleven.delayUpgrades(1500);
  try {
    const started = performance.now();
    const call = await startTwilioCall(setup, { to: ELEVEN_NUMBER });
    await heard(call.playback, ['t0-s0', 't0-s1'], 'greeting heard');
    const greetingAudio = call.playback.after(started, 'media');
    // The whole greeting played before the provider even answered the upgrade.
    assert.equal(eleven.sockets.length, socketsBefore, 'the socket is not open yet');
    assert.deepEqual(eleven.requests.slice(httpBefore).map((r) => r.text), ['Hello!', 'How can I help?']);
    assert.equal(greetingAudio.length, (1 + 4) * 100 * 8 / 160);
    await eventually(() => eleven.sockets.length === socketsBefore + 1, { message: 'socket opened' });
    const ws = eleven.sockets[socketsBefore];
    const upgrade = eleven.socketUpgrades[upgradesBefore];
    assert.ok(upgrade.hrAt < greetingAudio[0].at, 'the upgrade was asked for before the greeting played');
    assert.ok(upgrade.answeredAt > greetingAudio.at(-1).at, 'and answered after it had played');
    await turn(call, 'Are you open?', 'Until ten.');
    assert.deepEqual(ws.messages.filter((m) => typeof m.text === 'string').map((m) => m.text), ['Until ten. ']);
    assert.equal(eleven.requests.length, httpBefore + 2, 'the turn went over the socket, not HTTP');
    await hangUp(call);
  } finally {
    eleven.delayUpgrades(0);
  }
});

test('a refused socket (HTTP 4xx on the upgrade) falls back to HTTP: the greeting and the turns are spoken', async () => {
  const httpBefore = eleven.requests.length;
  const upgradesBefore = eleven.socketUpgrades.length;
  eleven.refuseSockets(403);
  try {
    const call = await startTwilioCall(setup, { to: ELEVEN_NUMBER });
    await heard(call.playback, ['t0-s0', 't0-s1'], 'greeting heard over HTTP');
    assert.equal(eleven.socketUpgrades[upgradesBefore].status, 403);
    assert.deepEqual(eleven.requests.slice(httpBefore).map((r) => r.text), ['Hello!', 'How can I help?']);
    await turn(call, 'Are you open?', 'Until ten.');
    assert.equal(eleven.requests.at(-1).text, 'Until ten.');
    // One refused upgrade, not one per segment.
    assert.equal(eleven.socketUpgrades.length, upgradesBefore + 1);
    await hangUp(call);
  } finally {
    eleven.acceptSockets();
  }
});

test('a socket that dies mid-reply: what it had not finished is spoken over HTTP', async () => {
  const call = await startTwilioCall(setup, { to: ELEVEN_NUMBER, greeting: 't0-s1' });
  const ws = eleven.sockets.at(-1);
  const httpBefore = eleven.requests.length;
  // Both sentences send one chunk, then hang: neither is finished when the socket dies.
  eleven.stallNext(2);
  try {
    const at = performance.now();
    openai.reply({ text: 'First part. Second part of the answer.' });
    dg.say(call.stt, { transcript: 'Tell me.', is_final: true, speech_final: true });
    await eventually(() => call.playback.after(at, 'media').length > 0, { interval: 5, message: 'audio flowing' });
    eleven.closeSocket(ws, 1011, 'internal error');
    const fallback = () => eleven.requests.slice(httpBefore).map((r) => r.text);
    // The sentence that was playing starts again from its beginning, then the next one.
    await eventually(() => fallback().length >= 2, { message: 'HTTP fallback requests' });
    assert.deepEqual(fallback(), ['First part.', 'Second part of the answer.']);
    await eventually(() => marksAfter(call.playback, at).length >= 2, { message: 'both segments marked' });
    // The socket is back for the next turn.
    await eventually(() => eleven.sockets.at(-1) !== ws && !eleven.sockets.at(-1).closed, { message: 'socket reopened' });
  } finally {
    eleven.stallNext(0);
  }
  await hangUp(call);
});
