// Resume after an instance reset in the middle of a call, end to end in workerd (wrangler dev,
// local mode): a Twilio media stream, fake Deepgram / OpenAI / ElevenLabs.
//
// The reset is workerd's own: an object with no event in flight for 10 s is evicted from memory
// and its hibernatable WebSockets stay connected (workerd server.c++ `handleShutdown` →
// `hibernateWebSockets`); the next carrier frame builds a new instance, which restores the call
// from the object's storage. The call gets there when the carrier stops sending media: the STT
// stream is closed after 5 s without audio (nothing else keeps the object in memory), and the
// next audio reopens it. The test never calls the object while it waits (any request would keep
// the old instance alive). What a reset with work in flight does (deploy, `abort()`) is in
// docs/architecture.md, "Instance resets".

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { eventually, sleep, sqlText } from './harness.mjs';
import { startLiveWorker, createAgent, createNumber, startTwilioCall, sessionState, completedWithSummary, hangUp, QUIET_SESSION } from './live-setup.mjs';
import { streamCallerAudio } from './fakes/playback.mjs';
import { TelnyxMediaClient } from './fakes/media-clients.mjs';

const NUMBER = '+15550002001';
const MAX_NUMBER = '+15550002002';
const SYSTEM_PROMPT = 'You are the receptionist of Acme Bistro. Be brief.';
const GREETING = 'Hello! Thanks for calling Acme Bistro.';
/** workerd evicts an object 10 s after its last event; margin for a loaded machine. */
const EVICTION_WAIT_MS = 14_000;

let setup, worker, dg, openai, eleven;
/** An agent without a greeting (the L16 call only listens). */
let quietAgentId;

before(async () => {
  setup = await startLiveWorker();
  ({ worker, dg, openai, eleven } = setup);
  const agent = await createAgent(worker, { name: 'resume', system_prompt: SYSTEM_PROMPT, first_message: GREETING, voice: { provider: 'elevenlabs', voice_id: 'rachel' }, session: QUIET_SESSION });
  await createNumber(worker, NUMBER, agent.id);
  const capped = await createAgent(worker, { name: 'resume-capped', system_prompt: SYSTEM_PROMPT, first_message: 'Hi.', voice: { provider: 'elevenlabs' }, session: { ...QUIET_SESSION, max_duration_ms: 36_000, goodbye_message: 'Time is up, goodbye!' } });
  await createNumber(worker, MAX_NUMBER, capped.id);
  quietAgentId = (await createAgent(worker, { name: 'resume-quiet', system_prompt: SYSTEM_PROMPT, voice: { provider: 'elevenlabs' }, session: QUIET_SESSION })).id;
});

after(async () => {
  await setup?.stop();
});

/** Waits until every mark in `names` was echoed by the carrier. */
const heard = (call, names, message) => eventually(() => names.every((n) => call.playback.echoed(n)), { timeout: 15_000, interval: 20, message });

/** Waits until the session stored turn `id`; resolves to it. */
const turnStored = (callId, id) => eventually(async () => (await sessionState(worker, callId)).turns.find((x) => x.id === id), { message: `turn ${id} stored` });

/**
 * The carrier pauses its media: caller audio stops, the worker closes its STT stream (CloseStream)
 * for lack of audio, then nothing happens on the call for long enough that workerd evicts the
 * object. Nothing here may call the worker for the object. Resolves once the wait is over.
 */
async function pauseUntilEvicted(call) {
  call.stopAudio();
  await eventually(() => call.stt.closed, { timeout: 15_000, message: 'STT stream closed for lack of audio' });
  assert.ok(call.stt.controls.some((c) => c.type === 'CloseStream'), 'the worker asked Deepgram to close the stream');
  await sleep(EVICTION_WAIT_MS);
}

/** The carrier's media resumes; resolves to the new STT connection once audio reaches it. */
async function resumeMedia(call) {
  const before = dg.connections.length;
  call.stopAudio = streamCallerAudio(call.client);
  const stt = await dg.waitForConnection(before, 10_000);
  await eventually(() => stt.audioBytes > 800, { message: 'audio flows to the new STT stream' });
  call.stt = stt;
  return stt;
}

