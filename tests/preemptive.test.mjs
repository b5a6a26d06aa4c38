// Preemptive generation end to end: a real Twilio call through workerd to fake Deepgram Flux
// (/v2/listen turn events) and Nova (/v1/listen interims), fake OpenAI and fake ElevenLabs. The
// reply is requested on a draft of the caller's turn and held; it plays only once the turn is
// final with the same words, and a caller who resumes never hears it.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { eventually, sleep } from './harness.mjs';
import { startLiveWorker, createAgent, createNumber, startTwilioCall, callRow, sessionState, hangUp, QUIET_SESSION } from './live-setup.mjs';

const FLUX_NUMBER = '+15550003001';
const NOVA_NUMBER = '+15550003002';
const SYSTEM_PROMPT = 'You are the receptionist of Acme Bistro. Be brief.';

let setup, worker, dg, openai, eleven;

before(async () => {
  setup = await startLiveWorker();
  ({ worker, dg, openai, eleven } = setup);
  const flux = await createAgent(worker, {
    name: 'Flux', system_prompt: SYSTEM_PROMPT, first_message: 'Hi.',
    voice: { provider: 'elevenlabs', voice_id: 'rachel' }, session: QUIET_SESSION,
    stt: { model: 'flux-general-en', eot_threshold: 0.7, eot_timeout_ms: 4000 },
  });
  assert.deepEqual(flux.stt, { model: 'flux-general-en', eot_threshold: 0.7, eot_timeout_ms: 4000 });
  await createNumber(worker, FLUX_NUMBER, flux.id);
  const nova = await createAgent(worker, {
    name: 'Nova', system_prompt: SYSTEM_PROMPT, first_message: 'Hi.',
    voice: { provider: 'elevenlabs', voice_id: 'rachel' }, session: QUIET_SESSION,
    stt: { preemptive: true, preemptive_silence_ms: 200 },
  });
  await createNumber(worker, NOVA_NUMBER, nova.id);
});

after(async () => {
  await setup?.stop();
});

/** Waits until every mark in `names` has been echoed by the carrier client. */
const heard = (call, names, message) =>
  eventually(() => names.every((n) => call.playback.echoed(n)), { timeout: 15_000, interval: 10, message });

/** The chat request that arrives after `count` requests. */
const nextChat = (count, message) =>
  eventually(() => openai.chatRequests[count], { interval: 2, message });

const userTurns = async (callId) => (await sessionState(worker, callId)).turns.filter((t) => t.user_text);

