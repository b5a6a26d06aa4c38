// Security of the live-call media route (issue 10, item 2): attacks on `/media/{carrier}/{call_id}`
// performed from outside, as an attacker who learned a live call id would, against a real live
// call (Twilio Media Streams client, fake Deepgram / OpenAI / ElevenLabs on 127.0.0.1).
//
// - an unsigned or badly signed Twilio upgrade is refused before the upgrade (401 JSON);
// - a Telnyx / Exotel upgrade without the stream token in its URL is refused (401 JSON);
// - a second socket that passed the upgrade (a replayed signature) but presents no / a wrong
//   token in `start` is closed with 1008 and never displaces the verified socket: the caller
//   keeps hearing the agent, and the hang-up still writes transcript and summary;
// - a carrier socket that drops without `stop` and never comes back is finalized after the
//   grace period (status, transcript, events, STT socket closed); one that reconnects (verified)
//   within it carries on.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { randomBytes } from 'node:crypto';
import { eventually, sleep, within, sqlText, TEST_VARS } from './harness.mjs';
import { startLiveWorker, createAgent, createNumber, openMediaStream, startTwilioCall, subscribeTarget, callRow, sessionState, completedWithSummary, hangUp, QUIET_SESSION } from './live-setup.mjs';
import { startFakeTarget } from './fakes/target.mjs';
import { TwilioMediaClient, connectWs } from './fakes/ws.mjs';
import { twilioSignature } from './fakes/twilio.mjs';


const NUMBER = '+15550002001';
const GREETING = 'Hello! You reached Acme.';
/** The grace period the session gives a lost carrier socket before finalizing (README). */
const GRACE_MS = 10_000;

/** The live set-up (worker and instant provider fakes, started in `before`) and its parts. */
let setup, worker, dg, openai;
let target;
let agentId;

before(async () => {
  target = await startFakeTarget();
  setup = await startLiveWorker();
  ({ worker, dg, openai } = setup);
  const agent = await createAgent(worker, {
    name: 'security-media', system_prompt: 'Be brief.', first_message: GREETING,
    voice: { provider: 'elevenlabs', voice_id: 'rachel' }, session: QUIET_SESSION,
  });
  agentId = agent.id;
  await createNumber(worker, NUMBER, agentId);
  await subscribeTarget(worker, target, ['call.*']);
});

after(async () => {
  await setup?.stop();
  await target?.close?.();
});


