// Carrier call control end to end: the REST requests the call session sends a carrier when the
// agent ends a live call — Twilio's call update with `<Dial>` TwiML for `transfer_call`, Telnyx's
// Call Control hang-up for `end_call` — asserted as the fake carriers received them, and what the
// caller hears around them. Real workerd; fake Twilio/Telnyx REST, Deepgram, OpenAI and
// ElevenLabs on 127.0.0.1 speaking the providers' protocols.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { eventually, within, TEST_VARS } from './harness.mjs';
import { startLiveWorker, createAgent, createNumber, twilioIncoming, parseMarkup, openMediaStream, sessionState, QUIET_SESSION } from './live-setup.mjs';
import { startFakeTwilio, twilioSid } from './fakes/twilio.mjs';
import { startFakeTelnyx } from './fakes/telnyx.mjs';
import { telnyxKeyPair, signTelnyx } from './fakes/media-clients.mjs';

const TELNYX = telnyxKeyPair('9b1f3c2a7d8e4f5061728394a5b6c7d8e9f00112233445566778899aabbccdde');
const ACCOUNT_SID = twilioSid('AC');
const TELNYX_API_KEY = 'KEY_telnyx_control';
const TRANSFER_TO = '+14155550100';
const TWILIO_NUMBER = '+15550002001';
const TELNYX_NUMBER = '+15550002002';

let setup, worker, dg, openai, eleven, twilio, telnyx;

before(async () => {
  twilio = await startFakeTwilio({ accountSid: ACCOUNT_SID, authToken: TEST_VARS.TWILIO_AUTH_TOKEN });
  telnyx = await startFakeTelnyx({ apiKey: TELNYX_API_KEY });
  setup = await startLiveWorker({
    vars: {
      TWILIO_API_URL: twilio.url, TWILIO_ACCOUNT_SID: ACCOUNT_SID,
      TELNYX_API_URL: telnyx.url, TELNYX_API_KEY, TELNYX_PUBLIC_KEY: TELNYX.publicKey,
    },
  });
  ({ worker, dg, openai, eleven } = setup);
  const voice = { provider: 'elevenlabs', voice_id: 'rachel' };
  const transferring = await createAgent(worker, {
    name: 'transfer', system_prompt: 'You answer for Acme.', first_message: 'Hi.', voice,
    session: { ...QUIET_SESSION, transfer_to: TRANSFER_TO },
  });
  await createNumber(worker, TWILIO_NUMBER, transferring.id);
  const ending = await createAgent(worker, { name: 'telnyx', system_prompt: 'You answer for Acme.', first_message: 'Hi.', voice, session: QUIET_SESSION });
  await createNumber(worker, TELNYX_NUMBER, ending.id);
});

after(async () => {
  await setup?.stop();
  await twilio?.close();
  await telnyx?.close();
});

/** Waits until the marks `names` have all been echoed (their audio played). */
async function heard(playback, names, message = 'marks echoed') {
  await eventually(() => names.every((n) => playback.echoed(n)), { timeout: 15_000, interval: 20, message });
}

/**
 * Resolves, once `fake` has received its first request, to how many frames `playback` had logged
 * then: the fake and the media client share this process, so later frames come after it.
 */
function framesAtFirstRequest(fake, playback) {
  return fake.waitFor((requests) => requests.length > 0, 30_000).then(() => playback.log.length);
}

/** Where in the playback log mark `name` was echoed (the caller had heard its audio). */
const echoIndex = (playback, name) => playback.log.findIndex((e) => e.kind === 'echo' && e.name === name);

/** Audio and marks the worker sent from log index `from` on. */
const sentFrom = (playback, from) => playback.log.slice(from).filter((e) => e.kind === 'media' || e.kind === 'mark');

async function endedReason(callId) {
  const state = await eventually(async () => {
    const st = await sessionState(worker, callId);
    return st.events.some((e) => e.event === 'ended') && st;
  }, { message: 'session ended' });
  return state.events.find((e) => e.event === 'ended').detail.reason;
}