test('an instance reset mid-call: socket kept, conversation restored, no repeated greeting, no lost turn', async (t) => {
  const call = await startTwilioCall(setup, { to: NUMBER, greeting: 't0-s1' });
  let carrierClosedAt = null;
  call.client.closed.then(() => { carrierClosedAt = performance.now(); });
  await turnStored(call.callId, 0);

  await t.test('turn 1 before any reset', async () => {
    openai.reply({ text: 'We open at nine.' });
    dg.say(call.stt, { transcript: 'When do you open?', is_final: true, speech_final: true });
    await heard(call, ['t1-s0'], 'turn 1 reply heard');
    await turnStored(call.callId, 1);
  });

  const sttBeforeReset = dg.connections.length;
  await t.test('reset between turns: the carrier socket stays, the next frame restores the call', async () => {
    await pauseUntilEvicted(call);
    const stt = await resumeMedia(call);
    assert.equal(stt.query.encoding, 'mulaw');
    assert.equal(dg.connections.length, sttBeforeReset + 1, 'one new STT connection after the reset');
    const state = await sessionState(worker, call.callId);
    const names = state.events.map((e) => e.event);
    assert.equal(names.filter((e) => e === 'restored').length, 1, `one restore: ${names.join(',')}`);
    assert.ok(names.lastIndexOf('stt_parked') < names.indexOf('restored'), 'restored after the STT stream was parked');
    assert.equal(names.filter((e) => e === 'socket_opened').length, 1, 'one carrier socket for the whole call');
    assert.ok(!names.includes('socket_closed') && !names.includes('stream_lost'));
    assert.equal(state.open_sockets, 1);
    assert.equal(carrierClosedAt, null, 'the carrier socket never closed');
  });

  await t.test('turn 2 after the reset: answered once, over the restored history', async () => {
    const chatsBefore = openai.chatRequests.length;
    openai.reply({ text: 'Yes, we have free parking.' });
    dg.say(call.stt, { transcript: 'Do you have parking?', is_final: true, speech_final: true });
    await heard(call, ['t2-s0'], 'turn 2 reply heard');
    await turnStored(call.callId, 2);
    assert.equal(openai.chatRequests.length, chatsBefore + 1, 'one LLM request for turn 2');
    assert.deepEqual(openai.chatRequests.at(-1).parsed.messages, [
      { role: 'system', content: SYSTEM_PROMPT },
      { role: 'assistant', content: GREETING },
      { role: 'user', content: 'When do you open?' },
      { role: 'assistant', content: 'We open at nine.' },
      { role: 'user', content: 'Do you have parking?' },
    ]);
  });

  await t.test('reset while a reply is playing: its mark echoes to the new instance, the turn is heard once', async () => {
    // The carrier holds the echo of turn 3's mark (its audio is still playing) across the reset.
    const held = [];
    const echo = call.client.mark.bind(call.client);
    call.client.mark = (name) => held.push(name);
    openai.reply({ text: 'The terrace opens in May.' });
    dg.say(call.stt, { transcript: 'And the terrace?', is_final: true, speech_final: true });
    await eventually(() => held.includes('t3-s0'), { message: 'turn 3 audio played, its mark held' });
    await pauseUntilEvicted(call);
    call.client.mark = echo;
    for (const name of held) echo(name);
    await resumeMedia(call);
    const turn = await turnStored(call.callId, 3);
    assert.equal(turn.interrupted, false);
    assert.equal(turn.agent_text, 'The terrace opens in May.');
    const state = await sessionState(worker, call.callId);
    assert.equal(state.events.filter((e) => e.event === 'restored').length, 2, 'a second restore');
    assert.equal(carrierClosedAt, null, 'the carrier socket never closed');
  });

  await t.test('hang-up: the stored transcript has every turn once, in order', async () => {
    openai.reply({ match: (req) => req.parsed?.stream === false, text: 'The caller asked about hours, parking and the terrace.' });
    await hangUp(call);
    // Polled through `wrangler d1 execute` (a process per poll): slow on a loaded machine.
    const row = await completedWithSummary(worker, call.callId, { timeout: 60_000 });
    assert.equal(row.summary, 'The caller asked about hours, parking and the terrace.');
    const [transcript] = await worker.d1(`SELECT text, turns FROM transcripts WHERE call_id = ${sqlText(call.callId)}`);
    assert.equal(transcript.text, [
      `Agent: ${GREETING}`,
      'Caller: When do you open?',
      'Agent: We open at nine.',
      'Caller: Do you have parking?',
      'Agent: Yes, we have free parking.',
      'Caller: And the terrace?',
      'Agent: The terrace opens in May.',
    ].join('\n'));
    const turns = JSON.parse(transcript.turns);
    assert.deepEqual(turns.map((x) => x.role), ['agent', 'caller', 'agent', 'caller', 'agent', 'caller', 'agent']);
    // The greeting was synthesized and played once; every reply once.
    const spoken = eleven.spokenTexts;
    assert.deepEqual(spoken.filter((s) => s === 'Hello!' || s === 'Thanks for calling Acme Bistro.'), ['Hello!', 'Thanks for calling Acme Bistro.']);
    assert.deepEqual(call.playback.marks(), ['t0-s0', 't0-s1', 't1-s0', 't2-s0', 't3-s0']);
    const summary = openai.chatRequests.filter((r) => r.parsed?.stream === false).at(-1);
    assert.match(summary.parsed.messages[1].content, /Caller: And the terrace\?\nAgent: The terrace opens in May\./);
  });
});