/** A WebSocket upgrade that reads a refusal: {status, body (parsed JSON or null)} (101 = accepted). */
function rawUpgrade(url, headers = {}) {
  const u = new URL(url.replace(/^ws/, 'http'));
  return new Promise((resolve, reject) => {
    const req = request({
      host: u.hostname, port: u.port, path: u.pathname + u.search, method: 'GET',
      headers: {
        connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13',
        'sec-websocket-key': randomBytes(16).toString('base64'), ...headers,
      },
    });
    req.on('upgrade', (res, socket) => {
      socket.destroy();
      resolve({ status: res.statusCode, body: null });
    });
    req.on('response', (res) => {
      let text = '';
      res.on('data', (c) => (text += c));
      res.on('end', () => {
        let body = null;
        try {
          body = JSON.parse(text);
        } catch {
          body = null;
        }
        resolve({ status: res.statusCode, body, text });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

function assertApiError(res, status, code) {
  assert.equal(res.status, status, res.text);
  assert.equal(res.body?.error?.code, code, res.text);
  assert.equal(typeof res.body.error.message, 'string');
  assert.match(res.body.error.request_id, /\S/);
}

/** A Twilio call to NUMBER: signed webhook → TwiML → signed media stream → STT → greeting heard. */
async function startCall() {
  const call = await startTwilioCall(setup, { to: NUMBER, greeting: 't0-s1' });
  await eventually(async () => (await sessionState(worker, call.callId)).turns.some((t) => t.id === 0), { message: 'greeting stored' });
  return call;
}

/** The caller says `words`; resolves once the agent's reply to it has been heard on `playback`. */
async function turn(call, n, words, reply) {
  openai.reply({ text: reply });
  dg.say(call.stt, { transcript: words, is_final: true, speech_final: true });
  await eventually(() => call.playback.echoed(`t${n}-s0`), { timeout: 15_000, interval: 20, message: `reply ${n} heard` });
}

test('Twilio: an unsigned or badly signed upgrade is refused before the upgrade; the live call is untouched', async () => {
  const call = await startCall();
  const other = `${call.stream.replace(call.callId, 'call_other')}`;
  const attempts = [
    ['no signature', {}],
    ['a signature by another auth token', { 'x-twilio-signature': twilioSignature('not-the-token', call.stream) }],
    ['a signature of another URL', { 'x-twilio-signature': twilioSignature(TEST_VARS.TWILIO_AUTH_TOKEN, other) }],
    ['a signature over URL + parameters', { 'x-twilio-signature': twilioSignature(TEST_VARS.TWILIO_AUTH_TOKEN, call.stream, { token: call.token }) }],
    ['garbage', { 'x-twilio-signature': 'nope' }],
  ];
  for (const [what, headers] of attempts) {
    const res = await rawUpgrade(call.stream, headers);
    assert.notEqual(res.status, 101, `${what}: upgraded`);
    assertApiError(res, 401, 'invalid_signature');
  }
  await assert.rejects(TwilioMediaClient.connect(call.stream, { signature: null }), /HTTP 401/);
  // The verified stream never noticed.
  await turn(call, 1, 'Are you open today?', 'Yes, until nine.');
  const state = await sessionState(worker, call.callId);
  assert.equal(state.open_sockets, 1);
  await hangUp(call);
});

test('Telnyx / Exotel: an upgrade without the stream token in its URL is refused', async () => {
  for (const carrier of ['telnyx', 'exotel']) {
    const id = `call_sec_${carrier}`;
    const token = `stk_${carrier}${randomBytes(8).toString('hex')}`;
    await worker.d1(`INSERT INTO calls (id, tenant_id, direction, provider, status, to_number, stream_token, created_at, updated_at)
      VALUES (${sqlText(id)}, 'ten_default', 'inbound', '${carrier}', 'ringing', '+15550000000', ${sqlText(token)}, 0, 0)`);
    const url = `ws://127.0.0.1:${worker.port}/media/${carrier}/${id}`;
    assertApiError(await rawUpgrade(url), 401, 'missing_stream_token');
    assertApiError(await rawUpgrade(`${url}?token=`), 401, 'missing_stream_token');
    assertApiError(await rawUpgrade(`${url}?token=stk_wrong`), 403, 'invalid_stream_token');
    // The carrier itself still gets in.
    const ok = await connectWs(`${url}?token=${token}`);
    ok.socket.close(1000);
    await ok.closed;
  }
});

test('takeover: a second socket with no / a wrong token is closed 1008 and never displaces the verified one', async () => {
  const call = await startCall();
  // The attacker replays a valid upgrade signature (it covers only the URL) and plays Twilio.
  const attacks = [
    ['no token', { call_id: call.callId }],
    ['a wrong token', { token: 'stk_wrong', call_id: call.callId }],
    ['another call\'s token shape', { token: `stk_${'0'.repeat(26)}` }],
  ];
  for (const [what, params] of attacks) {
    const attacker = await TwilioMediaClient.connect(call.stream, { streamSid: 'MZ' + 'e'.repeat(32), callSid: 'CA' + 'e'.repeat(32) });
    attacker.connected();
    attacker.start(params);
    attacker.media();
    attacker.media();
    const closed = await within(attacker.closed, 10_000, `${what}: refusal`);
    assert.equal(closed.code, 1008, what);
    assert.equal(attacker.frames().filter((f) => f.event === 'media').length, 0, `${what}: the attacker got no agent audio`);
  }
  // Media before any start is not accepted either.
  const early = await TwilioMediaClient.connect(call.stream);
  early.media();
  assert.equal((await within(early.closed, 10_000, 'early media refusal')).code, 1008);

  // The caller keeps talking to the agent on the verified socket.
  const before = call.playback.log.length;
  await turn(call, 1, 'Can I book a table?', 'Sure, for how many people?');
  assert.ok(call.playback.log.slice(before).some((e) => e.kind === 'media' && e.frame.streamSid === call.client.streamSid));
  assert.equal(call.client.socket.readyState, 1, 'the verified socket is still open');
  const state = await sessionState(worker, call.callId);
  assert.ok(state.events.filter((e) => e.event === 'token_refused').length >= attacks.length);
  assert.equal(state.open_sockets, 1);

  // The hang-up finalizes the call as usual.
  openai.reply({ match: (req) => req.parsed?.stream === false, text: 'The caller wanted to book a table.' });
  await hangUp(call);
  const row = await completedWithSummary(worker, call.callId);
  assert.equal(row.summary, 'The caller wanted to book a table.');
  const [transcript] = await worker.d1(`SELECT text FROM transcripts WHERE call_id = ${sqlText(call.callId)}`);
  assert.equal(transcript.text, `Agent: ${GREETING}\nCaller: Can I book a table?\nAgent: Sure, for how many people?`);
});

test('a carrier socket that drops without stop and never returns: finalized after the grace period', async () => {
  const call = await startCall();
  await turn(call, 1, 'What time do you close?', 'We close at nine.');
  // The turn counts once its last mark's echo reached the worker: dropping the socket before
  // that (a loaded machine delays it) would lose the echo, and the turn with it.
  await eventually(async () => (await sessionState(worker, call.callId)).turns.find((x) => x.id === 1), { message: 'turn 1 stored' });
  openai.reply({ match: (req) => req.parsed?.stream === false, text: 'The caller asked when we close.' });
  call.stopAudio();
  const droppedAt = Date.now();
  call.client.socket.terminate(); // no stop, no close frame
  // Within the grace period the call waits for the carrier to come back.
  await sleep(2_000);
  assert.equal((await callRow(worker, call.callId)).status, 'in_progress', 'not finalized before the grace period');
  const row = await eventually(async () => {
    const r = await callRow(worker, call.callId);
    return r.status !== 'in_progress' && r;
  }, { timeout: GRACE_MS + 15_000, interval: 250, message: 'call finalized' });
  assert.ok(Date.now() - droppedAt >= GRACE_MS - 500, 'finalized only after the grace period');
  assert.equal(row.status, 'completed');
  const [transcript] = await worker.d1(`SELECT text FROM transcripts WHERE call_id = ${sqlText(call.callId)}`);
  assert.equal(transcript.text, `Agent: ${GREETING}\nCaller: What time do you close?\nAgent: We close at nine.`);
  await target.waitFor((d) => d.some((x) => x.json?.type === 'call.transcript.ready' && x.json.data.call_id === call.callId), 20_000);
  await target.waitFor((d) => d.some((x) => x.json?.type === 'call.summary.ready' && x.json.data.call_id === call.callId), 20_000);
  await eventually(() => call.stt.closed, { message: 'STT socket closed' });
  const state = await sessionState(worker, call.callId);
  assert.ok(state.events.some((e) => e.event === 'ended' && e.detail.reason === 'stream_lost'));
});

test('a verified reconnect within the grace period carries the call on (Telnyx)', async () => {
  const id = 'call_sec_reconnect';
  const token = `stk_${randomBytes(12).toString('hex')}`;
  await worker.d1(`INSERT INTO calls (id, tenant_id, agent_id, direction, provider, status, to_number, stream_token, created_at, updated_at)
    VALUES (${sqlText(id)}, 'ten_default', ${sqlText(agentId)}, 'inbound', 'telnyx', 'ringing', '+15550002002', ${sqlText(token)}, 0, 0)`);
  const url = `ws://127.0.0.1:${worker.port}/media/telnyx/${id}?token=${token}`;
  const sttBefore = dg.connections.length;
  const first = await openMediaStream('telnyx', url);
  const stt = await dg.waitForConnection(sttBefore, 10_000);
  await eventually(() => first.playback.echoed('t0-s0'), { timeout: 15_000, interval: 20, message: 'greeting heard' });
  first.stopAudio();
  first.client.socket.terminate();
  await sleep(1_000);
  const { client: second, playback, stopAudio: stopSecond } = await openMediaStream('telnyx', url);
  openai.reply({ text: 'Welcome back.' });
  dg.say(stt, { transcript: 'Sorry, I lost you.', is_final: true, speech_final: true });
  await eventually(() => playback.echoed('t1-s0'), { timeout: 15_000, interval: 20, message: 'reply on the new socket' });
  assert.ok(playback.log.some((e) => e.kind === 'media'), 'the agent speaks on the new socket');
  await sleep(GRACE_MS);
  assert.equal((await callRow(worker, id)).status, 'in_progress', 'a reconnected call is not finalized');
  stopSecond();
  second.stop();
  await within(second.closed, 10_000, 'stop');
  await eventually(async () => (await callRow(worker, id)).status === 'completed', { timeout: 20_000, message: 'completed' });
});