test('transfer_call on a live Twilio call: the call update with <Dial> to the configured number, then the caller hears nothing more', async () => {
  const callSid = twilioSid('CA');
  const markup = await twilioIncoming(worker, TWILIO_NUMBER, { params: { CallSid: callSid } });
  assert.ok(markup.stream && markup.token, markup.xml);
  const sttBefore = dg.connections.length;
  const call = await openMediaStream('twilio', markup.stream, { start: { token: markup.token, call_id: markup.callId }, connect: { callSid } });
  const stt = await dg.waitForConnection(sttBefore, 10_000);
  await heard(call.playback, ['t0-s0'], 'greeting');

  const chats = openai.chatRequests.length;
  openai.reply({ text: 'Let me put you through.', toolCalls: [{ name: 'transfer_call', arguments: {} }] });
  openai.reply({ match: (req) => req.parsed?.stream === false, text: 'The caller asked for a person and was transferred.' });
  const restAt = framesAtFirstRequest(twilio, call.playback);
  dg.say(stt, { transcript: 'Can I talk to a person?', is_final: true, speech_final: true });
  const framesBefore = await restAt;
  const closed = await within(call.client.closed, 20_000, 'stream closed after the transfer');
  call.stopAudio();
  assert.equal(closed.code, 1000);

  // The model was offered the tool without a number: the configured one is the only target.
  const tool = openai.chatRequests[chats].parsed.tools.find((t) => t.function.name === 'transfer_call');
  assert.ok(tool, 'transfer_call offered');
  assert.deepEqual(Object.keys(tool.function.parameters.properties ?? {}), []);

  // Exactly one REST request: Twilio's call update, new TwiML dialling the transfer number.
  await eventually(() => twilio.requests.every((r) => r.finished), { message: 'the update answered' });
  assert.equal(twilio.requests.length, 1, JSON.stringify(twilio.requests.map((r) => r.path)));
  const [update] = twilio.requests;
  assert.equal(update.method, 'POST');
  assert.equal(update.path, `/2010-04-01/Accounts/${ACCOUNT_SID}/Calls/${callSid}.json`);
  assert.equal(update.search, '');
  assert.equal(update.headers.authorization, `Basic ${Buffer.from(`${ACCOUNT_SID}:${TEST_VARS.TWILIO_AUTH_TOKEN}`).toString('base64')}`);
  assert.equal(update.headers['content-type'], 'application/x-www-form-urlencoded');
  const twiml = `<Response><Dial>${TRANSFER_TO}</Dial></Response>`;
  assert.equal(update.body, new URLSearchParams({ Twiml: twiml }).toString());
  assert.equal(update.status, 200);
  assert.deepEqual(twilio.modifications.map((m) => [m.callSid, m.params]), [[callSid, { Twiml: twiml }]]);

  // The caller heard the whole line before the transfer, and nothing after it.
  const lineHeard = echoIndex(call.playback, 't1-s0');
  assert.ok(lineHeard >= 0 && lineHeard < framesBefore, 'the line was heard before the transfer request');
  assert.deepEqual(sentFrom(call.playback, framesBefore), [], 'no audio or mark after the transfer request');
  assert.equal(eleven.spokenTexts.at(-1), 'Let me put you through.');
  assert.equal(openai.chatRequests.slice(chats).filter((r) => r.parsed?.stream).length, 1, 'no LLM round after the transfer');
  assert.equal(await endedReason(markup.callId), 'transferred');
});

test('end_call on a live Telnyx call: the Call Control hang-up for the stream\'s call_control_id', async () => {
  const body = new URLSearchParams({ CallSid: `v3:${randomUUID()}`, From: '+13122010094', To: TELNYX_NUMBER }).toString();
  const res = await worker.fetch('/voice/telnyx/incoming', {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...signTelnyx(TELNYX.privateKey, Math.floor(Date.now() / 1000), body) },
    body,
  });
  const markup = parseMarkup(await res.text());
  assert.equal(res.status, 200, markup.xml);
  const callControlId = `v3:${randomUUID()}`;
  const sttBefore = dg.connections.length;
  const call = await openMediaStream('telnyx', markup.stream, { connect: { callControlId } });
  const stt = await dg.waitForConnection(sttBefore, 10_000);
  await heard(call.playback, ['t0-s0'], 'greeting');

  openai.reply({ text: 'Goodbye, have a nice day!', toolCalls: [{ name: 'end_call', arguments: {} }] });
  openai.reply({ match: (req) => req.parsed?.stream === false, text: 'The caller said goodbye.' });
  const restAt = framesAtFirstRequest(telnyx, call.playback);
  dg.say(stt, { transcript: 'That is all, bye.', is_final: true, speech_final: true });
  const framesBefore = await restAt;
  const closed = await within(call.client.closed, 20_000, 'stream closed after the hang-up');
  call.stopAudio();
  assert.equal(closed.code, 1000);

  // Exactly one REST request: the hang-up of the call the stream's `start` named.
  await eventually(() => telnyx.requests.every((r) => r.finished), { message: 'the hang-up answered' });
  assert.equal(telnyx.requests.length, 1, JSON.stringify(telnyx.requests.map((r) => r.path)));
  const [hangup] = telnyx.requests;
  assert.equal(hangup.method, 'POST');
  assert.equal(hangup.path, `/v2/calls/${encodeURIComponent(callControlId)}/actions/hangup`);
  assert.equal(hangup.search, '');
  assert.equal(hangup.headers.authorization, `Bearer ${TELNYX_API_KEY}`);
  assert.equal(hangup.headers['content-type'], 'application/json');
  assert.equal(hangup.body, '{}');
  assert.equal(hangup.status, 200);
  assert.deepEqual(telnyx.actions.map((a) => [a.callControlId, a.action, a.body]), [[callControlId, 'hangup', {}]]);

  // The goodbye played before the hang-up, and nothing after it.
  const goodbyeHeard = echoIndex(call.playback, 't1-s0');
  assert.ok(goodbyeHeard >= 0 && goodbyeHeard < framesBefore, 'the goodbye was heard before the hang-up request');
  assert.deepEqual(sentFrom(call.playback, framesBefore), [], 'no audio or mark after the hang-up request');
  assert.equal(await endedReason(markup.callId), 'agent_ended');
});