test('the agent with a Flux model streams to /v2/listen with Flux parameters, and preempts by default', async (t) => {
  const call = await startTwilioCall(setup, { to: FLUX_NUMBER, greeting: 't0-s0' });
  const { stt, playback, callId } = call;
  assert.equal(stt.path, '/v2/listen');
  assert.deepEqual(stt.query, {
    model: 'flux-general-en', encoding: 'mulaw', sample_rate: '8000',
    eot_threshold: '0.7', eager_eot_threshold: '0.5', eot_timeout_ms: '4000',
  });
  assert.equal(stt.sent[0].type, 'Connected');

  await t.test('eager → end with the same words: the request starts before EndOfTurn, the reply plays after it', async () => {
    const chats = openai.chatRequests.length;
    const ttsBefore = eleven.spokenTexts.length;
    openai.reply({ text: 'Sure. A table for two it is.' });
    dg.turnInfo(stt, 'StartOfTurn', '');
    dg.turnInfo(stt, 'Update', 'Book a table for two');
    const eagerAt = performance.now();
    dg.turnInfo(stt, 'EagerEndOfTurn', 'Book a table for two');
    const chat = await nextChat(chats, 'preemptive chat request');
    assert.deepEqual(chat.parsed.messages.at(-1), { role: 'user', content: 'Book a table for two' });
    // The instant LLM has answered in full; the reply is held: no TTS, no audio, no new turn.
    await eventually(() => chat.finished, { message: 'preemptive reply streamed' });
    await sleep(300);
    assert.equal(eleven.spokenTexts.length, ttsBefore, 'nothing synthesized before the end of turn');
    assert.equal(playback.after(eagerAt, 'media').length, 0, 'no audio before the end of turn');
    assert.equal((await userTurns(callId)).length, 0);

    const endAt = performance.now();
    dg.turnInfo(stt, 'EndOfTurn', 'Book a table for two.');
    await heard(call, ['t1-s0', 't1-s1'], 'preemptive reply played');
    assert.ok(chat.hrAt < endAt, 'the LLM request started before EndOfTurn');
    assert.ok(playback.after(eagerAt, 'media')[0].at >= endAt, 'the first audio follows EndOfTurn');
    assert.equal(openai.chatRequests.length, chats + 1, 'the held request was used, not repeated');
    assert.deepEqual(eleven.spokenTexts.slice(ttsBefore), ['Sure.', 'A table for two it is.']);
    const [turn] = await eventually(async () => {
      const turns = await userTurns(callId);
      return turns.length === 1 && turns;
    }, { message: 'turn stored' });
    assert.equal(turn.user_text, 'Book a table for two.');
    assert.equal(turn.agent_text, 'Sure. A table for two it is.');
    assert.equal(turn.metrics.preemptive, true);
    assert.equal(turn.metrics.preempts_wasted, 0);
  });

  await t.test('eager → TurnResumed: the request is aborted, none of it is heard, the full turn is answered once', async () => {
    const chats = openai.chatRequests.length;
    const ttsBefore = eleven.spokenTexts.length;
    // The draft's answer streams slowly and never ends on its own: only an abort stops it.
    openai.reply({ text: 'Of course, a table. Anything else you need? ', chunkDelayMs: 40, stall: true });
    dg.turnInfo(stt, 'StartOfTurn', '');
    dg.turnInfo(stt, 'Update', 'Book a table');
    const eagerAt = performance.now();
    dg.turnInfo(stt, 'EagerEndOfTurn', 'Book a table');
    const draft = await nextChat(chats, 'draft request');
    assert.deepEqual(draft.parsed.messages.at(-1), { role: 'user', content: 'Book a table' });
    await eventually(() => draft.deltasSent > 3, { message: 'draft reply streaming' });
    dg.turnInfo(stt, 'TurnResumed', 'Book a table');
    await eventually(() => draft.aborted, { message: 'draft request aborted at the LLM' });

    openai.reply({ text: 'Eight o’clock for two, booked.' });
    dg.turnInfo(stt, 'Update', 'Book a table for two at eight');
    dg.turnInfo(stt, 'EagerEndOfTurn', 'Book a table for two at eight');
    const full = await nextChat(chats + 1, 'request for the full turn');
    assert.deepEqual(full.parsed.messages.at(-1), { role: 'user', content: 'Book a table for two at eight' });
    // History holds committed turns only: the draft is not in it.
    assert.ok(!full.parsed.messages.some((m) => m.content === 'Book a table'), JSON.stringify(full.parsed.messages));
    await sleep(100);
    const endAt = performance.now();
    dg.turnInfo(stt, 'EndOfTurn', 'Book a table for two at eight.');
    await heard(call, ['t3-s0'], 'reply to the full turn played');
    assert.equal(openai.chatRequests.length, chats + 2);

    const spoken = eleven.spokenTexts.slice(ttsBefore);
    // The reply's first clause is synthesized on its own (it opens the reply), then the rest.
    assert.deepEqual(spoken, ['Eight o’clock for two,', 'booked.'], 'the draft reply was never synthesized');
    assert.ok(playback.after(eagerAt, 'media').every((f) => f.at >= endAt), 'no audio reached the carrier before EndOfTurn');
    const turns = await eventually(async () => {
      const all = await userTurns(callId);
      return all.length === 2 && all;
    }, { message: 'second turn stored' });
    assert.equal(turns.filter((x) => x.user_text === 'Book a table for two at eight.').length, 1, 'stored once');
    assert.equal(turns[1].agent_text, 'Eight o’clock for two, booked.');
    assert.equal(turns[1].metrics.preempts_wasted, 1);
    const state = await sessionState(worker, callId);
    assert.equal(state.counters.preemptive_wasted, 1);
    assert.equal(state.counters.preemptive_used, 2);
    assert.deepEqual(state.events.filter((e) => e.event === 'preemptive').map((e) => e.detail.outcome), ['used', 'wasted', 'used']);
  });

  await t.test('the per-call figures keep the used and wasted counts', async () => {
    await hangUp(call);
    const row = await eventually(async () => {
      const r = await callRow(worker, callId);
      return r.metrics && r;
    }, { message: 'metrics stored' });
    assert.deepEqual(JSON.parse(row.metrics).preemptive, { used: 2, wasted: 1 });
  });
});