test('a timer armed before a reset fires after it: max duration ends the call', async () => {
  const call = await startTwilioCall(setup, { to: MAX_NUMBER, greeting: 't0-s0' });
  let carrierClosed = false;
  call.client.closed.then(() => { carrierClosed = true; });
  await pauseUntilEvicted(call);
  assert.equal(carrierClosed, false);
  await resumeMedia(call);
  const restored = (await sessionState(worker, call.callId)).events.filter((e) => e.event === 'restored');
  assert.equal(restored.length, 1, 'the call was restored in a new instance');
  // The max-duration alarm (36 s after the start) was set by the first instance.
  const closed = await eventually(() => carrierClosed && call.client.closed, { timeout: 30_000, message: 'max-duration hang-up' });
  assert.equal((await closed).code, 1000);
  assert.ok(call.playback.echoed('t1-s0'), 'the goodbye played before the hang-up');
  assert.equal(eleven.spokenTexts.at(-1), 'Time is up, goodbye!');
  call.stopAudio();
  const state = await eventually(async () => {
    const st = await sessionState(worker, call.callId);
    return st.events.some((e) => e.event === 'ended') && st;
  }, { message: 'ended' });
  assert.equal(state.events.find((e) => e.event === 'ended').detail.reason, 'max_duration');
});

test('a Telnyx L16 call restored after a reset still byte-swaps its audio for Deepgram', async () => {
  const id = 'call_resume_l16';
  const token = `stk_${randomBytes(12).toString('hex')}`;
  await worker.d1(`INSERT INTO calls (id, tenant_id, agent_id, direction, provider, status, to_number, stream_token, created_at, updated_at)
    VALUES (${sqlText(id)}, 'ten_default', ${sqlText(quietAgentId)}, 'inbound', 'telnyx', 'ringing', '+15550002003', ${sqlText(token)}, 0, 0)`);
  const client = await TelnyxMediaClient.connect(`ws://127.0.0.1:${worker.port}/media/telnyx/${id}?token=${token}`);
  let carrierClosed = false;
  client.closed.then(() => { carrierClosed = true; });
  const sttBefore = dg.connections.length;
  client.connected();
  client.send({
    event: 'start', sequence_number: client.next(), stream_id: client.streamId,
    start: { call_control_id: client.callControlId, call_session_id: client.callSessionId, from: client.from, to: client.to, custom_parameters: {}, media_format: { encoding: 'L16', sample_rate: 8000, channels: 1 } },
  });
  // 20 ms of big-endian L16 whose samples are 0x1234; Deepgram takes little-endian.
  const frame = Buffer.alloc(320, Buffer.from([0x12, 0x34]));
  const swapped = Buffer.from([0x34, 0x12]);
  /** Whether `conn` got exactly the byte-swapped frames (once its audio stopped growing). */
  const gotSwapped = async (conn) => {
    // Settled: no audio arrived over the last 500 ms. The count and the hash are read together,
    // after the wait, so audio that arrives late is in both or in neither.
    const { bytes, hash } = await eventually(async () => {
      const seen = conn.audioBytes;
      await sleep(500);
      return conn.audioBytes === seen && { bytes: seen, hash: conn.hash.copy().digest('hex') };
    }, { message: 'audio settled' });
    assert.ok(bytes >= 1600 && bytes % 2 === 0, `${bytes} bytes`);
    const expected = createHash('sha256').update(Buffer.alloc(bytes, swapped)).digest('hex');
    assert.equal(hash, expected, 'every sample reached Deepgram byte-swapped');
  };

  let stopAudio = streamCallerAudio(client, () => frame);
  const first = await dg.waitForConnection(sttBefore, 10_000);
  assert.equal(first.query.encoding, 'linear16');
  await eventually(() => first.audioBytes >= 3200, { message: 'audio reaches STT' });
  stopAudio();
  await gotSwapped(first);
  await eventually(() => first.closed, { timeout: 15_000, message: 'STT stream closed for lack of audio' });
  await sleep(EVICTION_WAIT_MS);

  const before = dg.connections.length;
  stopAudio = streamCallerAudio(client, () => frame);
  const second = await dg.waitForConnection(before, 10_000);
  assert.equal(second.query.encoding, 'linear16');
  await eventually(() => second.audioBytes >= 3200, { message: 'audio reaches the new STT stream' });
  stopAudio();
  const state = await sessionState(worker, id);
  assert.equal(state.events.filter((e) => e.event === 'restored').length, 1, 'the call was restored in a new instance');
  await gotSwapped(second);
  assert.equal(carrierClosed, false, 'the carrier socket never closed');
  client.stop();
  await eventually(() => carrierClosed, { message: 'stream closed after stop' });
});