test('Nova with preemption on: a stable interim and silence start the reply; a different final cancels it', async (t) => {
  const call = await startTwilioCall(setup, { to: NOVA_NUMBER, greeting: 't0-s0' });
  const { stt, playback, callId } = call;
  assert.equal(stt.path, '/v1/listen');
  assert.equal(stt.query.model, 'nova-3');

  await t.test('the same interim twice, then silence: the request starts before the final and is used', async () => {
    const chats = openai.chatRequests.length;
    openai.reply({ text: 'We open at nine.' });
    const saidAt = performance.now();
    dg.say(stt, { transcript: 'what time do you open', is_final: false });
    await sleep(50);
    dg.say(stt, { transcript: 'What time do you open', is_final: false });
    const chat = await nextChat(chats, 'preemptive request after the silence threshold');
    assert.ok(chat.hrAt - saidAt >= 200, `request after ${chat.hrAt - saidAt} ms of silence`);
    assert.deepEqual(chat.parsed.messages.at(-1), { role: 'user', content: 'What time do you open' });
    await sleep(200);
    assert.equal(playback.after(saidAt, 'media').length, 0, 'held until the final');
    const finalAt = performance.now();
    dg.say(stt, { transcript: 'What time do you open?', is_final: true, speech_final: true });
    await heard(call, ['t1-s0'], 'reply played');
    assert.ok(playback.after(saidAt, 'media')[0].at >= finalAt);
    assert.equal(openai.chatRequests.length, chats + 1);
  });

  await t.test('the final differs from the draft: the draft request is aborted and the final answered', async () => {
    const chats = openai.chatRequests.length;
    const ttsBefore = eleven.spokenTexts.length;
    openai.reply({ text: 'Yes, we do takeaway. ', chunkDelayMs: 40, stall: true });
    const saidAt = performance.now();
    dg.say(stt, { transcript: 'do you do takeaway', is_final: false });
    await sleep(50);
    dg.say(stt, { transcript: 'do you do takeaway', is_final: false });
    const draft = await nextChat(chats, 'draft request');
    openai.reply({ text: 'Yes, and delivery too.' });
    dg.say(stt, { transcript: 'Do you do takeaway or delivery?', is_final: true, speech_final: true });
    await eventually(() => draft.aborted, { message: 'draft request aborted' });
    const full = await nextChat(chats + 1, 'request for the final text');
    assert.deepEqual(full.parsed.messages.at(-1), { role: 'user', content: 'Do you do takeaway or delivery?' });
    await heard(call, ['t3-s0'], 'reply to the final text played');
    assert.deepEqual(eleven.spokenTexts.slice(ttsBefore), ['Yes, and delivery too.']);
    assert.ok(playback.after(saidAt, 'media').length > 0);
    const turns = await eventually(async () => {
      const all = await userTurns(callId);
      return all.length === 2 && all;
    }, { message: 'turns stored' });
    assert.deepEqual(turns.map((x) => [x.user_text, x.metrics.preemptive, x.metrics.preempts_wasted]), [
      ['What time do you open?', true, 0],
      ['Do you do takeaway or delivery?', false, 1],
    ]);
    await hangUp(call);
  });
});
